"""Splits are deterministic and stratified; resizing and normalization; subsets."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from training.datasets import build_dataset, load_dataset, split_indices
from training.sources import RawData


def _raw(n_per_class: int = 20, classes: int = 4) -> RawData:
    y = np.repeat(np.arange(classes), n_per_class)  # sorted by label, like mnist5k
    x = np.random.default_rng(0).random((len(y), 1, 8, 8), dtype=np.float32)
    return RawData(x, y, tuple(str(c) for c in range(classes)))


def test_split_is_deterministic_in_seed_and_disjoint():
    raw = _raw()
    a = split_indices(raw, split_seed=3, val_fraction=0.1, test_fraction=0.2)
    b = split_indices(raw, split_seed=3, val_fraction=0.1, test_fraction=0.2)
    c = split_indices(raw, split_seed=4, val_fraction=0.1, test_fraction=0.2)
    assert all((a[k] == b[k]).all() for k in a)
    assert any((a[k] != c[k]).any() for k in a)
    together = np.concatenate(list(a.values()))
    assert len(together) == len(set(together.tolist())) == 80


def test_split_is_stratified():
    parts = split_indices(_raw(), split_seed=0, val_fraction=0.1, test_fraction=0.2)
    y = _raw().y
    assert np.bincount(y[parts["test"]]).tolist() == [4] * 4
    assert np.bincount(y[parts["val"]]).tolist() == [2] * 4


def test_mnist5k_splits_are_class_balanced_despite_sorted_source():
    data = load_dataset("mnist5k", resolution=32)
    for split, per_class in (("train", 350), ("val", 50), ("test", 100)):
        assert torch.bincount(data.split(split)[1]).tolist() == [per_class] * 10
    assert data.x_train.shape == (3500, 1, 32, 32) and data.in_channels == 1 and data.resolution == 32
    assert data.native_resolution == 28 and data.num_classes == 10


def test_normalized_with_train_statistics_and_resized_once():
    data = build_dataset("t", _raw(), "affine", resolution=16, split_seed=0, val_fraction=0.1, test_fraction=0.2)
    assert data.x_train.shape[-2:] == (16, 16)
    assert abs(float(data.x_train.mean())) < 1e-4 and abs(float(data.x_train.std()) - 1.0) < 1e-2
    assert len(data.mean) == len(data.std) == 1


def test_builtin_is_cached_and_augmentation_switchable():
    a, b = load_dataset("digits", resolution=16), load_dataset("digits", resolution=16)
    assert a is b and a.augmentation == "affine"
    assert load_dataset("digits", resolution=16, augmentation="none").augmentation == "none"
    with pytest.raises(ValueError, match="expected one of"):
        load_dataset("digits", augmentation="flip")


def test_train_subset_is_stratified(digits16):
    small = digits16.train_subset(100, seed=0)
    counts = torch.bincount(small.y_train).tolist()
    assert len(small.y_train) == 100 and max(counts) - min(counts) <= 1
    assert small.x_val is digits16.x_val
    with pytest.raises(ValueError, match="train subset size"):
        digits16.train_subset(5, seed=0)


@pytest.mark.parametrize("kwargs, message", [
    ({"val_fraction": 0.0}, "val_fraction"), ({"test_fraction": 0.7}, "test_fraction"),
    ({"resolution": 2}, "resolution"),
])
def test_bad_split_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_dataset("digits", **kwargs)


def test_too_few_samples_per_class_is_explained():
    raw = RawData(np.zeros((5, 1, 4, 4), np.float32), np.array([0, 0, 0, 0, 1]), ("a", "b"))
    with pytest.raises(ValueError, match="cannot split off a stratified"):
        build_dataset("t", raw, "none", resolution=None, split_seed=0, val_fraction=0.1, test_fraction=0.2)
