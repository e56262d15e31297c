"""Timing one layer key of a latency table: warm and in-context (cold) samples in reference units.

A key is exported alone and loaded into round-robin copies (:mod:`latency.incontext`). On ONNX
Runtime it is timed *interleaved* with the table's reference model (paired timing,
:mod:`latency.paired`): pairs of a reference block and a warm block and a cold round of the key,
each block's fastest run, the figure the median of the per-pair ratios times the reference's
median among them. Under load, a key timed between two reference blocks only (*bracketed*, the
method of tables built before, and of measurers that cannot hold a session open between blocks)
met another phase of the neighbour than its references did: a lazily built 32x32 head entry
read 0.508 ms for 576 channels against 0.299 ms for 568.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

import numpy as np
import torch

from latency.incontext import RoundRobinRunner, copies_for, l2_cache_bytes
from latency.keys import LayerKey, key_cost, key_module
from latency.measurers import Measurer, OrtMeasurer, TorchMeasurer, full_input_shape
from latency.paired import CLOCK_ADVICE, BlockRunner, fastest
from search_spaces.onnx_export import export_module_onnx
from storage.settings import check_settings, setting

KEY_TIMINGS = ("interleaved", "bracketed")


@dataclass(frozen=True)
class BuildConfig:
    """Build knobs. ``max_spread`` is the relative interquartile range above which a key is
    measured again (up to ``max_passes`` times) and its samples pooled."""

    batch_keys: int = setting(100, low=1)
    max_spread: float = setting(0.08, kind=float, low=0, low_open=True)
    max_passes: int = setting(3, low=1)
    calibration_group: int = setting(10, low=1)
    # passes over the calibration specs, each with fresh sessions; the calibration_pairs are
    # shared over them (latency.paired.measure_paired), so more passes cost only sessions
    calibration_rounds: int = setting(3, low=1)
    l2_bytes: int = field(default_factory=l2_cache_bytes)
    timing: str = "paired"  # recorded: every figure is a paired ratio to the reference (latency.paired)
    # each entry divided by the reference measured alongside it (paired timing); tables built
    # before paired timing record False and keep raw entries
    normalise_entries: bool = True
    # reference runs per block (min of the block); None: sized by the reference's run time when a
    # table is begun (reference_block_runs), then recorded
    reference_block: int | None = setting(None, low=1, optional=True)
    # "interleaved": each key's blocks alternate with reference blocks (paired timing, ONNX Runtime);
    # "bracketed" (tables before it, and measurers without a runner): one reference block before and after
    key_timing: str = "interleaved"
    key_pairs: int = setting(8, low=1)  # interleaved: pairs of (reference block, key blocks) per pass
    key_block: int = setting(3, low=1)  # interleaved: warm runs per key block (min of the block)
    calibration_pairs: int = setting(24, low=1)  # pairs of blocks per calibration spec (latency.paired.BLOCK_RUNS)

    def __post_init__(self) -> None:
        check_settings(self, "build.{name}")
        if self.key_timing not in KEY_TIMINGS:
            raise ValueError(f"build.key_timing = {self.key_timing!r} is not allowed; expected one of {KEY_TIMINGS}")


MEASURING_FIELDS = ("max_spread", "max_passes", "l2_bytes", "timing", "normalise_entries", "reference_block",
                   "key_timing", "key_pairs", "key_block", "calibration_pairs")
"""The settings that say what a table's figures mean. A table is measured alike throughout: a
resumed or lazily extended table keeps the values its manifest recorded, whatever the code's
defaults or the caller's config (the others, ``batch_keys``, ``calibration_group`` and
``calibration_rounds``, only schedule the work and stay the caller's)."""
FIXED_REFERENCE_BLOCK = 5
"""Reference runs per block where blocks are not sized by time: tables begun before they were,
and measurers that run one block per call with their own repeats (a device command)."""
UNRECORDED = {"reference_block": FIXED_REFERENCE_BLOCK}
"""Values of the measuring settings that a table's manifest lacks because they were not recorded
when it was built: the code's defaults of that time."""
REFERENCE_BLOCK_MS = 1.5
"""A table's reference blocks last at least this long by the reference's fastest run. Under the
load injector on a 2-core VM (``benchmarks/bench_reference_block.py``, 60 keys, two passes): at
224x224 (a reference of 3.9 ms a run under load) blocks of 1, 2 and 5 runs repeated alike (median
|retest| 2.8%, 3.0%, 2.9%) and 1 run cut a key's time from 0.37 to 0.14 s (median); at 32x32
(0.64 ms under load, 0.35 ms at its fastest) blocks of 2 runs (0.7 ms at the fastest) read
entries 17% lower than blocks of 5 (1.75 ms) and repeated worse (22% against 10% in that pass),
while 10 and 20 runs did no better than 5 (3.8%, 3.0% against 3.7% in another)."""


def reference_block_runs(reference_ms: float, block_ms: float = REFERENCE_BLOCK_MS) -> int:
    """Runs of a ``reference_ms`` reference that last at least ``block_ms``."""
    if not (math.isfinite(reference_ms) and reference_ms > 0):
        raise ValueError(f"the reference model's runs all read 0 ms ({CLOCK_ADVICE})")
    return max(1, math.ceil(block_ms / reference_ms))


def recorded_config(recorded: Mapping[str, Any], given: BuildConfig) -> BuildConfig:
    """``given`` with the measuring settings of a table's recorded ``build`` (ValueError naming
    a recorded value out of bounds)."""
    kept = {name: recorded.get(name, UNRECORDED.get(name)) for name in MEASURING_FIELDS}
    return replace(given, **{name: value for name, value in kept.items() if value is not None})


