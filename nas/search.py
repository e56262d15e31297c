"""The global search driver (MnasNet sections 3-4, MobileNetV3 section 4.1), without Ray.

:class:`SearchDriver` owns one search's state in a run folder: it asks the strategy for a
candidate, decodes it, prices it with the latency predictor (the table prices exactly the spec
that is trained, or an explicitly configured deployment shape), and when the trial's proxy
accuracy comes back computes the reward, appends the row to ``trials.csv`` and only then tells
the strategy and saves its state atomically (``search_state.json``). That order makes a kill at
any moment recoverable: on resume (:meth:`SearchDriver.open`) a logged trial the saved state
has not heard of is told now, a proposal that was in flight is re-run under its own id, and
nothing that finished runs again (Ray Tune's own restore can lose searcher state).

Trials run through ``nas.tune`` (Ray Tune, the trial engine) or :func:`run_serial` (in-process,
for tests, debugging and benchmarks); both hand the candidate to an evaluator
(:mod:`nas.evaluator`: proxy training, or a weight-sharing supernet).
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from nas.candidate import CandidateResult
from nas.evaluator import EVALUATORS
from nas.registry import STRATEGIES
from nas.rewards import REWARD_KINDS, RewardConfig
from nas.strategy import Outcome, SpaceExhausted, Strategy
from nas.trial_log import TrialLog, TrialRecord, format_decisions
from search_spaces.encoding import format_spec
from search_spaces.registry import SearchSpace
from search_spaces.spec import ArchSpec
from storage.settings import check_settings, setting, settings_from_dict
from storage.statefiles import StateFileError, read_json, write_json
from storage.status import SCORED

log = logging.getLogger(__name__)
STATE_FILE = "search_state.json"
STATE_SCHEMA = 1
STRATEGY_NAMES = tuple(STRATEGIES)
"""The registered strategies when this module was imported (``--strategy`` choices)."""
EVALUATOR_NAMES = tuple(EVALUATORS)
"""The registered evaluators when this module was imported (``--evaluator`` choices)."""
PRICE_BY = ("table", "measured")
"""How a candidate's latency is found: ``table``, the latency table's prediction (MobileNetV3
section 4: per-layer tables); ``measured``, the whole model timed end to end on the table's
measurer, paired with a reference model (MnasNet section 3: real latency measured on the target),
about 0.5 s a 32x32 candidate and 10 s a 224x224 one on 2 cores."""


@dataclass(frozen=True)
class SearchConfig:
    """Settings of one search; the CLI's defaults. ``w`` is the reward exponent (mnasnet:
    alpha = beta = w; hard/absolute: beta = w) and None takes the reward kind's published value.
    ``price_*`` left None price a candidate exactly as it is trained (the data's resolution,
    channels and classes); set, they price it at that deployment shape instead.
    ``strategy_config``: the strategy's settings (keys of its config dataclass; None: defaults).
    ``cpus_per_trial`` 1 with ``concurrency`` 2 is the default layout on a 2-core host: small
    models train with more throughput as two 1-thread trainings than as one 2-thread one.
    ``evaluator``: ``proxy`` trains each candidate (``epochs``, ``train_subset``, ``asha``);
    ``supernet`` evaluates it with weights inherited from the trained supernet run folder
    ``supernet`` (``mobilenas supernet train``; see :mod:`nas.evaluator`). ``platform``: the
    named platform's record (:meth:`latency.platforms.Platform.record`) whose measurer prices the
    candidates; None: the default ONNX Runtime CPU settings. ``price_by`` (:data:`PRICE_BY`):
    the table's prediction or the measured whole model, paired with ``measure_like`` (a
    canonical spec string whose latency in the table's units is ``measure_like_ms``; None: the
    table's reference). Measured prices depend on the machine, so a measured search repeats its
    strategy's draws for a seed but not its rewards."""

    target_ms: float
    data: str = "mnist-rot-back-image"
    strategy: str = "rl"
    trials: int = setting(32, low=1)
    seed: int = setting(0, low=0)
    reward: str = "mnasnet"
    w: float | None = None
    epochs: int = setting(1, low=1)
    train_subset: int | None = setting(None, low=1, optional=True)
    concurrency: int = setting(2, low=1)
    cpus_per_trial: int = setting(1, low=1)
    asha: bool = False
    space: str = "mnasnet"
    resolution: int | None = setting(None, low=8, optional=True)
    price_resolution: int | None = setting(None, low=8, optional=True)
    price_in_channels: int | None = setting(None, low=1, optional=True)
    price_classes: int | None = setting(None, low=2, optional=True)
    device: str = "cpu"
    strategy_config: dict | None = None
    evaluator: str = "proxy"
    supernet: str | None = None
    platform: dict | None = None
    price_by: str = "table"
    measure_like: str | None = None
    measure_like_ms: float | None = setting(None, kind=float, low=0, low_open=True, optional=True)

    def __post_init__(self) -> None:
        check_settings(self, "{flag}")
        self._check_pricing()
        if self.platform is not None:
            from latency.platforms import Platform

            Platform.from_record(self.platform)  # a recorded platform, checked
        self._check_evaluator()
        if self.strategy_config is not None and not isinstance(self.strategy_config, dict):
            raise ValueError(f"--strategy-config {self.strategy_config!r} is not allowed; expected a JSON object")
        if self.strategy not in STRATEGIES:  # the live registry: one registered later counts
            raise ValueError(f"--strategy {self.strategy!r} is not known; expected one of {list(STRATEGIES)}")
        if self.reward not in REWARD_KINDS:
            raise ValueError(f"--reward {self.reward!r} is not known; expected one of {list(REWARD_KINDS)}")
        if self.asha and self.epochs < 2:
            raise ValueError(f"--asha needs --epochs >= 2 (got {self.epochs}): it stops trials between epochs")
        self.reward_config()  # validates target_ms and w

    @classmethod
    def from_dict(cls, data: dict[str, Any], what: str = "search config") -> "SearchConfig":
        """The settings recorded in a manifest; unknown keys are refused."""
        return settings_from_dict(cls, data, what)

    def _check_pricing(self) -> None:
        if self.price_by not in PRICE_BY:
            raise ValueError(f"--price-by {self.price_by!r} is not known; expected one of {list(PRICE_BY)}")
        if (self.measure_like is None) != (self.measure_like_ms is None):
            raise ValueError("measure_like and measure_like_ms go together: the model candidates are timed "
                             "against and its latency in the table's units")
        if self.measure_like is not None and self.price_by != "measured":
            raise ValueError("measure_like applies to --price-by measured only")

    def _check_evaluator(self) -> None:
        if self.evaluator not in EVALUATORS:  # the live registry: one registered later counts
            raise ValueError(f"--evaluator {self.evaluator!r} is not known; expected one of {list(EVALUATORS)}")
        if self.evaluator == "supernet" and not self.supernet:
            raise ValueError("--evaluator supernet needs --supernet RUN_DIR (a run folder of mobilenas supernet train)")
        if self.evaluator == "proxy" and self.supernet is not None:
            raise ValueError(f"--supernet {self.supernet!r} is only used with --evaluator supernet")
        if self.evaluator == "supernet" and (self.asha or self.train_subset is not None):
            raise ValueError("--asha and --train-subset apply to the proxy evaluator only, not to --evaluator supernet")

    def reward_config(self) -> RewardConfig:
        """The reward as :class:`nas.rewards.RewardConfig` (MnasNet section 3, TuNAS absolute)."""
        if self.w is None:
            return RewardConfig(self.reward, self.target_ms)
        if self.reward == "mnasnet":
            return RewardConfig("mnasnet", self.target_ms, self.w, self.w)
        return RewardConfig(self.reward, self.target_ms, 0.0, self.w)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrialRequest:
    """What one trial trains: the canonical spec string (plain data for Ray) and its price."""

    trial: int
    proposal_id: str
    indices: tuple[int, ...]
    spec: str
    latency_ms: float


