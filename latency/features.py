"""Features of a whole model for the learned latency predictor (:mod:`latency.learned`).

A per-layer table sum misses what happens *between* layers: weights evicted from the cache
by the next layer, activations that no longer fit, per-operator overheads that depend on the
neighbours. nn-Meter (Zhang et al., MobiSys 2021) learns per-kernel predictors from sampled
configurations and LitePred (Feng et al., NSDI 2024) adds device-specific features and
sampling where the predictor is unsure; here the unit of learning is the whole model and the
features combine what the table knows with what the spec shows:

- the calibrated table prediction itself (:mod:`latency.calibration`) and its inputs;
- per-stage sums (a stage is a feature-map size: the number of stride-2 steps from the input)
  of warm and in-context table entries, block counts, MAdds, activations and weight bytes;
- the table entry of every block position (0 past the last block), stem and head;
- operator counts (op, kernel, stride, SE, nonlinearity, residual, depthwise-separable);
- weight and activation bytes against the cache sizes in the table's fingerprint;
- feature-map sizes and the input shape.

Every feature is a deterministic function of the spec and the table; :data:`FEATURE_NAMES`
fixes their order and :data:`FEATURES_VERSION` is recorded with a fitted model, which is
refused when the two differ.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Protocol, Sequence

import numpy as np

from latency.calibration import apply_calibration
from latency.keys import LayerKey, key_activations, key_cost, spec_keys
from search_spaces.blocks.registry import block_type
from search_spaces.spec import ArchSpec

FEATURES_VERSION = 1
LEVELS = 6
"""Stages by feature-map size: level ``l`` holds the layers fed ``resolution / 2**l`` maps."""
POSITIONS = 24
"""Block positions with their own table entry (the MnasNet space has at most 24 blocks)."""
DEFAULT_CACHE_KIB = {"l1d": 32, "l2": 1024, "l3": 32768}
"""Used when a table's fingerprint records no cache sizes (e.g. a device behind a command)."""
GLOBAL = ("calibrated_ms", "sum_ms", "cold_sum_ms", "n_layers", "params_m", "madds_m", "act_m", "stem_ms", "head_ms",
          "stem_cold_ms", "head_cold_ms", "resolution", "in_channels", "num_classes", "head_in_channels",
          "head_feature_channels", "head_hidden_channels", "max_channels", "final_side")
# By block type (search_spaces.blocks): n_bneck counts the blocks with a hidden width (the types
# that expand), n_conv the others, n_dwsep the expanding ones without an expansion conv; the
# names are the built-in types', kept so that fitted models stay valid.
COUNTS = ("n_bneck", "n_conv", "n_dwsep", "n_se", "n_relu", "n_relu6", "n_hswish", "n_residual", "n_stride2", "n_k3",
          "n_k5", "n_k7")
CACHE = ("weight_over_l2", "weight_over_l3", "max_weight_over_l1d", "max_weight_over_l2", "n_weight_over_l1d",
         "n_weight_over_l2", "share_weight_over_l2", "max_act_over_l2", "n_act_over_l2", "act_over_l2")
LEVEL_FIELDS = ("ms", "cold_ms", "blocks", "madds_m", "act_m", "weight_kib")
FEATURE_NAMES: tuple[str, ...] = (GLOBAL + COUNTS + CACHE
                                  + tuple(f"L{level}_{name}" for level in range(LEVELS) for name in LEVEL_FIELDS)
                                  + tuple(f"pos{index}_ms" for index in range(POSITIONS)))


class FeatureTable(Protocol):
    """What the features read of a table (:class:`latency.table.LatencyTable`)."""

    manifest: dict

    def lookup(self, key: LayerKey) -> float: ...

    def lookup_cold(self, key: LayerKey) -> float: ...

    def keys_sum_ms(self, keys: Sequence[LayerKey], *, cold: bool = False) -> float: ...

    def calibration(self, resolution: int) -> dict: ...


@lru_cache(maxsize=65536)
def _cost(key: LayerKey) -> tuple[int, int, int]:
    """(params, MAdds, activation elements) of ``key``, cached: the counts build carrier specs."""
    params, madds = key_cost(key)
    return params, madds, key_activations(key)


def cache_bytes(manifest: dict) -> dict[str, int]:
    """Cache sizes (bytes) from the table's fingerprint, :data:`DEFAULT_CACHE_KIB` where absent."""
    recorded = manifest.get("fingerprint", {}).get("cache_kib") or {}
    return {name: 1024 * int(recorded.get(name) or default) for name, default in DEFAULT_CACHE_KIB.items()}


def bytes_per_param(manifest: dict) -> int:
    """1 for an int8 measurer, else 4 (float32)."""
    return 1 if "int8" in str(manifest.get("measurer", {}).get("measurer", "")) else 4


@lru_cache(maxsize=1024)
def _level(resolution: int, side: int) -> int:
    return min(LEVELS - 1, max(0, int(round(math.log2(max(resolution, 1) / max(side, 1))))))


def _counts(spec: ArchSpec) -> dict[str, float]:
    blocks = spec.blocks
    in_channels = [spec.in_channels_of(i) for i in range(len(blocks))]
    acts = [spec.stem.act, spec.head.act, *(b.act for b in blocks)]
    kinds = [block_type(b.op) for b in blocks]
    return {"n_bneck": sum(k.expands for k in kinds), "n_conv": sum(not k.expands for k in kinds),
            "n_dwsep": sum(k.expands and not k.expansion_conv(b, c) for k, b, c in zip(kinds, blocks, in_channels)),
            "n_se": sum(bool(b.se) for b in blocks), "n_relu": acts.count("relu"), "n_relu6": acts.count("relu6"),
            "n_hswish": acts.count("hswish"), "n_residual": sum(bool(b.skip) for b in blocks),
            "n_stride2": sum(b.stride == 2 for b in blocks) + (spec.stem.stride == 2),
            "n_k3": sum(b.kernel == 3 for b in blocks), "n_k5": sum(b.kernel == 5 for b in blocks),
            "n_k7": sum(b.kernel == 7 for b in blocks)}


