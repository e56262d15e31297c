"""The builder's convolution skips, in training, the kernel offsets that only meet zero padding:
the same outputs and gradients as the full kernel, and the full kernel wherever latency is measured."""
from __future__ import annotations

import onnx
import pytest
import torch
import torch.nn.functional as F

from search_spaces.builder import build_model
from search_spaces.layers import TrimmedConv2d, reach
from search_spaces.onnx_export import export_spec_onnx
from search_spaces.reference import reference_spec


@pytest.mark.parametrize("kernel,size,expected", [(5, 1, 1), (5, 2, 3), (5, 3, 5), (3, 1, 1), (3, 8, 3), (1, 1, 1)])
def test_reach_is_the_part_of_the_kernel_that_meets_the_input(kernel: int, size: int, expected: int) -> None:
    assert reach(kernel, size) == expected


@pytest.mark.parametrize("size,stride,groups", [(1, 1, 8), (2, 1, 8), (2, 2, 8), (3, 2, 1), (1, 1, 1), (6, 2, 8)])
def test_training_pass_equals_the_full_kernel(size: int, stride: int, groups: int) -> None:
    torch.manual_seed(0)
    conv = TrimmedConv2d(8, 8, 5, stride, 2, groups=groups, bias=False).train()
    x = torch.randn(4, 8, size, size, requires_grad=True)
    out = conv(x)
    full = F.conv2d(x, conv.weight, None, stride, 2, 1, groups)
    assert out.shape == full.shape
    torch.testing.assert_close(out, full, rtol=1e-5, atol=1e-6)
    grad = torch.randn_like(out)
    trimmed_grads = torch.autograd.grad(out, (x, conv.weight), grad)
    full_grads = torch.autograd.grad(full, (x, conv.weight), grad)
    for got, want in zip(trimmed_grads, full_grads):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_training_pass_on_a_small_map_runs_a_smaller_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[int, ...]] = []
    real = F.conv2d
    monkeypatch.setattr(F, "conv2d", lambda x, w, *a: seen.append(tuple(w.shape)) or real(x, w, *a))
    conv = TrimmedConv2d(8, 8, 5, 1, 2, groups=8, bias=False)
    conv.train()(torch.randn(2, 8, 1, 1))
    conv.eval()(torch.randn(2, 8, 1, 1))
    assert seen == [(8, 1, 1, 1), (8, 1, 5, 5)]  # training: the centre tap only; eval: the full kernel


def test_export_keeps_the_specs_kernels() -> None:
    """MobileNetV3-Small at 32x32 ends on 1x1 maps with 5x5 depthwise convolutions: the exported
    model (what a latency table times) still runs them at 5x5, even from a model left in training mode."""
    spec = reference_spec("mobilenetv3-small", resolution=32, num_classes=10, in_channels=1)
    model = build_model(spec).train()
    graph = onnx.load_from_string(export_spec_onnx(spec, model=model)).graph
    kernels = [next(a.ints for a in node.attribute if a.name == "kernel_shape") for node in graph.node
               if node.op_type == "Conv"]
    expected = [b.kernel for b in spec.blocks]
    depthwise = [list(k) for k in kernels if list(k) != [1, 1]][1:]  # the stem's 3x3 first
    assert depthwise == [[k, k] for k in expected]