@dataclass(frozen=True)
class ProgressInfo:
    """What the progress callback receives after every finished trial."""

    done: int
    total: int
    best_reward: float
    best_top1: float
    best_latency_ms: float
    elapsed_s: float
    eta_s: float
    last: TrialRecord | None = None


@dataclass
class _Pending:
    trial: int
    indices: tuple[int, ...]
    spec: str
    latency_ms: float
    issued: bool = False


def priced_spec(spec: ArchSpec, config: SearchConfig) -> ArchSpec:
    """The spec the latency table prices: ``spec`` itself unless a deployment shape is set."""
    overrides = {k: v for k, v in (("resolution", config.price_resolution), ("in_channels", config.price_in_channels),
                                   ("num_classes", config.price_classes)) if v is not None}
    return spec.replace(**overrides) if overrides else spec


class SearchDriver:
    """One search's state and steps; see the module docstring."""

    def __init__(self, folder: str | Path, config: SearchConfig, space: SearchSpace, strategy: Strategy,
                 predict_ms: Callable[[ArchSpec], float], *,
                 on_progress: Callable[[ProgressInfo], None] | None = None) -> None:
        self.folder = Path(folder)
        self.config, self.space, self.strategy = config, space, strategy
        self.reward = config.reward_config()
        self.predict_ms = predict_ms
        self.on_progress = on_progress or (lambda info: None)
        self.log = TrialLog(self.folder)
        self.pending: dict[str, _Pending] = {}
        self.records: list[TrialRecord] = []
        self.next_trial = 0
        self.exhausted = False
        self.started = time.perf_counter()
        self.trial_seconds: list[float] = []
        self.session_done = 0
        self.predict_s = 0.0  # this session's time in predict_ms (lazy tables measure missing layers there)

    # -- persistence ----------------------------------------------------------------------
    def save_state(self) -> None:
        """Write the strategy's state and the pending proposals atomically."""
        pending = {pid: {"trial": p.trial, "indices": list(p.indices), "spec": p.spec, "latency_ms": p.latency_ms}
                   for pid, p in self.pending.items()}
        write_json(self.folder / STATE_FILE, {"schema_version": STATE_SCHEMA, "strategy_name": self.config.strategy,
                                              "strategy": self.strategy.state_dict(), "pending": pending,
                                              "next_trial": self.next_trial, "exhausted": self.exhausted})

    def resume(self) -> dict[str, int]:
        """Reconcile ``trials.csv`` with ``search_state.json`` after a stop or a kill.

        Returns counts: ``logged`` trials kept, ``retold`` (logged but not yet told when the
        process died), ``rerun`` (in flight at the kill, to be trained again)."""
        path = self.folder / STATE_FILE
        self.records = self.log.records()
        if not path.exists():
            if self.records:
                raise StateFileError(f"{path} is missing but {self.log.path} has {len(self.records)} trials; "
                                     "cannot continue the strategy")
            return {"logged": 0, "retold": 0, "rerun": 0}
        state = read_json(path, schema_version=STATE_SCHEMA, what="search state",
                          fields={"strategy": dict, "pending": dict, "next_trial": int, "strategy_name": str})
        if state["strategy_name"] != self.config.strategy:
            raise StateFileError(f"{path}: strategy {state['strategy_name']!r} does not match {self.config.strategy!r}")
        self.strategy.load_state_dict(state["strategy"])
        self.next_trial = state["next_trial"]
        self.exhausted = bool(state.get("exhausted", False))
        self.pending = {pid: _Pending(int(p["trial"]), tuple(p["indices"]), str(p["spec"]), float(p["latency_ms"]))
                        for pid, p in state["pending"].items()}
        retold = 0
        for record in self.records:
            if record.proposal_id in self.pending:  # logged, killed before the strategy heard it
                self._tell(record)
                retold += 1
        self.trial_seconds = [r.wall_s for r in self.records]
        self.save_state()
        return {"logged": len(self.records), "retold": retold, "rerun": len(self.pending)}

    # -- steps ----------------------------------------------------------------------------
    @property
    def done(self) -> int:
        return len(self.records)

    @property
    def in_flight(self) -> int:
        return sum(p.issued for p in self.pending.values())

    @property
    def finished(self) -> bool:
        """No trial left to start or to wait for."""
        return self.in_flight == 0 and (self.done >= self.config.trials or
                                        (self.exhausted and not self.pending))

    def ask(self) -> TrialRequest | None:
        """The next trial to run, or None (budget spent, strategy waiting, or space exhausted).
        A proposal left in flight by a killed run is handed out again first."""
        if self.done + self.in_flight >= self.config.trials:
            return None
        for pid, pending in sorted(self.pending.items(), key=lambda item: item[1].trial):
            if not pending.issued:
                pending.issued = True
                return TrialRequest(pending.trial, pid, pending.indices, pending.spec, pending.latency_ms)
        if self.exhausted:
            return None
        try:
            proposal = self.strategy.ask()
        except SpaceExhausted:
            self.exhausted = True
            self.save_state()
            return None
        if proposal is None:
            return None
        return self._issue(proposal.proposal_id, tuple(int(i) for i in proposal.indices))

    def _issue(self, proposal_id: str, indices: tuple[int, ...]) -> TrialRequest:
        spec = self.space.decode(indices)
        tick = time.perf_counter()
        latency_ms = float(self.predict_ms(priced_spec(spec, self.config)))
        self.predict_s += time.perf_counter() - tick
        pending = _Pending(self.next_trial, indices, format_spec(spec), latency_ms, issued=True)
        self.pending[proposal_id] = pending
        self.next_trial += 1
        self.save_state()
        return TrialRequest(pending.trial, proposal_id, indices, pending.spec, latency_ms)

    def complete(self, request: TrialRequest, result: CandidateResult, trial_id: str = "") -> TrialRecord:
        """Score a finished trial, log it, tell the strategy, save the state (in that order)."""
        if request.proposal_id not in self.pending:
            raise ValueError(f"proposal {request.proposal_id!r} is not pending; it finished already or was never asked")
        scored = result.status in SCORED
        reward = self.reward(result.top1, request.latency_ms) if scored else self.reward.worst
        record = TrialRecord(trial=request.trial, trial_id=trial_id, proposal_id=request.proposal_id, spec=request.spec,
                             decisions=format_decisions(request.indices), latency_ms=request.latency_ms,
                             top1=result.top1, top1_stderr=result.top1_stderr, reward=reward, status=result.status,
                             epochs=result.epochs, wall_s=result.wall_s, message=result.message[:300])
        self.log.append(record)
        self.records.append(record)
        self.trial_seconds.append(result.wall_s)
        self.session_done += 1
        self._tell(record)
        self.save_state()
        self.on_progress(self.progress(record))
        return record

    def release(self, request: TrialRequest) -> None:
        """Put an issued request back (its trial never ran: a stop before it started)."""
        if request.proposal_id in self.pending:
            self.pending[request.proposal_id].issued = False

    def _tell(self, record: TrialRecord) -> None:
        self.pending.pop(record.proposal_id, None)
        self.strategy.tell(record.proposal_id, Outcome(reward=record.reward, status=record.status,
                                                       top1=record.top1, latency_ms=record.latency_ms))

    # -- reporting ------------------------------------------------------------------------
    def best(self) -> TrialRecord | None:
        """The scored trial with the highest reward (ties: the earlier trial)."""
        scored = [r for r in self.records if r.status in SCORED and math.isfinite(r.reward)]
        return max(scored, key=lambda r: (r.reward, -r.trial)) if scored else None

    def progress(self, last: TrialRecord | None = None) -> ProgressInfo:
        best = self.best()
        elapsed = time.perf_counter() - self.started
        remaining = max(self.config.trials - self.done, 0)
        rate = elapsed / self.session_done if self.session_done else math.nan
        eta = remaining * rate if math.isfinite(rate) else math.nan
        return ProgressInfo(self.done, self.config.trials, best.reward if best else math.nan,
                            best.top1 if best else math.nan, best.latency_ms if best else math.nan, elapsed, eta, last)


EvaluateFn = Callable[[TrialRequest], CandidateResult]


def run_serial(driver: SearchDriver, evaluate: EvaluateFn, *, should_stop: Callable[[], bool] = lambda: False) -> None:
    """Run the search in this process, one trial at a time (tests, debugging; Ray-free)."""
    while not driver.finished and not should_stop():
        request = driver.ask()
        if request is None:
            if driver.done >= driver.config.trials or driver.exhausted:
                break
            raise RuntimeError(f"strategy {driver.config.strategy!r} asked to wait with no trial in flight")
        driver.complete(request, evaluate(request), trial_id=f"serial_{request.trial:05d}")
