"""The pipeline's NetAdapt stage, closed on measured latency (MobileNetV3 section 4.2).

NetAdapt walks down the latency table's predictions, but the target is a measured figure, and a
table's prediction of a whole model can be tens of percent off at small resolutions, in either
direction and differently for different models (a 32x32 table read MobileNetV3-Small 5% fast and
a searched model 20% slow). So before the first round the start model is measured end to end,
paired with the budget's model, and the first round aims at the start's prediction scaled by
budget/measured: the table then only has to predict how much NetAdapt's cuts save, relative to a
measured anchor, not the absolute time of a whole model. After
each NetAdapt round the result is measured end to end, paired run by run with the
``--target-like`` model when there is one (a slow moment of the machine hits both alike), else
with the table's reference and compared in the table's units; pairs are added until the ratio is
known to +/- 1.5% (:data:`latency.paired.WHOLE_MODEL_PRECISION`). Every round aims at
:data:`AIM` x the budget, the middle of the band [0.95, 1.00] a final model should land in, and
another round, starting from the previous round's final model and weights and aiming at its
prediction scaled by AIM x budget/measured, follows when the measured ratio is above 1.
Steered by measurements (the default), each round's loop stops at the first kept model its
own paired measurement reads at or under :data:`LOOP_GOAL` x the budget: one measurement of the
same kind from start to end, rather than a goal carried over from the start check, whose reading
of the same model differs from the loop's by a few percent at 32x32.
Each round is its own resumable ``netadapt`` run folder: ``netadapt/``, ``netadapt-2/``, ...
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from latency.lazy import LazyPredictor
from latency.paired import WHOLE_MODEL_SECONDS, PairedRatio
from netadapt.job import JobSetup, check_target, execute, read_setup
from netadapt.loop import NetAdaptConfig, UnreachableTarget
from pipeline.config import table_trusted
from pipeline.measure import measure_side_by_side, table_measurer
from pipeline.netadapt_start import (MEASURED_STARTS, choose_start, measured_starts, ranked_trials,
                                     search_reward)
from pipeline.runner import Pipeline, StageStopped
from pipeline.netadapt_grow import Growth, grow, short_of_band
from pipeline.supernet_stage import supernet_ceilings, supernet_start
from search_spaces.encoding import format_spec, parse_spec
from search_spaces.registry import make_space
from search_spaces.resolve import resolve_spec
from search_spaces.spec import ArchSpec
from storage.runfolder import RunFolder, child_run
from storage.statefiles import read_json, write_json
from storage.status import Status

MAX_ROUNDS = 3
"""NetAdapt rounds at most: the first at the anchored target, then up to two corrections."""
AIM = 0.975
"""Each round's goal as a share of the budget: the middle of the band [0.95, 1.00], so that a
step that lands a little off either way still ends within budget and close to it."""
LOOP_GOAL = 0.985
"""Every round's goal for its loop's own measurement, as a share of the budget: the loop's
last steps are chosen by measurement to land in [0.965, 1] x this goal (``netadapt.selection``),
that is [0.950, 0.985] of the budget, nearest 0.99 x this goal, :data:`AIM`; the round checks
read the same model within a few percent either way (``results/netadapt/README.md``)."""
START_CHECK_SECONDS = 0.0
"""The start check's spread: none beyond its precision (about half a second). It only sizes the
first round's target in the table; where the round stops is decided by the loop's own
measurements and judged by the round check, which spread over
:data:`latency.paired.WHOLE_MODEL_SECONDS`. Spreading this check too cost ``make demo`` 10 s."""
CHECK_FILE = "latency_check.json"
START_FILE = "start_check.json"
"""The start model's measured check, in the first round's folder."""
CHOICE_FILE = "start_choice.json"
"""The searched models measured as starts and the one chosen, in the first round's folder."""


def round_folder(run: Pipeline, index: int) -> Path:
    return run.path / ("netadapt" if index == 0 else f"netadapt-{index + 1}")