def relative_spread(samples: np.ndarray) -> float:
    q25, q50, q75 = np.percentile(samples, [25, 50, 75])
    return float((q75 - q25) / q50)


def _adaptive(sample: Callable[[], np.ndarray], config: BuildConfig) -> np.ndarray:
    """One pass, then more (pooled) while the relative spread exceeds ``config.max_spread``."""
    samples = sample()
    for _ in range(config.max_passes - 1):
        if relative_spread(samples) <= config.max_spread:
            break
        samples = np.concatenate([samples, sample()])
    return samples


def _round_robin(measurer: OrtMeasurer, key: LayerKey, config: BuildConfig) -> RoundRobinRunner:
    """``key``'s layer exported and loaded into enough copies to run cold (:mod:`latency.incontext`)."""
    torch.manual_seed(0)
    module = key_module(key).eval()
    shape = full_input_shape(key.input_shape(), measurer.settings.batch)
    data = export_module_onnx(module, shape)
    copies = copies_for(4 * key_cost(key)[0], config.l2_bytes)
    runner = RoundRobinRunner(measurer.prepare_onnx(data, shape), shape, measurer.settings, copies)
    runner.run_warm(0, measurer.settings.warmup)
    return runner


def _key_samples(measurer: Measurer, key: LayerKey, config: BuildConfig) -> tuple[np.ndarray, np.ndarray, int]:
    """Warm samples, cold (in-context) samples and the copies used; see :mod:`latency.incontext`.
    Measurers other than ONNX Runtime give warm samples only (cold = warm, copies = 1)."""
    if not isinstance(measurer, OrtMeasurer):
        torch.manual_seed(0)
        module = key_module(key).eval()
        if not isinstance(measurer, TorchMeasurer):
            shape = full_input_shape(key.input_shape(), int(measurer.settings_dict()["batch"]))
            module = export_module_onnx(module, shape)
        warm = _adaptive(lambda: measurer.measure(module, key.input_shape()), config)
        return warm, warm, 1
    runner, repeats = _round_robin(measurer, key, config), measurer.settings.repeats
    warm = _adaptive(lambda: runner.run_warm(repeats), config)
    cold = _adaptive(lambda: runner.run_cold(max(2, math.ceil(repeats / runner.copies))), config)
    return warm, cold, runner.copies


def _interleaved_pass(runner: RoundRobinRunner, reference: BlockRunner, config: BuildConfig) -> np.ndarray:
    """``config.key_pairs`` rows of (warm ratio, cold ratio, reference ms): each pair a block of
    the reference (its fastest run) and a warm block and one cold round of the key (the fastest
    run of each), the reference first in even pairs and last in odd ones (paired timing). Reference
    blocks of ``config.reference_block`` runs (left open: :data:`FIXED_REFERENCE_BLOCK`)."""
    rows, block = np.empty((config.key_pairs, 3)), config.reference_block or FIXED_REFERENCE_BLOCK
    for i in range(config.key_pairs):
        ref = fastest(reference(block)) if i % 2 == 0 else None
        warm, cold = fastest(runner.run_warm(config.key_block)), fastest(runner.run_cold(1))
        ref = fastest(reference(block)) if ref is None else ref
        rows[i] = (warm / ref, cold / ref, ref)
    return rows[np.isfinite(rows).all(axis=1)]  # a block the clock did not see is dropped


def _interleaved_samples(measurer: OrtMeasurer, key: LayerKey, config: BuildConfig,
                         reference: BlockRunner) -> tuple[np.ndarray, np.ndarray, int, float]:
    """Warm and cold samples of ``key`` as ratios to the reference times the reference's median
    in the same passes (ms at that speed), the copies used and that median: more passes, pooled,
    while the warm ratios spread beyond ``config.max_spread``."""
    runner = _round_robin(measurer, key, config)
    rows = _interleaved_pass(runner, reference, config)
    for _ in range(config.max_passes - 1):
        if len(rows) and relative_spread(rows[:, 0]) <= config.max_spread:
            break
        rows = np.concatenate([rows, _interleaved_pass(runner, reference, config)])
    if not len(rows):
        raise ValueError(f"layer {key.label()}: no pair was timed, every run read 0 ms ({CLOCK_ADVICE})")
    ref_ms = float(np.median(rows[:, 2]))
    return rows[:, 0] * ref_ms, rows[:, 1] * ref_ms, runner.copies, ref_ms


def measure_key(measurer: Measurer, key: LayerKey, config: BuildConfig,
                reference: BlockRunner | None = None) -> dict[str, object]:
    """One layer's warm and in-context (cold) samples summarised as a table row. With a
    ``reference`` runner and an ONNX Runtime measurer the key is timed interleaved with it and
    ``ref_ms`` is the reference's median in between; else ``ref_ms`` is left for the caller."""
    if reference is not None and isinstance(measurer, OrtMeasurer):
        warm, cold, copies, ref_ms = _interleaved_samples(measurer, key, config, reference)
    else:
        (warm, cold, copies), ref_ms = _key_samples(measurer, key, config), float("nan")
    params, madds = key_cost(key)
    median, cold_median = float(np.median(warm)), float(np.median(cold))
    return {**key.as_row(), "median_ms": median, "raw_median_ms": median, "p90_ms": float(np.percentile(warm, 90)),
            "std_ms": float(np.std(warm)), "n": int(warm.size), "cold_median_ms": cold_median,
            "raw_cold_median_ms": cold_median, "cold_n": int(cold.size), "copies": copies, "ref_ms": ref_ms,
            "params": params, "madds": madds}
