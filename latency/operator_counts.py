"""How many runtime operators a spec's network executes, by operator type.

A runtime pays a cost per operator it launches (torch eager's dispatch, ONNX Runtime int8's
quantize/dequantize pair around each convolution) that a table of another runtime does not
price: nn-Meter and LitePred fit their per-device models on kernels for that reason. The counts
are those of the network :mod:`search_spaces.builder` makes, read from its modules (one count
per leaf module type, ``op_Conv2d``, ``op_BatchNorm2d``, ``op_Hardswish``, ...), each block built
once on torch's meta device (no weights allocated) and cached, so pricing thousands of specs
costs microseconds each.
"""
from __future__ import annotations

from collections import Counter
from functools import lru_cache

import torch
from torch import nn

from search_spaces.builder import Head, build_block
from search_spaces.layers import ConvBNAct
from search_spaces.spec import ArchSpec, BlockSpec

OPERATOR_PREFIX = "op_"
"""Column prefix of an operator count (``op_`` + the torch module's class name)."""


def operator_name(module: nn.Module) -> str:
    """The torch operator class a module runs as (a subclass such as the builder's
    ``TrimmedConv2d`` counts as the ``Conv2d`` it exports to)."""
    return next(cls.__name__ for cls in type(module).__mro__ if cls.__module__.startswith("torch.nn"))


def _leaf_counts(module: nn.Module) -> Counter[str]:
    return Counter(OPERATOR_PREFIX + operator_name(m) for m in module.modules() if not any(m.children()))


@lru_cache(maxsize=4096)
def _block_counts(block: BlockSpec, in_channels: int) -> tuple[tuple[str, int], ...]:
    with torch.device("meta"):
        return tuple(sorted(_leaf_counts(build_block(in_channels, block)).items()))


_ENDS: dict[tuple, dict[str, int]] = {}


def _ends_counts(spec: ArchSpec) -> dict[str, int]:
    """Stem and head counts, cached on what their modules read."""
    stem = spec.stem
    key = (spec.in_channels, stem, spec.head, spec.blocks[-1].out_channels, spec.num_classes)
    if key not in _ENDS:
        with torch.device("meta"):
            ends = ConvBNAct(spec.in_channels, stem.out_channels, stem.kernel, stem.stride, act=stem.act)
            _ENDS[key] = dict(_leaf_counts(ends) + _leaf_counts(Head(spec)))
    return _ENDS[key]


def operator_counts(spec: ArchSpec) -> dict[str, float]:
    """Leaf modules of ``spec``'s network by type: stem, every block, head (residual adds and
    the SE multiply are not modules: ``n_residual`` and ``n_se`` of :mod:`latency.features`)."""
    counts: Counter[str] = Counter(_ends_counts(spec))
    for index, block in enumerate(spec.blocks):
        counts.update(dict(_block_counts(block, spec.in_channels_of(index))))
    return {name: float(value) for name, value in sorted(counts.items())}
