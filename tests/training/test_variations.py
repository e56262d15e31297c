"""MNIST variations: deterministic, split by source digit and photo region, cached safely."""
from __future__ import annotations

import numpy as np
import pytest

from training import variations
from training.datasets import DEFAULT_SEARCH_DATA, load_dataset, split_indices
from training.sources import load_mnist5k


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MOBILENAS_CACHE", str(tmp_path / "cache"))


def test_generation_is_deterministic_and_seeded():
    a = variations.generate("mnist-rot-back-image", split_seed=0, val_fraction=0.3, test_fraction=0.2)
    b = variations.generate("mnist-rot-back-image", split_seed=0, val_fraction=0.3, test_fraction=0.2)
    c = variations.generate("mnist-rot-back-image", split_seed=1, val_fraction=0.3, test_fraction=0.2)
    assert a.x.shape == (5000, 1, 28, 28) and a.x.dtype == np.float32 and 0.0 <= a.x.min() and a.x.max() <= 1.0
    assert np.array_equal(a.x, b.x) and np.array_equal(a.split, b.split)
    assert not np.array_equal(a.x, c.x) and not np.array_equal(a.split, c.split)


def test_each_image_comes_from_its_own_source_digit_and_splits_are_disjoint():
    raw = variations.generate("mnist-back-rand", split_seed=0, val_fraction=0.3, test_fraction=0.2)
    source = load_mnist5k()
    # max(digit, noise) >= digit everywhere: image i is built on source digit i (up to rounding)
    assert (raw.x >= source.x - 1.0 / 255).all() and np.array_equal(raw.y, source.y)
    parts = split_indices(raw, split_seed=0, val_fraction=0.3, test_fraction=0.2)
    together = np.concatenate(list(parts.values()))
    assert len(together) == len(set(together.tolist())) == 5000
    for name, per_class in (("train", 250), ("val", 150), ("test", 100)):
        assert np.bincount(raw.y[parts[name]]).tolist() == [per_class] * 10


def test_rotation_covers_the_full_circle():
    digit = np.zeros((1, 28, 28), np.float32)
    digit[0, 4:14, 13:15] = 1.0  # a bar above the centre
    half = variations.rotate(digit, np.array([np.pi]))[0]
    assert half[14:24, 13:15].mean() > 0.9 and half[4:14, 13:15].mean() < 0.1


def test_background_patches_come_from_their_split_tiles_only():
    regions = variations.split_regions([(427, 640), (427, 640)])
    owner = np.full((2, 427, 640), -1)
    for code, name in enumerate(variations.SPLIT_CODES):
        for index, top, bottom, left, right in regions[name]:
            assert (owner[index, top:bottom, left:right] == -1).all()  # tiles of different splits are disjoint
            owner[index, top:bottom, left:right] = code
    assert [np.mean(owner == c) for c in range(3)] == pytest.approx([0.6, 0.2, 0.2], abs=0.01)
    # pixel = row * 1000 + column: a patch's first pixel says where it was cut
    photo = (np.arange(427)[:, None] * 1000 + np.arange(640)[None, :]).astype(np.float64)
    rng = np.random.default_rng(0)
    for code, name in enumerate(variations.SPLIT_CODES):
        patches = variations.image_patches([photo, photo], regions[name], 200, rng)
        for patch in patches:
            top, left = divmod(int(patch[0, 0]), 1000)
            assert (owner[0, top:top + 28, left:left + 28] == code).all() or \
                   (owner[1, top:top + 28, left:left + 28] == code).all()


def test_flat_patches_are_rejected():
    flat = np.full((60, 200), 0.5, np.float32)
    textured = np.tile((np.arange(200) % 2).astype(np.float32), (60, 1))
    whole = [(0, 0, 60, 0, 200), (1, 0, 60, 0, 200)]
    patches = variations.image_patches([flat, textured], whole, 20, np.random.default_rng(0))
    assert (patches.std(axis=(1, 2)) > 0.4).all()


def test_cache_is_written_then_reused(tmp_path):
    first = variations.load_variation("mnist-rot", split_seed=0, val_fraction=0.3, test_fraction=0.2)
    files = list((tmp_path / "cache").glob("mnist-rot-*.npz"))
    assert len(files) == 1 and not list((tmp_path / "cache").glob("*.tmp"))
    again = variations.load_variation("mnist-rot", split_seed=0, val_fraction=0.3, test_fraction=0.2)
    assert np.array_equal(first.x, again.x) and np.array_equal(first.split, again.split)


@pytest.mark.parametrize("damage", ["garbage", "tampered"])
def test_corrupt_cache_is_regenerated_not_trusted(tmp_path, damage):
    fresh = variations.load_variation("mnist-rot", split_seed=0, val_fraction=0.3, test_fraction=0.2)
    path = next((tmp_path / "cache").glob("mnist-rot-*.npz"))
    if damage == "garbage":
        path.write_bytes(path.read_bytes()[:1000])
    else:
        with np.load(path) as archive:
            arrays = dict(archive)
        arrays["x"][0, 10, 10] ^= 0xFF
        np.savez(path, **arrays)
    again = variations.load_variation("mnist-rot", split_seed=0, val_fraction=0.3, test_fraction=0.2)
    assert np.array_equal(fresh.x, again.x)
    assert variations._read_cache(path) is not None  # rewritten whole


def test_default_search_data_loads_with_a_large_validation_split():
    data = load_dataset(DEFAULT_SEARCH_DATA, resolution=32)
    assert DEFAULT_SEARCH_DATA == "mnist-rot-back-image"
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (2500, 1500, 1000)
    assert data.x_train.shape[1:] == (1, 32, 32) and data.num_classes == 10 and data.native_resolution == 28


def test_unknown_variation_is_refused():
    with pytest.raises(ValueError, match="expected one of"):
        variations.generate("mnist-upside-down", split_seed=0, val_fraction=0.3, test_fraction=0.2)
