"""Trainer: bit-reproducibility, exact resume, BN recalibration, divergence, isolation."""
from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from search_spaces.reference import reference_spec
from training.checkpoint import load_checkpoint
from training.config import TrainConfig
from training.trainer import METRIC_COLUMNS, Trainer, TrainingDiverged

from tests.training.conftest import tiny_spec

TIMING = ["epoch_s", "train_s", "eval_s", "images_per_s"]


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_same_seed_and_threads_is_bit_identical(spec16, digits16, quick_config):
    config = quick_config.replace(steps=12)
    a, b = Trainer(spec16, digits16, config).fit(), Trainer(spec16, digits16, config).fit()
    assert _same_weights(a.model, b.model)
    pd.testing.assert_frame_equal(a.metrics.drop(columns=TIMING), b.metrics.drop(columns=TIMING))
    c = Trainer(spec16, digits16, config.replace(seed=1)).fit()
    assert not _same_weights(a.model, c.model)


def test_metrics_table_has_unit_columns(spec16, digits16, quick_config):
    result = Trainer(spec16, digits16, quick_config).fit()
    assert list(result.metrics.columns) == list(METRIC_COLUMNS) and len(result.metrics) == 2
    assert result.status == "finished" and 0.0 <= result.val_top1 <= 1.0 and result.images_per_s > 0


def test_resume_mid_epoch_equals_uninterrupted_run(spec16, digits16, quick_config, tmp_path):
    config = quick_config.replace(ema_decay=0.9, augment=True)
    full = Trainer(spec16, digits16, config).fit()
    stops = iter([False] * 6 + [True])
    stopped = Trainer(spec16, digits16, config, should_stop=lambda: next(stops),
                      checkpoint_path=tmp_path / "ck.pt").fit()
    assert stopped.status == "interrupted" and stopped.steps == 7
    checkpoint = load_checkpoint(tmp_path / "ck.pt")
    resumed = Trainer(spec16, digits16, config, checkpoint_path=tmp_path / "ck.pt").fit(resume=checkpoint)
    assert resumed.steps == full.steps and _same_weights(resumed.model, full.model)
    pd.testing.assert_frame_equal(resumed.metrics.drop(columns=TIMING), full.metrics.drop(columns=TIMING))


def test_resume_refuses_other_config(spec16, digits16, quick_config, tmp_path):
    Trainer(spec16, digits16, quick_config.replace(steps=2), checkpoint_path=tmp_path / "ck.pt").fit()
    with pytest.raises(ValueError, match="fields \\['lr'\\]"):
        Trainer(spec16, digits16, quick_config.replace(steps=2, lr=1.0)).fit(resume=load_checkpoint(tmp_path / "ck.pt"))


def test_bn_recalibration_rescues_briefly_trained_model(digits16):
    """After a short run stale BN statistics give chance accuracy; recalibrated ones do not."""
    spec = reference_spec("mobilenetv3-small", resolution=16, num_classes=10, in_channels=1)
    config = TrainConfig(epochs=1, batch_size=32, lr=0.1, warmup_epochs=0.3, augment=False, threads=1, device="cpu")
    stale = Trainer(spec, digits16, config.replace(bn_recalibration_batches=0)).fit()
    fixed = Trainer(spec, digits16, config.replace(bn_recalibration_batches=10)).fit()
    assert stale.val_top1 <= 0.2 and fixed.val_top1 >= 0.5


def test_exploding_loss_stops_with_clear_error(spec16, digits16, quick_config):
    with pytest.raises(TrainingDiverged, match="training diverged at epoch 1.*lower the learning rate") as info:
        Trainer(spec16, digits16, quick_config.replace(lr=1e6, warmup_epochs=0.0)).fit()
    assert info.value.step >= 2 and (math.isnan(info.value.loss) or info.value.loss > 100)


def test_spec_must_fit_the_data(digits16, quick_config):
    with pytest.raises(ValueError, match="in_channels 3 != data 1"):
        Trainer(tiny_spec(in_channels=3), digits16, quick_config)


def test_job_leaves_threads_and_global_rng_untouched(spec16, digits16, quick_config):
    torch.set_num_threads(2)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    Trainer(spec16, digits16, quick_config.replace(steps=2, threads=1)).fit()
    assert torch.get_num_threads() == 2 and torch.equal(torch.rand(3), expected)


def test_progress_callback_sees_steps_and_epochs(spec16, digits16, quick_config):
    events = []
    Trainer(spec16, digits16, quick_config, on_progress=events.append).fit()
    steps = [e for e in events if e.phase == "step"]
    epochs = [e for e in events if e.phase == "epoch"]
    assert [e.step for e in steps] == list(range(1, steps[-1].total_steps + 1))
    assert len(epochs) == 2 and epochs[-1].metrics["val_top1"] >= 0.0


def test_steps_budget_and_rmsprop(spec16, digits16, quick_config):
    result = Trainer(spec16, digits16, quick_config.replace(steps=25, optimizer="rmsprop", lr=0.01)).fit()
    assert result.steps == 25 and result.metrics["epoch"].tolist() == [1, 2]
