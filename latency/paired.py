"""Paired timing: the one measurement primitive of MobileNAS.

A machine's speed is not constant: turbo and thermal limits on laptops, neighbours on cloud
VMs, phones that heat up. The same model timed in windows a second apart on an idle 2-core VM
swung 1.7x, and no low percentile made one machine's absolute time repeatable. What holds is a
*ratio* taken at fine granularity: the candidate timed alternating with a fixed reference model
in blocks of a few runs (A A A, B B B, B B B, A A A, ...), each pair's ratio the fastest run of
the B block over the fastest of the A block, and the median of those ratios. A slow moment hits
both members of a pair alike and cancels; the fastest run of a block drops the runs that the
scheduler preempted (with other processes on the same cores, run-by-run ratios of single runs
swung 0.7x-3.8x while block minima held within 2%). Milliseconds are that ratio times the
reference's speed measured alongside (MnasNet section 3 times models on the target device; this
is how to do it when the device does not hold still).

The primitive is measurer-agnostic: a measurer with a ``runner(model, input_shape)`` (ONNX
Runtime, torch eager) is alternated run by run; any other (a device command) is alternated call
by call, each call a block of runs.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np
from scipy.stats import binom

from latency.measurers import Measurer, ModelLike

BlockRunner = Callable[[int], np.ndarray]
"""``run(k)``: time ``k`` consecutive runs of one model, samples in ms."""
CONFIDENCE = 0.95
DEFAULT_PAIRS = 24
DEFAULT_BLOCK = 3
BLOCK_RUNS = 10
"""Runs per block when none is given, for every model a measurer holds a session open for.
Under the load injector, a 32x32 model against MobileNetV3-Small (0.17 ms a run) over 400
pairs: blocks of 3 gave per-pair ratios spread 1.51-1.86 (5th-95th percentile) and an interval
of +/- 2%, blocks of 10 1.66-1.70 and +/- 0.1% (the first runs after switching models find cold
caches, and 3 short runs leave too few warm ones); MobileNetV3-Small against a 0.49 ms reference,
480 pairs, twice: blocks of 4 read 0.399x and 0.442x, blocks of 10 0.447x both times. Runs of
5-20 ms (224x224) were first given blocks of 3 (enough to last 2 ms), and 20 specs timed twice a
minute apart, 24 pairs each, repeated within 5% for 60%, 25%, 45% and 75% of them in four runs
of ``benchmarks/bench_paired_timing.py``; blocks of 10 in the same passes of the last two runs
for 95% and 100% (median differences 1.1% and 0.7%)."""
WHOLE_MODEL_PRECISION = 0.015
"""Whole-model checks (NetAdapt's, the pipeline's, ``compare``, ``train``) extend their pairs
until the ratio's interval is within +/- 1.5%: with blocks of 3, 24 pairs of a 32x32 model left
+/- 6.5% under the injector and repeats 7% apart."""
MAX_PAIRS = 480
MAX_SECONDS = 15.0
"""Pairs are added to one model only while its pairs have taken less than this (wall seconds): a
pair of 224x224 models lasts 30-120 ms, and 480 pairs of them would be minutes."""


@dataclass(frozen=True)
class PairedRatio:
    """A model's speed relative to a reference: ``ratio`` is the median of per-pair ratios
    (model / reference), ``low``/``high`` its distribution-free confidence interval
    (:data:`CONFIDENCE`), ``reference_ms`` the median of the reference's block minima in the same
    session and ``pairs`` the number of pairs behind it."""

    ratio: float
    low: float
    high: float
    reference_ms: float
    pairs: int

    @property
    def latency_ms(self) -> float:
        """The ratio in milliseconds at the speed the reference ran at in this session."""
        return self.ratio * self.reference_ms

    @property
    def relative_halfwidth(self) -> float:
        """Half the interval's width relative to the ratio (0.02 = +/-2%)."""
        return (self.high - self.low) / (2 * self.ratio)

    def in_units_of(self, reference_ms: float) -> float:
        """The ratio in milliseconds at another speed of the reference (e.g. a table's baseline)."""
        return self.ratio * reference_ms

    def to_dict(self) -> dict[str, float]:
        return {**asdict(self), "latency_ms": self.latency_ms}

    def describe(self) -> str:
        """``1.234x [1.210, 1.251]`` (ratio with its interval)."""
        return f"{self.ratio:.3f}x [{self.low:.3f}, {self.high:.3f}]"


def median_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """Median of ``values`` and its distribution-free confidence interval: the order statistics
    whose ranks bound the median with probability ``confidence`` (binomial(n, 1/2))."""
    ordered = np.sort(np.asarray(values, dtype=float))
    n = len(ordered)
    if n == 0:
        raise ValueError("no values: a median needs at least one")
    lower = int(binom.ppf((1 - confidence) / 2, n, 0.5))
    lower = min(max(lower - 1, 0), n - 1)
    return float(np.median(ordered)), float(ordered[lower]), float(ordered[n - 1 - lower])


