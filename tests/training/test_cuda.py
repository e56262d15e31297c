"""Training on a CUDA GPU (skipped on machines without one, like CI)."""
from __future__ import annotations

import json

import pytest
import torch

from mobilenas.cli import main
from search_spaces.reference import reference_spec
from training.checkpoint import load_checkpoint
from training.config import TrainConfig
from training.evaluate import Budget, proxy_evaluate
from training.trainer import Trainer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_trains_on_cuda_and_resumes(digits16, tmp_path):
    spec = reference_spec("mobilenetv3-small", resolution=16, num_classes=10, in_channels=1)
    config = TrainConfig(epochs=1, batch_size=32, lr=0.1, warmup_epochs=0.3, augment=False, device="cuda")
    full = Trainer(spec, digits16, config).fit()
    assert full.device.startswith("cuda") and next(full.model.parameters()).is_cuda and full.val_top1 > 0.4
    stops = iter([False] * 19 + [True])
    Trainer(spec, digits16, config, should_stop=lambda: next(stops), checkpoint_path=tmp_path / "ck.pt").fit()
    resumed = Trainer(spec, digits16, config).fit(resume=load_checkpoint(tmp_path / "ck.pt"))
    # cuDNN kernels are not bit-deterministic, and after 1 epoch that moves val top-1 by ~0.1 (0.62 vs 0.52 seen)
    assert resumed.steps == full.steps and resumed.val_top1 > 0.3


def test_auto_device_picks_cuda_for_proxy(spec16, digits16):
    result = proxy_evaluate(spec16, digits16, Budget(steps=10), device="auto")
    assert result.status == "finished" and result.steps == 10


def test_cli_train_on_cuda_exports_cpu_onnx(tmp_path, capsys):
    argv = ["train", "mobilenetv3-small", "--data", "digits", "--epochs", "1", "--device", "cuda", "--threads", "1",
            "--latency-repeats", "5", "--out", str(tmp_path), "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["device"].startswith("cuda") and result["latency_ms"] > 0 and 0 <= result["top1"] <= 1
