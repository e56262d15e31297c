"""The NetAdapt selection loop (MobileNetV3 section 4.2; NetAdapt, Yang et al. 2018, Algorithm 1).

From a trained model with predicted latency L0, each iteration

1. proposes one shrunk network per layer (or residual group), each predicted to cut
   delta = ``delta_fraction`` x L0 (:func:`netadapt.proposals.propose_reductions`; the last
   step asks only for what is left to the target);
2. carries the current weights to every proposal, fine-tunes it for ``short_steps`` and
   evaluates it on the validation split (:mod:`netadapt.evaluation`, in parallel with
   :mod:`netadapt.parallel`);
3. keeps the proposal with the best Δaccuracy / |Δlatency| (``select="ratio"``) or the most
   accurate one (``"accuracy"``, the original NetAdapt) (:mod:`netadapt.selection`);

until the predicted latency reaches ``target_ms``; then the final model is fine-tuned for
``long_epochs``. With ``close_on="measured"`` the loop steers by the end-to-end measurement of
each kept model instead (:mod:`netadapt.steering`): the target is re-anchored on the measurements
and each step is sized by the cut the previous step was measured to make, which a table that
mispredicts cuts (as per-layer sums do at small inputs) cannot overshoot by much. Every finished iteration is committed to a :class:`netadapt.state.LoopStore`
before the next starts, so a run killed at any moment resumes without losing it. The loop
never prints: it reports :class:`LoopEvent` s to a callback.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import torch

from netadapt.evaluation import Evaluator, ProposalTask, TaskOutcome
from netadapt.proposals import (PredictMany, ProposalConfig, ShrinkProposal, nearest_asks, propose_reductions,
                                substantial_savings, unique_proposals)
from netadapt.selection import Scored, check_selection, choose, choose_measured, proposal_seed
from netadapt.state import LoopState, LoopStore
from netadapt.steering import (check_close_on, check_measure_proposals, may_land, measured_gap, measured_goal,
                               measured_left, measurement_follows)
from search_spaces.spec import ArchSpec
from storage.settings import check_settings, setting, settings_from_dict
from training.datasets import Dataset
from training.evaluate import Budget, EvalResult, finetune

PredictMs = Callable[[ArchSpec], float]
MeasureMs = Callable[[ArchSpec, dict[str, torch.Tensor]], float]
"""End-to-end latency of a model with its weights (ORT in the CLI; NaN when not measured)."""
MeasureManyMs = Callable[[Sequence[ArchSpec]], list[float]]
"""End-to-end latencies of several models measured together (one pass over them all)."""


class UnreachableTarget(ValueError):
    """No proposal can shrink the model further and the target latency is not reached."""


@dataclass(frozen=True)
class NetAdaptConfig:
    """One NetAdapt run's settings; the CLI's defaults come from here.

    ``short_steps``: fine-tune steps per proposal (NetAdapt: 10^4 on ImageNet);
    ``long_epochs``: final fine-tune (0: none); ``threads``: torch threads per proposal task;
    ``long_threads``: torch threads of the final fine-tune (it runs alone);
    ``measured_goal_ms``: with ``close_on="measured"``, the goal in the measurement's own units
    (None: ``target_ms`` re-anchored on the start model's measurement; see ``netadapt.steering``);
    ``max_proposals``: at most this many proposals fine-tuned per iteration, those whose predicted
    saving is nearest a cut asked (None: every one, as NetAdapt; a last step asking for a small
    cut can offer one per layer and per ask, 22 in one ``make demo`` run);
    ``accuracy_tolerance``: in the ratio selection an accuracy change within this many standard
    errors of the current model's top-1 counts as none (:mod:`netadapt.selection`; 0: the plain
    ratio, as MobileNetV3 states it; runs recorded before the setting keep 0);
    ``measure_proposals``: closed on measurements, whose proposals are measured end to end and
    chosen by those measurements, ``every`` step's or only the ``last`` one's (``netadapt.steering``;
    runs recorded before the setting keep ``last``).
    """

    target_ms: float = setting(kind=float, low=0, low_open=True)
    delta_fraction: float = 0.01
    granularity: int = 8
    max_cut_fraction: float = 0.5
    include_stem: bool = False
    include_head: bool = False
    short_steps: int = setting(100, low=1)
    long_epochs: int = setting(5, low=0)
    select: str = "ratio"
    seed: int = setting(0, low=0)
    threads: int = setting(1, low=1)
    long_threads: int = setting(1, low=1)
    device: str = "cpu"
    max_iterations: int = setting(1000, low=1)
    close_on: str = "predicted"
    measured_goal_ms: float | None = setting(None, kind=float, low=0, low_open=True, optional=True)
    max_proposals: int | None = setting(None, low=1, optional=True)
    accuracy_tolerance: float = setting(1.0, kind=float, low=0)
    measure_proposals: str = "every"

    def __post_init__(self) -> None:
        check_settings(self, "netadapt.{name}")
        check_close_on(self.close_on)
        if self.measured_goal_ms is not None and self.close_on != "measured":
            raise ValueError("netadapt.measured_goal_ms is a goal for close_on='measured'; "
                             f"close_on is {self.close_on!r}")
        check_selection(self.select)
        check_measure_proposals(self.measure_proposals)
        self.proposal_config()  # validates delta_fraction, granularity, max_cut_fraction, include_*

    def proposal_config(self) -> ProposalConfig:
        return ProposalConfig(delta_fraction=self.delta_fraction, granularity=self.granularity,
                              max_cut_fraction=self.max_cut_fraction, include_stem=self.include_stem,
                              include_head=self.include_head)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "NetAdaptConfig":
        # runs recorded before cuts were bounded, before accuracy changes within noise counted as none
        # and before every step's proposals were measured keep those times' behaviour
        recorded = {"max_cut_fraction": 1.0, "accuracy_tolerance": 0.0, "measure_proposals": "last", **data}
        return settings_from_dict(cls, recorded, "netadapt config")


@dataclass(frozen=True)
class LoopEvent:
    """Progress: ``phase`` is ``proposals`` (an iteration's proposals are being evaluated),
    ``iteration`` (one finished), ``long`` (final fine-tune started) or ``done``."""

    phase: str
    iteration: int
    predicted_ms: float
    target_ms: float
    l0_ms: float
    top1: float
    elapsed_s: float
    proposals: int = 0
    best_label: str = ""
    iteration_s: float = math.nan


@dataclass(frozen=True)
class LoopResult:
    state: LoopState
    spec: ArchSpec
    weights: dict[str, torch.Tensor]
    stopped: bool


def history_row(iteration: int, proposal: ShrinkProposal | None, outcome: EvalResult | None, *, score: float,
                chosen: bool, measured_ms: float, predicted_ms: float) -> dict[str, Any]:
    """One ``history.csv`` row; ``proposal`` None is the start model (iteration 0)."""
    layers = "" if proposal is None else " ".join("stem" if b < 0 else f"b{b}" for b in proposal.blocks)
    return {"iteration": iteration, "label": "start" if proposal is None else proposal.label(),
            "kind": "start" if proposal is None else proposal.kind, "layers": layers,
            "channels_before": None if proposal is None else proposal.channels_before,
            "channels_after": None if proposal is None else proposal.channels_after,
            "predicted_ms": predicted_ms, "measured_ms": measured_ms,
            "val_top1": None if outcome is None else outcome.top1,
            "val_top1_stderr": None if outcome is None else outcome.top1_stderr,
            "score": score, "chosen": chosen}


def _kept_rows(state: LoopState) -> list[dict[str, Any]]:
    """The history rows of the kept models, the start model first."""
    return [row for row in state.history if row["chosen"]]


class NetAdapt:
    """Runs (or resumes) the loop over a store; see the module docstring."""

    def __init__(self, config: NetAdaptConfig, data: Dataset, predict_ms: PredictMs, evaluator: Evaluator,
                 store: LoopStore, *, predict_many: PredictMany | None = None, measure_ms: MeasureMs | None = None,
                 measure_many: MeasureManyMs | None = None, quick_measure_many: MeasureManyMs | None = None,
                 on_event: Callable[[LoopEvent], None] | None = None,
                 should_stop: Callable[[], bool] | None = None) -> None:
        self.config, self.data, self.predict_ms, self.predict_many = config, data, predict_ms, predict_many
        self.evaluator, self.store = evaluator, store
        self.measure_ms = measure_ms or (lambda spec, weights: math.nan)
        self.measure_many = measure_many
        self.quick_measure_many = quick_measure_many
        """The same measurement without the spread of a deciding one, for the proposals of a step
        that is not the last (None: ``measure_many``)."""
        self.on_event = on_event or (lambda event: None)
        self.should_stop = should_stop or (lambda: False)

    def start(self, spec: ArchSpec, weights: dict[str, torch.Tensor], top1: float, top1_stderr: float) -> LoopState:
        """Commit iteration 0: the start model, its validation top-1 and latencies."""
        l0_ms = float(self.predict_ms(spec))
        measured = float(self.measure_ms(spec, weights))
        row = history_row(0, None, None, score=math.nan, chosen=True, measured_ms=measured, predicted_ms=l0_ms)
        row.update(val_top1=top1, val_top1_stderr=top1_stderr)
        state = LoopState(0, "adapt", l0_ms, l0_ms, measured, top1, top1_stderr, 0.0, (row,))
        self.store.commit(state, spec, weights)
        return state

    def reached(self, state: LoopState) -> bool:
        """The target is reached: as predicted, or closed on measurements, as measured (past the
        table's target, also when its last two kept steps measured no faster: see ``netadapt.steering``)."""
        predicted_reached = state.predicted_ms <= self.config.target_ms
        gap = self._measured_gap(state)
        if gap is None:
            return predicted_reached
        return gap <= 0 or (predicted_reached and not measurement_follows(_kept_rows(state)))

    def _measured_gap(self, state: LoopState) -> float | None:
        """What is left to cut in table units as the measurements read it (``close_on="measured"``)."""
        if self.config.close_on != "measured":
            return None
        return measured_gap(_kept_rows(state), self.config.target_ms, self.config.measured_goal_ms)

    def run(self) -> LoopResult:
        """Iterate from the store's last commit until the target (or a stop), then fine-tune."""
        state, spec, weights = self.store.load()
        while state.phase == "adapt" and not self.reached(state):
            if self.should_stop():
                return LoopResult(state, spec, weights, stopped=True)
            if state.iteration >= self.config.max_iterations:
                if state.predicted_ms <= self.config.target_ms:  # closed on measurements: the table says reached
                    break
                raise UnreachableTarget(f"netadapt stopped after max_iterations = {self.config.max_iterations} at "
                                        f"{state.predicted_ms:.4f} ms; target {self.config.target_ms:.4f} ms")
            stepped = self.iterate(state, spec, weights)
            if stepped is None:  # past the table's target with nothing left to cut: the table says reached
                break
            state, spec, weights = stepped
        if state.phase == "adapt":
            state = state.advance(phase="long")
            self.store.update(state)
        if state.phase == "long":
            if self.should_stop():
                return LoopResult(state, spec, weights, stopped=True)
            state, weights = self.long_finetune(state, spec, weights)
        self._emit("done", state)
        return LoopResult(state, spec, weights, stopped=False)

    def proposals(self, state: LoopState, spec: ArchSpec) -> list[ShrinkProposal]:
        """This iteration's proposals: those meeting the cut, else (near the floor, or when the
        largest cut a proposal may make saves less than delta) those predicted to save at least
        half the largest saving on offer. A narrower layer can run slower (e.g. channels below the
        runtime's vector block), and such a proposal is never kept; one saving almost nothing would
        win the accuracy-per-ms ratio while the model is still learning, and the loop would crawl.
        Empty only past the table's target (closed on measurements); short of it, nothing left to
        cut raises :class:`UnreachableTarget`."""
        asks = self.asks_ms(state)
        found = unique_proposals([p for ask in asks
                                  for p in propose_reductions(spec, self.predict_ms, ask, self.config.proposal_config(),
                                                              predict_many=self.predict_many)])
        pool = nearest_asks([p for p in found if p.meets_cut] or substantial_savings(found), asks,
                            self.config.max_proposals)
        if not pool and state.predicted_ms > self.config.target_ms:
            raise UnreachableTarget(f"netadapt cannot shrink further: every layer is at the granularity floor "
                                    f"({self.config.granularity}) or no narrower layer is predicted faster, at "
                                    f"{state.predicted_ms:.4f} ms predicted, above the target {self.config.target_ms:.4f} ms")
        return pool

    def ask_ms(self, state: LoopState) -> float:
        """The cut this iteration asks of each proposal (table units): delta, or what is left
        to the target when that is less (NetAdapt section 3)."""
        gap = self._measured_gap(state)
        gap = state.predicted_ms - self.config.target_ms if gap is None else gap
        return min(self.config.delta_fraction * state.l0_ms, gap)

    def asks_ms(self, state: LoopState) -> list[float]:
        """The cuts this iteration's proposals are sized for: :meth:`ask_ms`, and on a last step
        chosen by measurement also what is left at the start's measured/predicted ratio without
        the last step's slope (``netadapt.steering``: one step's slope is a noisy estimate)."""
        asks = [max(self.ask_ms(state), 0.0)]
        left = self._measured_left(state)
        if self._measured_last_step(state) and left is not None and left > 0:
            asks.append(min(left, self.config.delta_fraction * state.l0_ms))
        return sorted(set(asks))

    def _measured_left(self, state: LoopState) -> float | None:
        if self.config.close_on != "measured":
            return None
        return measured_left(_kept_rows(state), self.config.target_ms, self.config.measured_goal_ms)

    def _measured_last_step(self, state: LoopState) -> bool:
        """Closed on measurements, with less than delta left as the slope reads it or as the
        start's ratio alone does: the step's proposals are measured and chosen by measurement."""
        left = self._measured_left(state)
        if left is None:
            return False
        return self._credit_ms(state) is not None or 0 < left < self.config.delta_fraction * state.l0_ms

    def _measures_pool(self, state: LoopState) -> bool:
        """Whether this step's proposals are measured and chosen by measurement: closed on
        measurements, every step (``measure_proposals="every"``) or the last one."""
        if self.config.close_on != "measured":
            return False
        return self.config.measure_proposals == "every" or self._measured_last_step(state)

    def _credit_ms(self, state: LoopState) -> float | None:
        """On the last step (the ask is what is left), the most a cut earns in the selection's
        ratio (:mod:`netadapt.selection`); None on the others."""
        ask = self.ask_ms(state)
        return ask if 0 < ask < self.config.delta_fraction * state.l0_ms else None

    def iterate(self, state: LoopState, spec: ArchSpec,
                weights: dict[str, torch.Tensor]) -> tuple[LoopState, ArchSpec, dict[str, torch.Tensor]] | None:
        """One NetAdapt iteration, committed before it returns; None when there is nothing left to
        cut and the table's target is already reached (closed on measurements)."""
        tick = time.perf_counter()
        iteration = state.iteration + 1
        pool = self.proposals(state, spec)
        if not pool:
            return None
        self._emit("proposals", state, proposals=len(pool))
        tasks = [ProposalTask(i, p.spec, proposal_seed(self.config.seed, iteration, i)) for i, p in enumerate(pool)]
        outcomes = self.evaluator.evaluate(spec, weights, tasks)
        best, scores, pool_ms = self._select(state, pool, outcomes)
        if best is None:
            raise UnreachableTarget(f"netadapt iteration {iteration}: every proposal diverged in fine-tuning "
                                    "or none is predicted faster")
        chosen, outcome = pool[best], outcomes[best]
        measured = float(self.measure_ms(chosen.spec, outcome.weights)) if pool_ms is None else pool_ms[best]
        rows = [history_row(iteration, p, o.result, score=s, chosen=i == best, predicted_ms=p.predicted_latency_ms,
                            measured_ms=pool_ms[i] if pool_ms is not None else measured if i == best else math.nan)
                for i, (p, o, s) in enumerate(zip(pool, outcomes, scores))]
        iteration_s = time.perf_counter() - tick
        state = state.advance(iteration=iteration, predicted_ms=chosen.predicted_latency_ms, measured_ms=measured,
                              top1=outcome.result.top1, top1_stderr=outcome.result.top1_stderr,
                              elapsed_s=state.elapsed_s + iteration_s, history=state.history + tuple(rows))
        self.store.commit(state, chosen.spec, outcome.weights)
        self._emit("iteration", state, proposals=len(pool), best_label=chosen.label(), iteration_s=iteration_s)
        return state, chosen.spec, outcome.weights

    def _select(self, state: LoopState, pool: list[ShrinkProposal],
                outcomes: list[TaskOutcome]) -> tuple[int | None, list[float], list[float] | None]:
        """The kept proposal's index, every score, and every proposal's measured latency when the
        step was chosen by measurement (the last step closed on measurements), else None."""
        if [o.index for o in outcomes] != list(range(len(pool))):
            raise RuntimeError(f"evaluator returned outcomes {[o.index for o in outcomes]}; expected 0..{len(pool) - 1}")
        scored = [Scored(i, p.predicted_latency_ms, o.result.top1) for i, (p, o) in enumerate(zip(pool, outcomes))]
        credit = self._credit_ms(state)
        goal = measured_goal(_kept_rows(state), self.config.target_ms, self.config.measured_goal_ms)
        if self._measures_pool(state) and goal is not None:
            pool_ms = self._measure_pool(pool, outcomes, deciding=self._measured_last_step(state), goal_ms=goal)
            stderr = [o.result.top1_stderr for o in outcomes if math.isfinite(o.result.top1_stderr)]
            best, scores = choose_measured(scored, pool_ms, goal_ms=goal, ref_top1=state.top1,
                                           ref_ms=state.measured_ms, tolerance=max(stderr, default=0.0),
                                           ratio_tolerance=self._tolerance(state))
            if best is not None:  # else none measured faster (a floor, a slow moment): the table decides
                return best, scores, pool_ms
        # the current model predicted now (a lazily extended table may have moved it slightly)
        best, scores = choose(scored, ref_top1=state.top1, ref_ms=pool[0].baseline_latency_ms,
                              select=self.config.select, credit_ms=credit, tolerance=self._tolerance(state))
        return best, scores, None

    def _tolerance(self, state: LoopState) -> float:
        """The accuracy change that counts as none in the ratio selection (:mod:`netadapt.selection`):
        ``accuracy_tolerance`` standard errors of the current model's top-1 (0 when it has none)."""
        stderr = state.top1_stderr
        return self.config.accuracy_tolerance * stderr if stderr is not None and math.isfinite(stderr) else 0.0

    def _measure_pool(self, pool: list[ShrinkProposal], outcomes: list[TaskOutcome], deciding: bool,
                      goal_ms: float) -> list[float]:
        """Every proposal that did not diverge measured end to end (together where
        ``measure_many`` is given: one pass over them all); NaN for the diverged. A step that is
        not ``deciding`` takes ``quick_measure_many`` when there is one; a deciding step takes it
        first too and measures every one again with ``measure_many`` only when one may land
        (:func:`netadapt.steering.may_land`)."""
        usable = [i for i, o in enumerate(outcomes) if math.isfinite(o.result.top1)]
        specs = [pool[i].spec for i in usable]
        if self.measure_many is None:
            readings = [self.measure_ms(pool[i].spec, outcomes[i].weights) for i in usable]
        else:
            quick = self.quick_measure_many
            readings = list((quick or self.measure_many)(specs)) if usable else []
            if deciding and quick is not None and may_land(readings, goal_ms):
                readings = list(self.measure_many(specs))
        figures = dict(zip(usable, readings))
        return [float(figures[i]) if i in figures else math.nan for i in range(len(pool))]

    def long_finetune(self, state: LoopState, spec: ArchSpec,
                      weights: dict[str, torch.Tensor]) -> tuple[LoopState, dict[str, torch.Tensor]]:
        """NetAdapt step 5: fine-tune the final model for ``long_epochs`` (kept as is for 0)."""
        if self.config.long_epochs > 0:
            self._emit("long", state)
            tick = time.perf_counter()
            result, tuned = finetune(spec, weights, self.data, Budget(epochs=self.config.long_epochs),
                                     seed=proposal_seed(self.config.seed, state.iteration + 1, 10**6),
                                     threads=self.config.long_threads, device=self.config.device)
            if tuned is None:
                raise UnreachableTarget(f"netadapt: the final fine-tune diverged ({result.message})")
            weights = tuned
            state = state.advance(top1=result.top1, top1_stderr=result.top1_stderr,
                                  elapsed_s=state.elapsed_s + time.perf_counter() - tick)
        state = state.advance(phase="done")
        self.store.commit_final(state, spec, weights)
        return state, weights

    def _emit(self, phase: str, state: LoopState, **extra: Any) -> None:
        self.on_event(LoopEvent(phase, state.iteration, state.predicted_ms, self.config.target_ms, state.l0_ms,
                                state.top1, state.elapsed_s, **extra))