def block_runner(measurer: Measurer, model: ModelLike, input_shape: tuple[int, ...], warmup: int = 5) -> BlockRunner:
    """A warmed-up ``run(k)`` for ``model``: run by run where the measurer can hold a session
    open (``runner``), else one ``measure`` call per block (its own repeats, e.g. a device)."""
    make = getattr(measurer, "runner", None)
    if make is None:
        return lambda k: np.asarray(measurer.measure(model, input_shape), dtype=float)
    runner = make(model, input_shape)
    runner.run(0, warmup)
    return lambda k: runner.run(k)


def paired_ratios(run_model: BlockRunner, run_reference: BlockRunner, *, pairs: int = DEFAULT_PAIRS,
                  block: int = DEFAULT_BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """Per-pair ratios model/reference over ``pairs`` pairs of ``block`` runs each (the fastest
    run of each block), the order alternating (AB, BA, ...) so a trend within a pair cancels;
    and the reference's block minima (ms)."""
    if pairs < 1 or block < 1:
        raise ValueError(f"pairs = {pairs!r}, block = {block!r} are not allowed; expected integers >= 1")
    ratios, reference = np.empty(pairs), []
    for i in range(pairs):
        if i % 2 == 0:
            ref, model = run_reference(block), run_model(block)
        else:
            model, ref = run_model(block), run_reference(block)
        ratios[i] = float(np.min(model)) / float(np.min(ref))
        reference.append(float(np.min(ref)))
    return ratios, np.asarray(reference)


def summarise(ratios: np.ndarray, reference_samples: np.ndarray) -> PairedRatio:
    """:class:`PairedRatio` of per-pair ``ratios`` and the reference's samples (ms)."""
    finite = ratios[np.isfinite(ratios) & (ratios > 0)]
    if finite.size == 0:
        raise ValueError("no usable pair: every per-pair ratio was zero, negative or not a number")
    ratio, low, high = median_interval(finite)
    return PairedRatio(ratio, low, high, float(np.median(reference_samples)), int(finite.size))


def measure_paired(measurer: Measurer, models: Sequence[ModelLike], shapes: Sequence[tuple[int, ...]],
                   reference: ModelLike, reference_shape: tuple[int, ...], *, pairs: int = DEFAULT_PAIRS,
                   block: int | None = None, passes: int = 1, precision: float | None = None,
                   max_pairs: int = MAX_PAIRS, max_seconds: float = MAX_SECONDS) -> list[PairedRatio]:
    """Each model's :class:`PairedRatio` to ``reference``, all through ``measurer``.

    ``block``: runs per block, None for :data:`BLOCK_RUNS` (:data:`DEFAULT_BLOCK` for a
    measurer without a runner, whose call is a block of its own). ``passes`` > 1 cycles over the models that many
    times (``pairs / passes`` pairs each time) and pools the pairs, so a slow minute is spread
    over every model rather than falling on one.
    ``precision`` (e.g. 0.015): then the models whose interval is wider than +/- that share of
    their ratio get more pairs, ``pairs`` at a time, until it is met or ``max_pairs`` pairs or
    ``max_seconds`` of that model's pairing are spent; the pairs go where the machine was noisy,
    and a quiet machine pays nothing extra.
    """
    if len(models) != len(shapes):
        raise ValueError(f"{len(models)} models but {len(shapes)} input shapes")
    ref_runner = block_runner(measurer, reference, reference_shape)
    runners = [block_runner(measurer, model, shape) for model, shape in zip(models, shapes)]
    if block is None:
        block = BLOCK_RUNS if getattr(measurer, "runner", None) is not None else DEFAULT_BLOCK
    blocks = [block] * len(runners)
    per_pass = max(1, math.ceil(pairs / passes))
    ratios: list[list[np.ndarray]] = [[] for _ in models]
    refs: list[list[np.ndarray]] = [[] for _ in models]
    seconds = [0.0 for _ in models]

    def add(index: int, count: int) -> None:
        tick = time.perf_counter()
        r, ref = paired_ratios(runners[index], ref_runner, pairs=count, block=blocks[index])
        seconds[index] += time.perf_counter() - tick
        ratios[index].append(r)
        refs[index].append(ref)

    for _ in range(passes):
        for index in range(len(runners)):
            add(index, per_pass)
    results = [summarise(np.concatenate(r), np.concatenate(f)) for r, f in zip(ratios, refs)]
    while precision is not None:
        wide = [i for i, result in enumerate(results) if result.relative_halfwidth > precision
                and sum(map(len, ratios[i])) < max_pairs and seconds[i] < max_seconds]
        if not wide:
            break
        for index in wide:
            add(index, min(pairs, max_pairs - sum(map(len, ratios[index]))))
            results[index] = summarise(np.concatenate(ratios[index]), np.concatenate(refs[index]))
    return results


def ratio_of_ratios(a: PairedRatio, b: PairedRatio) -> float:
    """``a / b`` for two ratios to the same reference (e.g. a model against a target model)."""
    return a.ratio / b.ratio
