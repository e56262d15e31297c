"""ONNX export with native HardSwish/HardSigmoid, checked in ONNX Runtime against torch."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from search_spaces.builder import build_model
from search_spaces.onnx_export import export_spec_onnx
from search_spaces.reference import REFERENCE_SPECS, reference_spec
from tests.helpers import sampled_specs


def _randomize_batchnorm(model: torch.nn.Module, seed: int) -> None:
    """Non-trivial BN statistics and head weights so a mismatch cannot hide in zeros."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
        if isinstance(m, torch.nn.Linear):
            m.weight.data.normal_(0, 0.1, generator=gen)


def assert_onnx_matches_torch(spec, seed=0, tolerance=1e-4):
    torch.manual_seed(seed)
    model = build_model(spec).eval()
    _randomize_batchnorm(model, seed)
    data = export_spec_onnx(spec, model=model)
    ops = {node.op_type for node in onnx.load_from_string(data).graph.node}
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(seed).standard_normal((1, spec.in_channels, spec.resolution, spec.resolution)).astype(np.float32)
    expected = model(torch.from_numpy(x)).detach().numpy()
    got = session.run(None, {"input": x})[0]
    assert np.abs(expected).max() > 1e-3  # the comparison is not between near-zeros
    assert np.abs(got - expected).max() < tolerance
    return ops


@pytest.mark.parametrize("name", sorted(REFERENCE_SPECS))
def test_reference_specs_export_and_match(name):
    spec = reference_spec(name, resolution=32, num_classes=10, in_channels=1)
    ops = assert_onnx_matches_torch(spec)
    if name.startswith("mobilenetv3"):
        assert {"HardSwish", "HardSigmoid"} <= ops


def test_sampled_specs_export_and_match():
    for i, spec in enumerate(sampled_specs(5, seed=21)):
        assert_onnx_matches_torch(spec, seed=i)


@pytest.mark.slow
def test_200_sampled_specs_export_and_match():
    for i, spec in enumerate(sampled_specs(200, seed=22)):
        assert_onnx_matches_torch(spec, seed=i)


def test_export_writes_file(tmp_path):
    spec = reference_spec("mobilenetv3-small", resolution=32, num_classes=10)
    path = tmp_path / "m.onnx"
    data = export_spec_onnx(spec, path)
    assert path.read_bytes() == data
    onnx.checker.check_model(onnx.load(path))
