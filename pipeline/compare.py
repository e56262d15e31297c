"""``mobilenas platforms compare``: one architecture per platform, then every one on every platform.

MnasNet (section 1) and MobileNetV3 (section 4) measure latency on the target platform because
the best architecture depends on it. This job shows it: one start model is trained once, then
for each named platform (:mod:`latency.platforms`) a lazy table is built with that platform's
measurer, the target is fixed as the ``target_like`` model's latency on that platform, and
NetAdapt (section 4.2) shrinks the start model to it. Finally every found model is timed on
every platform, paired with the ``target_like`` model there (:mod:`pipeline.platform_matrix`).

Stages, each resumable after a kill (the :class:`~pipeline.runner.Pipeline` runner):
``start`` (train the start model), ``table-<platform>`` and ``netadapt-<platform>`` per
platform, ``matrix`` (one column per platform, each kept as it is measured) and ``report``.
Platforms are recorded with every setting when the run is created, so a resume measures on
the same platforms even if a saved platform was edited since.

With ``method`` "search" the models are searched for instead (:mod:`pipeline.compare_search`):
stages ``supernet`` (trained once), ``run-<platform>`` (``mobilenas run``'s table, search,
NetAdapt and final training on that platform), then the same ``matrix`` and ``report``.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from latency.lazy import LazyPredictor, ensure_table
from latency.platforms import Platform, get_platform
from netadapt.floor import floor_spec
from netadapt.job import DEFAULT_TABLE_SPACE, JobSetup, calibrate_for, check_target, execute, read_setup
from netadapt.loop import NetAdaptConfig
from netadapt.steering import check_close_on
from pipeline.config import BUDGETS, COMPARE_METHODS
from pipeline.runner import Pipeline, StageStopped
from pipeline.stages import adapted
from pipeline.stages import data_of as dataset
from search_spaces.encoding import format_spec, parse_spec
from search_spaces.spec import ArchSpec
from storage.runfolder import RunFolder, child_run
from storage.settings import check_settings, setting, settings_from_dict
from storage.status import Status
from training.config import TrainConfig
from training.datasets import DEFAULT_SEARCH_DATA
from training.job import WEIGHTS, train_in

@dataclass(frozen=True)
class CompareConfig:
    """One comparison. ``platforms``: every platform's full record (``Platform.to_dict()``),
    fixed at creation. ``method``: "netadapt" shrinks one trained ``start`` model to each
    platform's target; "search" trains one supernet of ``space`` and runs ``mobilenas run``'s
    recipe (search with ``reward``, NetAdapt, final training) per platform at ``budget``
    (:mod:`pipeline.compare_search`). NetAdapt settings default to ``mobilenas run``'s small
    budget; ``close_on`` "measured" steers each NetAdapt iteration by the found model's paired
    measurement on the platform, "predicted" by the platform's table alone."""

    platforms: tuple[dict[str, Any], ...]
    data: str = DEFAULT_SEARCH_DATA
    start: str = "mobilenetv3-large"
    start_width: float = setting(1.0, kind=float, low=0, low_open=True)
    target_like: str = "mobilenetv3-small"
    target_width: float = setting(1.0, kind=float, low=0, low_open=True)
    target_scale: float = setting(1.0, kind=float, low=0, low_open=True)
    seed: int = setting(0, low=0)
    pretrain_epochs: int = setting(3, low=1)
    short_steps: int = setting(10, low=1)
    delta_fraction: float = setting(0.15, kind=float, low=0, low_open=True)
    long_epochs: int = setting(1, low=0)
    threads: int = setting(2, low=1)
    pairs: int = setting(24, low=4)
    close_on: str = "measured"  # what NetAdapt steers by inside a run (netadapt.steering.CLOSE_ON)
    method: str = "netadapt"
    space: str = "mnasnet-v3small-mbconv"
    budget: str = "small"
    reward: str = "hard"
    names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        records = tuple(dict(p) for p in self.platforms)
        object.__setattr__(self, "platforms", records)
        names = tuple(str(p.get("name")) for p in records)
        object.__setattr__(self, "names", names)
        check_settings(self, "{flag}")
        check_close_on(self.close_on)
        self._check_method()
        if len(names) < 2 or len(set(names)) != len(names):
            raise ValueError(f"--platforms {' '.join(names)}: expected at least two different platforms")
        for record in records:
            self.platform(record["name"])  # every record must make a platform

    def _check_method(self) -> None:
        from nas.rewards import REWARD_KINDS
        from nas.supernet import SUPERNET_SPACES, no_supernet_message

        for flag, value, allowed in (("--method", self.method, COMPARE_METHODS), ("--budget", self.budget, tuple(BUDGETS)),
                                     ("--reward", self.reward, REWARD_KINDS)):
            if value not in allowed:
                raise ValueError(f"{flag} {value!r} is not known; expected one of {list(allowed)}")
        if self.method == "search" and self.space not in SUPERNET_SPACES:
            raise ValueError(no_supernet_message(self.space) + " (--method search trains a supernet of it)")

    @classmethod
    def for_names(cls, names: list[str], **settings: Any) -> "CompareConfig":
        """A new comparison of the platforms called ``names`` (built in or saved)."""
        return cls(platforms=tuple(get_platform(n).to_dict() for n in names), **settings)

    def platform(self, name: str) -> Platform:
        record = next(p for p in self.platforms if p["name"] == name)
        return Platform(**{k: v for k, v in record.items() if k != "tables"})

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("names")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CompareConfig":
        recorded = {"close_on": "predicted", **data}  # comparisons recorded before the setting steered by the table
        return settings_from_dict(cls, {k: v for k, v in recorded.items() if k != "names"}, "platform comparison config")


