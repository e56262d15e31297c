"""Data sets by short name, split into train / validation / test, resized and normalized.

``load_dataset("mnist5k", resolution=32, split_seed=0)`` returns a :class:`Dataset` of
in-memory float32 tensors. Splits are stratified and deterministic in ``split_seed``
(scikit-learn ``train_test_split``); search and NetAdapt use train and validation only,
the final report uses test. Images are resized once (bilinear, antialiased when
shrinking) and normalized per channel with the training split's mean and std.

Names (see :mod:`training.sources` for the formats): ``mnist5k``, ``digits``,
``cifar10:DIR``, ``imagefolder:DIR``, ``npz:FILE``, and the MNIST variations of Larochelle et
al. (2007) generated from mnist5k (:mod:`training.variations`): ``mnist-rot-back-image`` (the
search default, :data:`DEFAULT_SEARCH_DATA`), ``mnist-rot``, ``mnist-back-image``,
``mnist-back-rand``. A variation fixes its own split (disjoint source digits and background
regions per split) and defaults to a larger validation split (30%) so that validation
accuracy, the search's signal, has a small standard error.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.model_selection import train_test_split

from training import sources, variations
from training.sources import RawData

logger = logging.getLogger(__name__)

AUGMENTATIONS = ("affine", "crop_flip", "none")
"""``affine``: small rotation, scale and shift (digits, characters: no flips);
``crop_flip``: padded random crop and horizontal flip (natural images, CIFAR-like)."""

BUILTIN = {"mnist5k": (sources.load_mnist5k, "affine"), "digits": (sources.load_digits, "affine"),
           **{kind: (functools.partial(variations.load_variation, kind), "affine") for kind in variations.VARIATIONS}}
WITH_PATH = {
    "cifar10": (sources.load_cifar10, "crop_flip"),
    "imagefolder": (sources.load_image_folder, "crop_flip"),
    "npz": (sources.load_npz, "affine"),
}
DATASET_NAMES = (*BUILTIN, *(f"{k}:PATH" for k in WITH_PATH))
DEFAULT_RESOLUTION = {"mnist5k": 32, "digits": 32, "cifar10": 32, **{kind: 32 for kind in variations.VARIATIONS}}
DEFAULT_SEARCH_DATA = "mnist-rot-back-image"
"""The data set search, NetAdapt and the pipeline default to: hard enough that sampled
architectures differ by more than seed noise (results/training/proxy_fidelity.json)."""
DEFAULT_FRACTIONS = {kind: (0.3, 0.2) for kind in variations.VARIATIONS}
"""(val_fraction, test_fraction) per data set where not (0.1, 0.2)."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """Train / validation / test tensors (N, C, R, R) float32 normalized, labels int64.

    Treat the tensors as read-only: a loaded data set is cached and shared.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    class_names: tuple[str, ...]
    native_resolution: int
    augmentation: str
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def in_channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def resolution(self) -> int:
        return int(self.x_train.shape[-1])

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``(x, y)`` tensors of split ``name`` (train, val or test)."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"split = {name!r} is not allowed; expected one of ('train', 'val', 'test')")
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")

    def train_subset(self, size: int, seed: int) -> "Dataset":
        """A copy whose training split is a stratified subset of ``size`` images."""
        n = len(self.y_train)
        if isinstance(size, bool) or not isinstance(size, int) or not self.num_classes <= size <= n:
            raise ValueError(f"train subset size = {size!r} is not allowed; expected an integer in [{self.num_classes}, {n}]")
        if size == n:
            return self
        keep, _ = train_test_split(np.arange(n), train_size=size, stratify=self.y_train.numpy(), random_state=seed)
        keep = torch.from_numpy(np.sort(keep))
        return replace(self, x_train=self.x_train[keep], y_train=self.y_train[keep])

    def summary(self) -> dict[str, object]:
        """JSON-safe description for manifests."""
        return {"name": self.name, "in_channels": self.in_channels, "resolution": self.resolution,
                "native_resolution": self.native_resolution, "num_classes": self.num_classes,
                "train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test),
                "augmentation": self.augmentation, "mean": list(self.mean), "std": list(self.std)}


def parse_name(name: str) -> tuple[str, str | None]:
    """``'cifar10:/data/c10'`` -> ``('cifar10', '/data/c10')``; ValueError listing the names."""
    kind, _, path = name.partition(":")
    if kind in BUILTIN and not path:
        return kind, None
    if kind in WITH_PATH and path:
        return kind, path
    raise ValueError(f"unknown data set {name!r}; expected one of {list(DATASET_NAMES)}")


def default_resolution(name: str) -> int | None:
    """The resolution a data set is trained at unless told otherwise (None: native)."""
    return DEFAULT_RESOLUTION.get(parse_name(name)[0])