def stage_netadapt(run: Pipeline) -> dict[str, Any]:
    """NetAdapt rounds until the final model's measured latency is within budget (or
    ``MAX_ROUNDS``, or the target is out of NetAdapt's reach: a correction round that runs out of
    cuts ends the rounds with the previous round's model); the last finished round's result
    plus ``latency_rounds``, one record per round."""
    spec = _start_spec(run)
    template = grown_from(run, spec)
    weights = supernet_start(run, spec, template)  # None: the proxy evaluator's NetAdapt pre-trains its start model
    name = "search-best" if weights is None else "supernet-subnet"
    target_ms = anchored_target(run, spec, run.result("table")["target_ms"])
    rounds: list[dict[str, Any]] = []
    for index in range(MAX_ROUNDS):
        try:
            result = _run_round(run, index, spec, weights, target_ms, name)
        except UnreachableTarget as exc:
            if not rounds:
                raise
            run.say(f"netadapt: round {index + 1} stopped short of its target ({exc}); keeping round {index}'s model")
            break
        check = recorded_check(run, index, parse_spec(result["final_spec"]))
        rounds.append({"round": index + 1, "folder": str(round_folder(run, index)), "target_ms": target_ms,
                       "predicted_ms": result["predicted_latency_ms"], **check})
        run.say(f"netadapt: round {index + 1}: final measured {check['final_ms']:.4f} ms vs budget "
                f"{check['budget_ms']:.4f} ms: {_interval(check)}")
        if not over_budget(check) or index + 1 == MAX_ROUNDS:
            break
        next_target = result["predicted_latency_ms"] * AIM / check["ratio"]
        if not result.get("skipped"):  # a skipped round changed nothing: same spec, same weights
            spec, weights, name = result["final_spec"], str(Path(result["run_dir"]) / "final.pt"), "previous-round"
        if not _reachable(run, spec, next_target):
            break
        target_ms = next_target
    grown = {} if template is None else {"grown_from": format_spec(template)}
    return {**result, **grown, "latency_rounds": rounds, "within_budget": not over_budget(rounds[-1])}


def _start_spec(run: Pipeline) -> str:
    """The first round's start: the one a begun round or an earlier choice recorded, else the
    best searched model by reward at measured latency that NetAdapt can reach the target from
    (:mod:`pipeline.netadapt_start`)."""
    begun = child_run(round_folder(run, 0), "netadapt")
    if begun is not None:
        return read_setup(begun).spec
    choice = round_folder(run, 0) / CHOICE_FILE
    if choice.is_file():
        return read_json(choice, fields={"spec": str}, what="NetAdapt start choice")["spec"]
    search, target_ms = run.result("search"), float(run.result("table")["target_ms"])
    trials = ranked_trials(search.get("run_dir"), search["best_spec"])
    if len(trials) == 1:
        return trials[0]["spec"]
    return _measured_start(run, trials[:MEASURED_STARTS], target_ms, search["run_dir"])


def _measured_start(run: Pipeline, trials: list[dict[str, Any]], target_ms: float, search_dir: str) -> str:
    """Measure ``trials`` end to end, choose the start (:func:`pipeline.netadapt_start.choose_start`)
    and record the choice and, as the first round's start check, the chosen one's measurement."""
    checks = measured_checks(run, [parse_spec(t["spec"]) for t in trials], START_CHECK_SECONDS)
    starts = measured_starts(trials, [c["ratio"] for c in checks], target_ms, _predictor(run).predict_ms,
                             _netadapt_config(run, target_ms), search_reward(search_dir))
    index = choose_start(starts)
    pick, chosen = starts[0], starts[index]
    run.say(f"netadapt: measured the search's best {len(starts)} trials end to end: its pick at "
            f"{pick.measured_ms / target_ms:.2f}x the budget (priced {pick.predicted_ms / target_ms:.2f}x), reward "
            f"{pick.reward:.4f} at that latency; starting from its trial ranked {index + 1}, measured "
            f"{chosen.measured_ms / target_ms:.2f}x (priced {chosen.predicted_ms / target_ms:.2f}x), reward {chosen.reward:.4f}")
    start, check = chosen.spec, {**checks[index], "predicted_ms": chosen.predicted_ms}
    growths = _grown(run, parse_spec(chosen.spec), check)
    if growths:
        start, check = growths[-1][0].spec, {**growths[-1][1], "predicted_ms": growths[-1][0].predicted_ms}
    folder = round_folder(run, 0)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / START_FILE, check)
    write_json(folder / CHOICE_FILE, {"spec": start, "searched_spec": chosen.spec, "rank": index + 1,
                                      "growth": [g.to_dict() for g, _ in growths],
                                      "candidates": [{**s.to_dict(), **c} for s, c in zip(starts, checks)]})
    return start


