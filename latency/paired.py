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

Whole models are paired in passes with fresh sessions, the reference's made first in one and
last in the next (:data:`SESSION_ORDERS`): a model paired with itself read 2-3% fast when its
session was made after the reference's, and slow the other way round.

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
SESSION_ORDERS = 2
"""Whole-model pairs are taken in passes with fresh sessions, the reference's made first in
one pass and last in the next. The order is not neutral: MobileNetV3-Small paired with a second
session of itself read 0.976x (6 repeats, 0.972-0.984) with the reference's session made first
and 1.025x (1.008-1.030) with it made last, under the load injector, on the 2-core VM; every
model timed against a reference made before it ran 2-3% fast (the pipeline's measure stage read
MobileNetV3-Small at 0.94x-0.98x itself in six runs)."""
WHOLE_MODEL_SECONDS = 10.0
"""The checks that decide where NetAdapt lands (the pipeline's start and round checks, the last
step's proposals) spread their passes over at least this many wall seconds. The ratio of two
models drifts with the machine's load on a scale of ten seconds, beyond what one short
measurement's interval shows: one 32x32 searched model against MobileNetV3-Small, checked 313
times back to back under the load injector (0.5 s a check, passing +/- 1.5%), read with a
standard deviation of 1.24% (max/min 1.08); the means of 4, 16 and 32 consecutive checks (2, 8
and 15 s) varied by 0.95%, 0.62% and 0.49%, not the 0.62%, 0.31% and 0.22% of independent
readings. Two short checks of one model minutes apart read 4-5% apart in a benchmark whose band
is 5% wide."""
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


CLOCK_ADVICE = "a clock that does not advance over one run reads 0: time on the wall clock (clock: wall)"
"""What every 'no usable reading' error tells the user."""


def fastest(samples: np.ndarray) -> float:
    """The fastest run of a block (ms), ignoring readings of 0 or less: a clock that did not
    advance over a run (a thread clock updated only at scheduler ticks, as some VMs and Windows
    keep it) read 0 once in a pipeline run on this project's VM, and its ratio divided by zero.
    NaN when no reading of the block is usable (the pair is then dropped)."""
    samples = np.asarray(samples, dtype=float)
    usable = samples[np.isfinite(samples) & (samples > 0)]
    return float(usable.min()) if usable.size else math.nan


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
        ratios[i] = fastest(model) / fastest(ref)
        reference.append(fastest(ref))
    return ratios, np.asarray(reference)


def summarise(ratios: np.ndarray, reference_samples: np.ndarray) -> PairedRatio:
    """:class:`PairedRatio` of per-pair ``ratios`` and the reference's samples (ms)."""
    finite = ratios[np.isfinite(ratios) & (ratios > 0)]
    if finite.size == 0:
        raise ValueError(f"no usable pair: every per-pair ratio was zero, negative or not a number ({CLOCK_ADVICE})")
    ratio, low, high = median_interval(finite)
    return PairedRatio(ratio, low, high, float(np.nanmedian(reference_samples)), int(finite.size))


def fresh_sessions(measurer: Measurer, models: Sequence[ModelLike], shapes: Sequence[tuple[int, ...]],
                   reference: ModelLike, reference_shape: tuple[int, ...], *,
                   reference_first: bool) -> tuple[BlockRunner, list[BlockRunner]]:
    """Fresh runners (sessions) of the reference and of ``models``, the reference's made first
    or last."""
    def make_models() -> list[BlockRunner]:
        return [block_runner(measurer, model, shape) for model, shape in zip(models, shapes)]

    if reference_first:
        ref_runner = block_runner(measurer, reference, reference_shape)
        return ref_runner, make_models()
    runners = make_models()
    return block_runner(measurer, reference, reference_shape), runners


def balanced(groups: Sequence[np.ndarray]) -> np.ndarray:
    """Per-pair ratios of several session orders, each group scaled so that its median is the
    geometric mean of the groups' medians: an offset that the order of making the sessions adds
    to one group cancels, and every pair still counts towards the interval."""
    groups = [g[np.isfinite(g) & (g > 0)] for g in groups]
    groups = [g for g in groups if g.size]
    if not groups:
        return np.empty(0)
    medians = np.array([np.median(g) for g in groups])
    centre = float(np.exp(np.mean(np.log(medians))))
    return np.concatenate([g * (centre / m) for g, m in zip(groups, medians)])