def stage_start(run: Pipeline) -> dict[str, Any]:
    """The start model trained once (the same weights start NetAdapt on every platform)."""
    config, data = run.config, dataset(run)
    spec = adapted(config.start, config.start_width, data)
    recipe = TrainConfig(epochs=config.pretrain_epochs, threads=config.threads, seed=config.seed)
    result = train_in(run.path / "start", spec, data, recipe, spec_name=f"{config.start}-x{config.start_width:g}",
                      data_name=config.data, split_seed=0, should_stop=run.stop)
    if result is None:
        raise StageStopped()
    return {**result, "weights": str(Path(result["run_dir"]) / WEIGHTS)}


def stage_table(name: str):
    """The platform's lazy table at the data's shape, calibrated down to NetAdapt's floor, and its
    target: the ``target_like`` model's paired ratio to the table's reference, in table units."""

    def run_stage(run: Pipeline) -> dict[str, Any]:
        config, data, began = run.config, dataset(run), time.perf_counter()
        start = parse_spec(run.result("start")["arch"])
        folder, message = ensure_table(run.path / "tables" / name, space=DEFAULT_TABLE_SPACE, resolution=data.resolution,
                                       in_channels=data.in_channels, num_classes=data.num_classes,
                                       measurer=config.platform(name).make_measurer(), seed=config.seed)
        run.say(f"{name}: {message}")
        calibrate_for(folder, start, floor_spec(start, netadapt_config(config, 1.0).proposal_config()), run.say)
        predictor = LazyPredictor(folder, trusted=True)
        like = adapted(config.target_like, config.target_width, data)
        paired = predictor.measure([like])[0]
        target_ms = paired.in_units_of(predictor.table.reference_baseline_ms) * config.target_scale
        run.say(f"{name}: target {target_ms:.4f} ms (table units) = {config.target_scale:g} x {config.target_like}: "
                f"{paired.describe()} the table's reference")
        return {"folder": str(folder), "target_ms": target_ms, "target_like": paired.to_dict(),
                "build_s": round(time.perf_counter() - began, 1), "entries": len(predictor.table)}

    return run_stage