def _grown(run: Pipeline, searched: ArchSpec, check: dict[str, float]) -> list[tuple[Growth, dict[str, float]]]:
    """The growths of a start whose measurement may lie under the band
    (:mod:`pipeline.netadapt_grow`), each with its measured check; none for a start clear of it."""
    if not (run.config.grow_start and short_of_band(check)):
        return []
    checks: list[dict[str, float]] = []

    def measure(spec: ArchSpec) -> dict[str, float]:
        checks.append(measured_check(run, spec, START_CHECK_SECONDS))
        return checks[-1]

    growths = grow(searched, check, _predictor(run).predict_ms, measure, _deepener(run, searched),
                   lambda template: supernet_ceilings(run, template))
    for growth in growths:
        run.say(f"netadapt: the start may lie under the band; grown by {growth.deeper_by} block(s) and "
                f"x{growth.multiplier:.2f} wider: estimated {growth.estimated_ratio:.2f}x, measured "
                f"{_interval(growth.to_dict())} of the budget")
    return list(zip(growths, checks))


def _deepener(run: Pipeline, searched: ArchSpec) -> Callable[[ArchSpec], list[ArchSpec]]:
    """The run's space's models one block deeper than a spec, one per stage that can take one
    (``MnasNetSpace.deepened``); none, so growth is in width only, when the space has no depth
    decision or the spec is not of the space."""
    space = make_space(run.config.space, resolution=searched.resolution, num_classes=searched.num_classes,
                       in_channels=searched.in_channels)

    def deeper(spec: ArchSpec) -> list[ArchSpec]:
        if not hasattr(space, "deepened"):
            return []
        try:
            return [space.deepened(spec, 1, stages=(stage,)) for stage in range(len(space.stages))]
        except ValueError:  # not a model of the space
            return []
    return deeper


def grown_from(run: Pipeline, spec: str) -> ArchSpec | None:
    """The model of the space ``spec`` re-widens when it is a grown start (the start choice's
    record: the searched model, deeper where it was grown deeper), else None."""
    path = round_folder(run, 0) / CHOICE_FILE
    if not path.is_file():
        return None
    choice = read_json(path, fields={"spec": str}, what="NetAdapt start choice")
    growth = choice.get("growth") or []
    template = growth[-1].get("template", choice.get("searched_spec")) if growth else None
    return parse_spec(template) if choice["spec"] == spec and template not in (None, spec) else None


def _interval(check: dict[str, float]) -> str:
    if "ratio_low" not in check:
        return f"{check['ratio']:.3f}x"
    return f"{check['ratio']:.3f}x [{check['ratio_low']:.3f}, {check['ratio_high']:.3f}]"


def over_budget(check: dict[str, float]) -> bool:
    """Over budget when the measured paired ratio is above 1 (its interval, kept to +/- 1.5% by
    the measurement, is reported beside it)."""
    return check["ratio"] > 1.0


def anchored_target(run: Pipeline, spec: str, target_ms: float) -> float:
    """The first round's target in the table's units: the start model's prediction times
    :data:`AIM` divided by its measured ratio to the budget (see the module docstring); ``target_ms``, the table's own
    target, when the anchored one is out of NetAdapt's reach or the round was begun by a version
    without anchoring."""
    path = round_folder(run, 0) / START_FILE
    if not path.is_file() and child_run(round_folder(run, 0), "netadapt") is not None:
        return target_ms
    check = _recorded(path, lambda: {**measured_check(run, parse_spec(spec), START_CHECK_SECONDS),
                                     "predicted_ms": _predict(run, spec)},
                      "NetAdapt start latency check")
    anchored = float(check["predicted_ms"]) * AIM / float(check["ratio"])
    run.say(f"netadapt: start model measured at {_interval(check)} of the budget, {check['predicted_ms']:.4f} ms "
            f"predicted: aiming at {anchored:.4f} ms in the table (its own target {target_ms:.4f} ms)")
    if anchored < check["predicted_ms"] and not _reachable(run, spec, anchored):
        return target_ms
    return anchored