def measure_paired(measurer: Measurer, models: Sequence[ModelLike], shapes: Sequence[tuple[int, ...]],
                   reference: ModelLike, reference_shape: tuple[int, ...], *, pairs: int = DEFAULT_PAIRS,
                   block: int | None = None, passes: int = 1, precision: float | None = None,
                   max_pairs: int = MAX_PAIRS, max_seconds: float = MAX_SECONDS,
                   min_seconds: float = 0.0) -> list[PairedRatio]:
    """Each model's :class:`PairedRatio` to ``reference``, all through ``measurer``.

    ``block``: runs per block, None for :data:`BLOCK_RUNS` (:data:`DEFAULT_BLOCK` for a
    measurer without a runner). The ``pairs`` are shared evenly over ``passes`` (at least
    :data:`SESSION_ORDERS`) cycles over the models, each pass with fresh sessions made in the
    other order: a slow minute is spread over every model, and the order cancels (:func:`balanced`).
    ``precision`` (e.g. 0.015): models whose interval is wider than +/- that share of their ratio
    get ``pairs`` more (half in each order) until it is met or ``max_pairs`` pairs or
    ``max_seconds`` of their pairing are spent: a quiet machine pays nothing extra.
    ``min_seconds``: passes over every model (both orders, ``pairs`` more each) go on until the
    measurement has lasted this long (:data:`WHOLE_MODEL_SECONDS`), past ``max_pairs``.
    """
    if len(models) != len(shapes):
        raise ValueError(f"{len(models)} models but {len(shapes)} input shapes")
    if block is None:
        block = BLOCK_RUNS if getattr(measurer, "runner", None) is not None else DEFAULT_BLOCK
    passes = max(passes, SESSION_ORDERS)
    per_pass = [pairs // passes + (p < pairs % passes) for p in range(passes)]  # ``pairs`` in all
    ratios: list[list[list[np.ndarray]]] = [[[] for _ in range(SESSION_ORDERS)] for _ in models]
    refs: list[list[np.ndarray]] = [[] for _ in models]
    seconds = [0.0 for _ in models]

    def run_pass(indices: Sequence[int], counts: Sequence[int], order: int) -> None:
        ref_runner, runners = fresh_sessions(measurer, [models[i] for i in indices], [shapes[i] for i in indices],
                                             reference, reference_shape, reference_first=order == 0)
        for index, runner, count in zip(indices, runners, counts):
            if count < 1:
                continue
            tick = time.perf_counter()
            r, ref = paired_ratios(runner, ref_runner, pairs=count, block=block)
            seconds[index] += time.perf_counter() - tick
            ratios[index][order].append(r)
            refs[index].append(ref)

    def result(index: int) -> PairedRatio:
        groups = [np.concatenate(g) if g else np.empty(0) for g in ratios[index]]
        return summarise(balanced(groups), np.concatenate(refs[index]))

    def taken(index: int) -> int:
        return sum(len(r) for group in ratios[index] for r in group)

    everyone = list(range(len(models)))
    start = time.perf_counter()
    for p in range(passes):
        run_pass(everyone, [max(per_pass[p], p == 0)] * len(models), p % SESSION_ORDERS)
    results = [result(i) for i in everyone]
    while True:
        wide = [i for i, r in enumerate(results) if precision is not None and r.relative_halfwidth > precision
                and taken(i) < max_pairs and seconds[i] < max_seconds]
        if not wide and time.perf_counter() - start >= min_seconds:
            return results
        extra = [min(pairs, max_pairs - taken(i)) for i in wide] if wide else [pairs] * len(models)
        for order in range(SESSION_ORDERS):
            run_pass(wide or everyone, [(n + 1 - order) // 2 for n in extra], order)
        results = [result(i) for i in everyone]


def ratio_of_ratios(a: PairedRatio, b: PairedRatio) -> float:
    """``a / b`` for two ratios to the same reference (e.g. a model against a target model)."""
    return a.ratio / b.ratio
