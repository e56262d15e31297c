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
from dataclasses import dataclass, field
from typing import Callable

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
    calibration_rounds: int = setting(3, low=1)
    l2_bytes: int = field(default_factory=l2_cache_bytes)
    timing: str = "paired"  # recorded: every figure is a paired ratio to the reference (latency.paired)
    # each entry divided by the reference measured alongside it (paired timing); tables built
    # before paired timing record False and keep raw entries
    normalise_entries: bool = True
    reference_block: int = setting(5, low=1)  # reference runs per block (min of the block)
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
    run of each), the reference first in even pairs and last in odd ones (paired timing)."""
    rows = np.empty((config.key_pairs, 3))
    for i in range(config.key_pairs):
        ref = fastest(reference(config.reference_block)) if i % 2 == 0 else None
        warm, cold = fastest(runner.run_warm(config.key_block)), fastest(runner.run_cold(1))
        ref = fastest(reference(config.reference_block)) if ref is None else ref
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