def recorded_check(run: Pipeline, index: int, final: ArchSpec) -> dict[str, float]:
    """Round ``index``'s measured check, taken once and kept in its folder, so that a resumed
    run makes the same decision (a fresh measurement could fall on the other side of 1.0)."""
    return _recorded(round_folder(run, index) / CHECK_FILE, lambda: measured_check(run, final),
                     "NetAdapt round latency check")


def _recorded(path: Path, measure: Callable[[], dict[str, float]], what: str) -> dict[str, float]:
    if path.is_file():  # ratio_low/ratio_high: absent before paired timing
        return read_json(path, fields={"final_ms": float, "budget_ms": float, "ratio": float}, what=what)
    check = measure()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, check)
    return check


def _predict(run: Pipeline, spec: str) -> float:
    return float(_predictor(run).predict_ms(parse_spec(spec)))


def _predictor(run: Pipeline) -> LazyPredictor:
    return LazyPredictor(run.result("table")["folder"], on_drift=run.config.on_drift,
                         trusted=table_trusted(run.config, run.result("table")))


def measured_check(run: Pipeline, final: ArchSpec, min_seconds: float = WHOLE_MODEL_SECONDS) -> dict[str, float]:
    """The final spec paired with the ``--target-like`` model (times the target scale), else
    with the table's reference in the table's units against ``target_ms``: ``ratio`` to the
    budget with its interval (``ratio_low``, ``ratio_high``), and both in ms now. The passes
    spread over ``min_seconds`` (:data:`latency.paired.WHOLE_MODEL_SECONDS` for a round's
    check: it decides)."""
    return measured_checks(run, [final], min_seconds)[0]


def measured_checks(run: Pipeline, specs: Sequence[ArchSpec], min_seconds: float) -> list[dict[str, float]]:
    """:func:`measured_check` of several specs, measured side by side in one session."""
    table, config = run.result("table"), run.config
    if config.target_like is None:
        lazy = LazyPredictor(table["folder"], on_drift=config.on_drift, trusted=table_trusted(config, table))
        paired = lazy.measure(specs, min_seconds=min_seconds)
        scale = float(table["target_ms"]) / float(lazy.table.reference_baseline_ms)
    else:
        reference = resolve_spec(config.target_like, width=config.target_width, resolution=specs[0].resolution,
                                 num_classes=specs[0].num_classes, in_channels=specs[0].in_channels)
        figures = measure_side_by_side(specs, reference=reference, measurer=table_measurer(table["folder"]),
                                       min_seconds=min_seconds)
        paired = [PairedRatio(f["ratio"], f["ratio_low"], f["ratio_high"], f["reference_ms"], f["pairs"])
                  for f in figures]
        scale = config.target_scale
    return [{"final_ms": p.latency_ms, "budget_ms": p.reference_ms * scale, "ratio": p.ratio / scale,
             "ratio_low": p.low / scale, "ratio_high": p.high / scale, "pairs": p.pairs} for p in paired]


def _reachable(run: Pipeline, spec: str, target_ms: float) -> bool:
    try:
        check_target(_setup(run, spec, None, target_ms), _predictor(run).predict_ms)
    except ValueError as exc:
        run.say(f"netadapt: no further round: {exc}")
        return False
    return True


