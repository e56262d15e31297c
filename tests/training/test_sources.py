"""Loaders read small files written in each real format; bad inputs give clear errors."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
from PIL import Image

from training import sources
from training.datasets import load_dataset, parse_name


def write_cifar(folder, per_batch: int = 20, seed: int = 0) -> None:
    """CIFAR-10 python batches as the official files: pickled dicts of bytes keys."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name in (*sources.CIFAR_TRAIN_FILES, sources.CIFAR_TEST_FILE):
        batch = {b"batch_label": name.encode(), b"labels": [int(v) for v in np.arange(per_batch) % 10],
                 b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 b"filenames": [f"{i}.png".encode() for i in range(per_batch)]}
        with open(folder / name, "wb") as handle:
            pickle.dump(batch, handle)


def write_image_folder(root, classes=("cat", "dog", "owl"), per_class: int = 6, mode: str = "RGB", size=(12, 12)):
    rng = np.random.default_rng(1)
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            shape = size[::-1] + ((3,) if mode == "RGB" else ())
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(root / name / f"{i}.png")
    return root


def test_mnist5k_is_real_mnist_sorted_by_label():
    raw = sources.load_mnist5k()
    assert raw.x.shape == (5000, 1, 28, 28) and raw.x.dtype == np.float32
    assert 0.0 <= raw.x.min() and raw.x.max() <= 1.0
    assert np.bincount(raw.y).tolist() == [500] * 10 and (np.diff(raw.y) >= 0).all()


def test_digits_scaled_to_unit_range():
    raw = sources.load_digits()
    assert raw.x.shape == (1797, 1, 8, 8) and raw.x.max() == 1.0


def test_cifar10_reads_python_batches_and_official_test(tmp_path):
    write_cifar(tmp_path / "cifar-10-batches-py")
    raw = sources.load_cifar10(tmp_path)
    assert raw.x.shape == (100, 3, 32, 32) and raw.x_test.shape == (20, 3, 32, 32)
    assert raw.y.tolist()[:10] == list(range(10)) and raw.class_names[0] == "airplane"


def test_cifar10_missing_files_named(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        sources.load_cifar10(tmp_path)


@pytest.mark.parametrize("content", [b"not a pickle", pickle.dumps({b"data": 1}), pickle.dumps(["x"])])
def test_cifar10_malformed_batch_is_value_error(tmp_path, content):
    write_cifar(tmp_path)
    (tmp_path / "data_batch_1").write_bytes(content)
    with pytest.raises(ValueError, match="data_batch_1"):
        sources.load_cifar10(tmp_path)


def test_cifar10_refuses_pickled_code(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": print}))
    with pytest.raises(ValueError, match="refusing"):
        sources.load_cifar10(tmp_path)


def test_image_folder_rgb(tmp_path):
    raw = sources.load_image_folder(write_image_folder(tmp_path / "imgs"))
    assert raw.x.shape == (18, 3, 12, 12) and raw.class_names == ("cat", "dog", "owl")
    assert np.bincount(raw.y).tolist() == [6, 6, 6]


def test_image_folder_grayscale_and_resized_to_first_image(tmp_path):
    root = write_image_folder(tmp_path / "imgs", mode="L", size=(10, 10))
    Image.fromarray(np.zeros((14, 20), np.uint8), "L").save(root / "cat" / "big.png")
    raw = sources.load_image_folder(root)
    assert raw.x.shape == (19, 1, 10, 10)


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        sources.load_image_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="class sub-folder"):
        sources.load_image_folder(tmp_path / "empty")
    root = write_image_folder(tmp_path / "imgs", classes=("a", "b"))
    (root / "c").mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        sources.load_image_folder(root)
    (root / "c" / "broken.png").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="broken.png"):
        sources.load_image_folder(root)


@pytest.mark.parametrize("shape", [(30, 9, 9), (30, 1, 9, 9), (30, 9, 9, 3), (30, 3, 9, 9)])
def test_npz_layouts(tmp_path, shape):
    x = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(30) % 3 + 5)
    raw = sources.load_npz(tmp_path / "d.npz")
    channels = 3 if 3 in shape[1:] else 1
    assert raw.x.shape == (30, channels, 9, 9) and raw.x.max() <= 1.0
    assert raw.class_names == ("5", "6", "7") and set(raw.y.tolist()) == {0, 1, 2}


@pytest.mark.parametrize("arrays, message", [
    ({"x": np.zeros((5, 8, 8)), "y": np.zeros(4, int)}, "5 samples but y has 4"),
    ({"x": np.zeros((5, 8, 8))}, "lacks arrays"),
    ({"x": np.zeros((5, 8, 8, 8, 2)), "y": np.zeros(5, int)}, "expected NHW, NCHW or NHWC"),
    ({"x": np.full((5, 8, 8), np.nan), "y": np.zeros(5, int)}, "NaN"),
    ({"x": np.zeros((5, 8, 8)), "y": np.zeros(5)}, "integer or string labels"),
])
def test_npz_errors(tmp_path, arrays, message):
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(ValueError, match=message):
        sources.load_npz(tmp_path / "d.npz")


def test_npz_missing_and_not_a_zip(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        sources.load_npz(tmp_path / "none.npz")
    (tmp_path / "bad.npz").write_text("hello")
    with pytest.raises(ValueError, match="is not an .npz archive"):
        sources.load_npz(tmp_path / "bad.npz")


@pytest.mark.parametrize("name", ["mnist", "cifar10", "npz", "digits:x", "imagefolder:"])
def test_unknown_names_list_the_options(name):
    with pytest.raises(ValueError, match="expected one of"):
        parse_name(name)


def test_load_dataset_from_every_path_format(tmp_path):
    write_cifar(tmp_path / "c10", per_batch=30)
    cifar = load_dataset(f"cifar10:{tmp_path / 'c10'}")
    assert (cifar.in_channels, cifar.resolution, cifar.num_classes, len(cifar.y_test)) == (3, 32, 10, 30)
    assert cifar.augmentation == "crop_flip"
    folder = load_dataset(f"imagefolder:{write_image_folder(tmp_path / 'imgs', per_class=10)}", resolution=16)
    assert (folder.in_channels, folder.resolution, folder.num_classes) == (3, 16, 3)
    np.savez(tmp_path / "d.npz", x=np.zeros((40, 6, 6, 1), np.uint8) + np.arange(40)[:, None, None, None],
             y=np.arange(40) % 2)
    npz = load_dataset(f"npz:{tmp_path / 'd.npz'}")
    assert (npz.in_channels, npz.resolution, npz.num_classes) == (1, 6, 2)
