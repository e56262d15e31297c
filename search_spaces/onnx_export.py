"""ONNX export of a spec's model, with HardSwish/HardSigmoid as native ONNX ops (opset >= 14).

Uses torch's TorchScript-based exporter (``dynamo=False``): it needs no extra package and
is far faster per block than the dynamo exporter (figure: results/latency/README.md), which
matters when a latency table build exports thousands of blocks. Outputs were checked equal
to torch within 1e-6 in ONNX Runtime (tests/search_spaces/test_onnx_export.py).
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import torch
from torch import nn

from search_spaces.builder import build_model
from search_spaces.spec import ArchSpec

DEFAULT_OPSET = 17


def export_module_onnx(module: nn.Module, input_shape: tuple[int, ...], path: str | Path | None = None,
                       *, opset: int = DEFAULT_OPSET) -> bytes:
    """Export ``module`` (put in eval mode) for a fixed ``input_shape``; returns the ONNX
    bytes and also writes them to ``path`` when given."""
    if opset < 14:
        raise ValueError(f"opset = {opset} is not allowed; HardSwish needs opset >= 14")
    module = module.eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(module, (torch.zeros(input_shape),), buffer, dynamo=False, opset_version=opset,
                          input_names=["input"], output_names=["output"], do_constant_folding=True)
    data = buffer.getvalue()
    if path is not None:
        Path(path).write_bytes(data)
    return data


def export_spec_onnx(spec: ArchSpec, path: str | Path | None = None, *, batch: int = 1,
                     opset: int = DEFAULT_OPSET, model: nn.Module | None = None) -> bytes:
    """Export the model of ``spec`` (freshly built unless ``model`` is given) at batch ``batch``."""
    model = build_model(spec) if model is None else model
    shape = (batch, spec.in_channels, spec.resolution, spec.resolution)
    return export_module_onnx(model, shape, path, opset=opset)