def _stratified_split(y: np.ndarray, fraction: float, seed: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    indices = np.arange(len(y))
    try:
        rest, held = train_test_split(indices, test_size=fraction, stratify=y, random_state=seed)
    except ValueError as exc:
        raise ValueError(f"cannot split off a stratified {what} set of fraction {fraction} from "
                         f"{len(y)} samples of {len(np.unique(y))} classes: {exc}") from exc
    return np.sort(rest), np.sort(held)


def _check_fraction(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < 0.5:
        raise ValueError(f"{name} = {value!r} is not allowed; expected a number in (0, 0.5)")


def split_indices(raw: RawData, *, split_seed: int, val_fraction: float, test_fraction: float) -> dict[str, np.ndarray]:
    """Stratified index sets; test comes from the official test split where there is one, and
    all three from the source's own split where it fixes one (``raw.split``)."""
    _check_fraction("val_fraction", val_fraction)
    _check_fraction("test_fraction", test_fraction)
    if raw.split is not None:
        return {name: np.flatnonzero(raw.split == code) for name, code in variations.SPLIT_CODES.items()}
    if raw.x_test is not None:
        train, val = _stratified_split(raw.y, val_fraction, split_seed, "validation")
        return {"train": train, "val": val, "test": np.arange(len(raw.y_test))}
    rest, test = _stratified_split(raw.y, test_fraction, split_seed, "test")
    train, val = _stratified_split(raw.y[rest], val_fraction / (1.0 - test_fraction), split_seed, "validation")
    return {"train": rest[train], "val": rest[val], "test": test}


def resize(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """Square ``resolution`` x ``resolution`` images (bilinear; antialiased when shrinking)."""
    if x.shape[-2:] == (resolution, resolution):
        return x
    shrink = resolution < max(x.shape[-2:])
    return F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=shrink)


def _normalize(splits: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], tuple[float, ...], tuple[float, ...]]:
    mean = splits["train"].mean(dim=(0, 2, 3))
    std = splits["train"].std(dim=(0, 2, 3)).clamp_min(1e-6)
    out = {k: ((v - mean[:, None, None]) / std[:, None, None]).contiguous() for k, v in splits.items()}
    return out, tuple(float(m) for m in mean), tuple(float(s) for s in std)


def build_dataset(name: str, raw: RawData, augmentation: str, *, resolution: int | None, split_seed: int,
                  val_fraction: float, test_fraction: float) -> Dataset:
    """Split, resize and normalize ``raw`` into a :class:`Dataset`."""
    if len(raw.class_names) < 2:
        raise ValueError(f"data set {name!r} has {len(raw.class_names)} class(es); expected at least 2")
    native = int(min(raw.x.shape[-2:]))
    target = native if resolution is None else resolution
    if isinstance(target, bool) or not isinstance(target, int) or not 4 <= target <= 1024:
        raise ValueError(f"resolution = {resolution!r} is not allowed; expected an integer in [4, 1024]")
    index = split_indices(raw, split_seed=split_seed, val_fraction=val_fraction, test_fraction=test_fraction)
    x_test, y_test = (raw.x, raw.y) if raw.x_test is None else (raw.x_test, raw.y_test)
    xs = {"train": raw.x[index["train"]], "val": raw.x[index["val"]], "test": x_test[index["test"]]}
    ys = {"train": raw.y[index["train"]], "val": raw.y[index["val"]], "test": y_test[index["test"]]}
    images = {k: resize(torch.from_numpy(np.ascontiguousarray(v)), target) for k, v in xs.items()}
    images, mean, std = _normalize(images)
    labels = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.int64)) for k, v in ys.items()}
    logger.info("data set %s: %s train / %s val / %s test at %dx%d", name, *(len(labels[k]) for k in ("train", "val", "test")),
                target, target)
    return Dataset(name, images["train"], labels["train"], images["val"], labels["val"], images["test"], labels["test"],
                   raw.class_names, native, augmentation, mean, std)


@functools.lru_cache(maxsize=4)
def _cached_builtin(kind: str, resolution: int | None, split_seed: int, val_fraction: float, test_fraction: float) -> Dataset:
    loader, augmentation = BUILTIN[kind]
    raw = loader(split_seed=split_seed, val_fraction=val_fraction, test_fraction=test_fraction) \
        if kind in variations.VARIATIONS else loader()
    return build_dataset(kind, raw, augmentation, resolution=resolution, split_seed=split_seed,
                         val_fraction=val_fraction, test_fraction=test_fraction)


def load_dataset(name: str, *, resolution: int | None = None, split_seed: int = 0, val_fraction: float | None = None,
                 test_fraction: float | None = None, augmentation: str | None = None) -> Dataset:
    """The data set ``name`` split by ``split_seed`` and resized to ``resolution`` (None: native).

    Fractions left None take the data set's default (:data:`DEFAULT_FRACTIONS`, else 0.1 and 0.2).
    Built-in data sets are cached in memory per arguments; path-based ones are read each call.

    Raises:
        ValueError: unknown name, bad fractions or resolution, malformed files.
        FileNotFoundError: a missing path.
    """
    kind, path = parse_name(name)
    if augmentation is not None and augmentation not in AUGMENTATIONS:
        raise ValueError(f"augmentation = {augmentation!r} is not allowed; expected one of {AUGMENTATIONS}")
    default_val, default_test = DEFAULT_FRACTIONS.get(kind, (0.1, 0.2))
    val_fraction = default_val if val_fraction is None else val_fraction
    test_fraction = default_test if test_fraction is None else test_fraction
    _check_fraction("val_fraction", val_fraction)
    _check_fraction("test_fraction", test_fraction)
    if path is None:
        data = _cached_builtin(kind, resolution, split_seed, val_fraction, test_fraction)
    else:
        loader: Callable[[str], RawData] = WITH_PATH[kind][0]
        data = build_dataset(name, loader(path), WITH_PATH[kind][1], resolution=resolution, split_seed=split_seed,
                             val_fraction=val_fraction, test_fraction=test_fraction)
    return data if augmentation is None else replace(data, augmentation=augmentation)
