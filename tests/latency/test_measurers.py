"""Contract tests over every registered measurer, plus settings validation."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from latency.command import CommandSettings
from latency.measurers import OrtMeasurer, OrtSettings, TorchSettings, full_input_shape, measure_model_ms
from latency.registry import MEASURERS, make_measurer, measurer_from_recorded
from search_spaces.builder import build_block
from search_spaces.onnx_export import export_module_onnx
from search_spaces.spec import BlockSpec

BLOCK = BlockSpec("bneck", 3, 1, 32, 16, True, "hswish", True)
SHAPE = (1, 16, 8, 8)


def _block() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_block(16, BLOCK)


def _small_settings(name: str, fake_device: str) -> object:
    from latency.quantized import OrtInt8Settings

    return {"ort-cpu": OrtSettings(warmup=1, repeats=4), "torch-cpu": TorchSettings(warmup=1, repeats=4),
            "torch-cuda": TorchSettings(warmup=1, repeats=4),
            "ort-cpu-int8": OrtInt8Settings(warmup=1, repeats=4),
            "command": CommandSettings(template=fake_device, pattern=r"inference (?P<value>\d+) (?P<unit>us)")}[name]


@pytest.mark.parametrize("name", sorted(MEASURERS))
def test_every_measurer_returns_positive_finite_ms_and_records_settings(name, fake_device):
    if name == "torch-cuda" and not torch.cuda.is_available():
        pytest.skip("torch-cuda needs a CUDA GPU")
    measurer = make_measurer(name, _small_settings(name, fake_device))
    samples = measurer.measure(_block(), SHAPE)
    assert samples.ndim == 1 and samples.size >= 1
    assert np.all(np.isfinite(samples)) and np.all(samples > 0)
    recorded = measurer.settings_dict()
    assert recorded["measurer"] == name and recorded["batch"] == 1
    assert measurer_from_recorded(recorded).settings_dict() == recorded


def test_measure_model_ms_accepts_module_bytes_and_path(tmp_path):
    settings = OrtSettings(warmup=1, repeats=5)
    data = export_module_onnx(_block(), SHAPE)
    path = tmp_path / "block.onnx"
    path.write_bytes(data)
    for model in (_block(), data, path, str(path)):
        samples = measure_model_ms(model, SHAPE, settings)
        assert samples.shape == (5,) and np.all(np.isfinite(samples)) and np.all(samples > 0)


def test_chw_shape_gets_the_batch_prepended():
    assert full_input_shape((3, 32, 32), 2) == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="batch"):
        full_input_shape((1, 3, 32, 32), 2)


def test_ort_settings_reject_unknown_values_naming_the_options():
    with pytest.raises(ValueError, match="execution_mode.*sequential"):
        OrtSettings(execution_mode="fast")
    with pytest.raises(ValueError, match="provider"):
        OrtSettings(provider="NoSuchProvider")
    with pytest.raises(ValueError, match="repeats"):
        OrtSettings(repeats=0)


def test_ort_settings_are_recorded_with_the_runtime_version():
    settings = OrtMeasurer(OrtSettings(repeats=7)).settings_dict()
    assert settings["intra_op_threads"] == 1 and settings["repeats"] == 7 and "onnxruntime" in settings


def test_unknown_measurer_name_lists_the_options():
    with pytest.raises(ValueError, match="ort-cpu"):
        make_measurer("tflite")


def test_missing_onnx_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        measure_model_ms(tmp_path / "nope.onnx", SHAPE)


def test_torch_cuda_without_a_gpu_refuses_in_one_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    measurer = make_measurer("torch-cuda", TorchSettings(warmup=1, repeats=2))
    assert measurer.settings_dict()["measurer"] == "torch-cuda"
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        measurer.measure(_block(), SHAPE)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_torch_cuda_leaves_the_callers_module_on_the_cpu():
    block = _block()
    make_measurer("torch-cuda", TorchSettings(warmup=1, repeats=2)).measure(block, SHAPE)
    assert all(p.device.type == "cpu" for p in block.parameters())
