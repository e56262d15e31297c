"""Shared fixtures: a tiny spec and small data sets (digits at 16x16) keep tests fast."""
from __future__ import annotations

import pytest

from search_spaces.spec import ArchSpec, BlockSpec, HeadSpec, StemSpec
from training.config import TrainConfig
from training.datasets import Dataset, load_dataset


def tiny_spec(resolution: int = 16, in_channels: int = 1, num_classes: int = 10) -> ArchSpec:
    """Stem, three small blocks (one SE, one residual, one regular conv), MobileNetV3 head."""
    blocks = (
        BlockSpec("bneck", 3, 2, 16, 16, se=True, act="relu"),  # 8x8 in
        BlockSpec("bneck", 3, 1, 32, 16, act="hswish", skip=True),
        BlockSpec("conv", 3, 2, None, 24, act="hswish"),  # 4x4 in
    )
    return ArchSpec(blocks=blocks, stem=StemSpec(8, 3, 1, "hswish"), head=HeadSpec(48, 64, "hswish", 0.2),
                    resolution=resolution, in_channels=in_channels, num_classes=num_classes)


@pytest.fixture(scope="session")
def digits16() -> Dataset:
    return load_dataset("digits", resolution=16, split_seed=0)


@pytest.fixture
def spec16() -> ArchSpec:
    return tiny_spec()


@pytest.fixture
def quick_config() -> TrainConfig:
    """Two short epochs, one thread, CPU."""
    return TrainConfig(epochs=2, batch_size=64, lr=0.05, warmup_epochs=0.5, threads=1, device="cpu",
                       bn_recalibration_batches=4)