def netadapt_config(config: CompareConfig, target_ms: float) -> NetAdaptConfig:
    return NetAdaptConfig(target_ms=target_ms, short_steps=config.short_steps, delta_fraction=config.delta_fraction,
                          long_epochs=config.long_epochs, include_stem=True, include_head=True, seed=config.seed,
                          long_threads=config.threads, threads=config.threads, close_on=config.close_on)


def stage_netadapt(name: str):
    """NetAdapt from the trained start model down to the platform's target."""

    def run_stage(run: Pipeline) -> dict[str, Any]:
        config, table, start = run.config, run.result(f"table-{name}"), run.result("start")
        path = run.path / f"netadapt-{name}"
        folder = child_run(path, "netadapt")
        if folder is None:
            predictor = LazyPredictor(table["folder"], trusted=True)
            start_ms = float(predictor.predict_ms(parse_spec(start["arch"])))
            if start_ms <= table["target_ms"]:
                run.say(f"{name}: the start model is already at {start_ms:.4f} ms <= target {table['target_ms']:.4f} "
                        "(predicted); nothing to adapt, it is this platform's model")
                return {"skipped": True, "final_spec": start["arch"], "final_top1": start["top1"],
                        "final_top1_stderr": start["top1_stderr"], "predicted_latency_ms": start_ms,
                        "iterations": 0, "elapsed_s": 0.0}
            setup = JobSetup(netadapt_config(config, table["target_ms"]), start["arch"], config.start, config.data, 0,
                             table["folder"], "error", 1, None, start["weights"], config.pretrain_epochs,
                             table_trusted=True)
            check_target(setup, predictor.predict_ms)
            folder = RunFolder.create(path, job="netadapt", slug=f"netadapt-{name}", seed=config.seed,
                                      config=setup.to_dict())
        elif folder.status is Status.FINISHED:
            return folder.manifest["results"]
        with folder.session() as stop:
            summary = execute(folder, read_setup(folder), lambda: stop() or run.stop(),
                              lambda m: run.say(f"{name}: {m}"), lambda event: None)
        if summary is None:
            raise StageStopped()
        run.say(f"{name}: found {summary['final_spec']} (test top-1 {summary['final_top1']:.4f})")
        return summary

    return run_stage


def found_results(run: Pipeline) -> dict[str, dict[str, Any]]:
    """Each platform's found model: the result of the stage that found it (``final_spec``,
    ``final_top1``, ``final_top1_stderr`` among its keys)."""
    stage = "netadapt" if run.config.method == "netadapt" else "run"
    return {n: run.result(f"{stage}-{n}") for n in run.config.names}


def found_specs(run: Pipeline) -> dict[str, ArchSpec]:
    """Each platform's found model."""
    return {n: parse_spec(r["final_spec"]) for n, r in found_results(run).items()}


def platform_target_ms(run: Pipeline, name: str) -> float:
    """Platform ``name``'s target in its table's units."""
    stage = f"table-{name}" if run.config.method == "netadapt" else f"run-{name}"
    return float(run.result(stage)["target_ms"])


def platform_cost_s(run: Pipeline, name: str) -> dict[str, Any]:
    """Seconds spent on platform ``name``: its table and NetAdapt, or each stage of its run."""
    if run.config.method == "search":
        return run.result(f"run-{name}")["stage_s"]
    return {"table": run.result(f"table-{name}")["build_s"], "netadapt": run.result(f"netadapt-{name}").get("elapsed_s")}


def how_found(config: CompareConfig) -> str:
    """One sentence on how each platform's model was found."""
    if config.method == "search":
        return (f"A search of {config.space} per platform (one supernet shared, {config.reward} reward, "
                f"{config.budget} budget), then NetAdapt and the final training")
    return f"NetAdapt from {config.start} x{config.start_width:g}"


def spec_text(spec: ArchSpec) -> str:
    return format_spec(spec)