def _run_round(run: Pipeline, index: int, spec: str, weights: str | None, target_ms: float,
               name: str) -> dict[str, Any]:
    """One NetAdapt run folder (created, resumed or read back when finished)."""
    path = round_folder(run, index)
    folder = child_run(path, "netadapt")
    if folder is None:
        predictor = _predictor(run)
        start_ms = predictor.predict_ms(parse_spec(spec))
        if start_ms <= target_ms:
            run.say(f"netadapt: the start model is already at {start_ms:.4f} ms <= target (predicted); nothing to adapt")
            return {"skipped": True, "final_spec": spec, "predicted_latency_ms": start_ms}
        setup = _setup(run, spec, weights, target_ms, name, index)
        check_target(setup, predictor.predict_ms)
        folder = RunFolder.create(path, job="netadapt", slug=f"netadapt-round{index + 1}", seed=run.config.seed,
                                  config=setup.to_dict())
    elif folder.status is Status.FINISHED:
        return folder.manifest["results"]
    with folder.session() as stop:
        summary = execute(folder, read_setup(folder), lambda: stop() or run.stop(), run.say,
                          lambda event: run.say(_netadapt_line(event)))
    if summary is None:
        raise StageStopped()
    return summary


def _netadapt_line(event: Any) -> str:
    if event.phase == "proposals":
        return f"netadapt: iteration {event.iteration + 1}, fine-tuning {event.proposals} proposals"
    if event.phase == "iteration":
        return (f"netadapt: iteration {event.iteration}: {event.predicted_ms:.4f} ms predicted (target "
                f"{event.target_ms:.4f}), kept {event.best_label}, val top-1 {event.top1:.4f}")
    if event.phase == "long":
        return f"netadapt: target reached after {event.iteration} iterations; long-term fine-tune"
    return f"netadapt: done, {event.predicted_ms:.4f} ms predicted, val top-1 {event.top1:.4f}"


def _netadapt_config(run: Pipeline, target_ms: float) -> NetAdaptConfig:
    budget = run.config.stage_budget
    return NetAdaptConfig(target_ms=target_ms, measured_goal_ms=loop_goal(run), short_steps=budget.short_steps,
                          delta_fraction=budget.netadapt_delta, long_epochs=budget.long_epochs,
                          include_stem=True, include_head=True, seed=run.config.seed, long_threads=run.config.threads,
                          close_on=run.config.netadapt_close_on, max_proposals=budget.netadapt_max_proposals)


def _setup(run: Pipeline, spec: str, weights: str | None, target_ms: float, name: str = "search-best",
           index: int = 0) -> JobSetup:
    budget, table = run.config.stage_budget, run.result("table")
    return JobSetup(_netadapt_config(run, target_ms), spec, name, run.config.data, 0,
                    table["folder"], run.config.on_drift, run.config.workers, run.config.address, weights,
                    budget.pretrain_epochs, table_trusted=table_trusted(run.config, table), platform=run.config.platform,
                    table_space=run.config.space, **budget_model(run, spec))


def budget_model(run: Pipeline, spec: str) -> dict[str, Any]:
    """With a ``--target-like`` budget, NetAdapt times the models it keeps paired with the budget's
    own model (``measure_like``; its latency in the table's units ``measure_like_ms``), as the
    rounds' checks do: see :func:`netadapt.job.measured_with`. Nothing without one."""
    config, table = run.config, run.result("table")
    if config.target_like is None:
        return {}
    shape = parse_spec(spec)
    like = resolve_spec(config.target_like, width=config.target_width, resolution=shape.resolution,
                        num_classes=shape.num_classes, in_channels=shape.in_channels)
    return {"measure_like": format_spec(like), "measure_like_ms": float(table["target_ms"]) / config.target_scale}


def loop_goal(run: Pipeline) -> float | None:
    """Every round's goal in its loop's measured units (the table's, paired with the budget's
    model or with the table's reference: either way the budget there is the table's
    ``target_ms``); None for loops steered by the table. Correction rounds once re-anchored on
    the round check instead: a goal of about AIM x the budget, whose landing zone's middle (0.958x)
    lay a measurement's noise above the band's edge (a benchmark run landed there at 0.944x)."""
    if run.config.netadapt_close_on != "measured":
        return None
    return LOOP_GOAL * float(run.result("table")["target_ms"])