def _cache_features(costs: np.ndarray, manifest: dict) -> dict[str, float]:
    caches, width = cache_bytes(manifest), bytes_per_param(manifest)
    weights, acts = costs[:, 0] * width, costs[:, 2] * 4  # activations stay float32 between layers
    l1, l2, l3 = caches["l1d"], caches["l2"], caches["l3"]
    return {"weight_over_l2": weights.sum() / l2, "weight_over_l3": weights.sum() / l3,
            "max_weight_over_l1d": weights.max() / l1, "max_weight_over_l2": weights.max() / l2,
            "n_weight_over_l1d": float(np.sum(weights > l1)), "n_weight_over_l2": float(np.sum(weights > l2)),
            "share_weight_over_l2": float(weights[weights > l2].sum() / max(weights.sum(), 1.0)),
            "max_act_over_l2": acts.max() / l2, "n_act_over_l2": float(np.sum(acts > l2)), "act_over_l2": acts.sum() / l2}


def _level_features(levels: np.ndarray, columns: np.ndarray) -> dict[str, float]:
    """Per-level sums of ``columns`` (one row per layer, :data:`LEVEL_FIELDS` in order)."""
    sums = np.eye(LEVELS)[levels].T @ columns
    return {f"L{level}_{name}": float(sums[level, j]) for level in range(LEVELS) for j, name in enumerate(LEVEL_FIELDS)}


def _layer_columns(table: FeatureTable, spec: ArchSpec, keys: Sequence[LayerKey]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per layer: warm and cold table entries, (params, MAdds, activations), and level."""
    warm = np.array([table.lookup(k) for k in keys])
    cold = np.array([table.lookup_cold(k) for k in keys])
    costs = np.array([_cost(k) for k in keys], dtype=float)
    levels = np.array([_level(spec.resolution, k.input_side) for k in keys])
    return np.stack([warm, cold]), costs, levels


def _cost_totals(costs: np.ndarray) -> dict[str, float]:
    """Layers, and parameters, MAdds and activations in millions, of per-layer ``costs``."""
    return {"n_layers": float(len(costs)), "params_m": costs[:, 0].sum() / 1e6, "madds_m": costs[:, 1].sum() / 1e6,
            "act_m": costs[:, 2].sum() / 1e6}


def table_free_features(spec: ArchSpec) -> dict[str, float]:
    """The features of :data:`FEATURE_NAMES` that read no table (block counts by type, SE,
    activation, kernel size; layers, parameters, MAdds, activations): what a map fitted on
    measurements whose source table is not at hand can weigh."""
    costs = np.array([_cost(k) for k in spec_keys(spec)], dtype=float)
    return {**{name: float(v) for name, v in _counts(spec).items()}, **_cost_totals(costs)}


def model_features(table: FeatureTable, spec: ArchSpec) -> dict[str, float]:
    """Every feature of :data:`FEATURE_NAMES` for ``spec`` (see the module docstring).

    Raises:
        latency.table.MissingKeyError: a layer of ``spec`` is not in the table, or the table
            has no calibration for ``spec.resolution``.
    """
    keys = spec_keys(spec)
    (warm, cold), costs, levels = _layer_columns(table, spec, keys)
    base = {"sum_ms": float(warm.sum()), "cold_sum_ms": float(cold.sum()), **_cost_totals(costs)}
    base["sum_ms_sq"] = base["sum_ms"] ** 2
    values: dict[str, float] = {
        **base, "calibrated_ms": apply_calibration(table.calibration(spec.resolution), base),
        "stem_ms": warm[0], "head_ms": warm[-1], "stem_cold_ms": cold[0], "head_cold_ms": cold[-1],
        "resolution": spec.resolution, "in_channels": spec.in_channels, "num_classes": spec.num_classes,
        "head_in_channels": spec.blocks[-1].out_channels, "head_feature_channels": spec.head.feature_channels,
        "head_hidden_channels": spec.head.hidden_channels or 0,
        "max_channels": max(max(b.exp_channels or 0, b.out_channels) for b in spec.blocks),
        "final_side": spec.final_resolution}
    values.update(_counts(spec))
    values.update(_cache_features(costs, table.manifest))
    width = bytes_per_param(table.manifest)
    columns = np.column_stack([warm, cold, [k.kind == "block" for k in keys], costs[:, 1] / 1e6, costs[:, 2] / 1e6,
                               costs[:, 0] * width / 1024])
    values.update(_level_features(levels, columns))
    values.update({f"pos{i}_ms": (float(warm[i + 1]) if i < len(keys) - 2 else 0.0) for i in range(POSITIONS)})
    return {name: float(values[name]) for name in FEATURE_NAMES}


def feature_matrix(table: FeatureTable, specs: Sequence[ArchSpec]) -> np.ndarray:
    """``len(specs) x len(FEATURE_NAMES)`` float64 matrix of :func:`model_features`."""
    rows = [list(model_features(table, spec).values()) for spec in specs]
    return np.asarray(rows, dtype=float).reshape(len(specs), len(FEATURE_NAMES))
