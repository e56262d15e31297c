"""The pipeline with the one-shot evaluator (once-for-all, Cai et al. 2020; BigNAS): a
weight-sharing supernet of the search space is trained once (or a finished one is given), the
search scores candidates with weights inherited from it, and the found sub-network's weights,
BatchNorm recalibrated, start NetAdapt and then the final training instead of random ones.

With the proxy evaluator every function here does nothing (MobileNetV3's recipe: the search
trains candidates briefly, NetAdapt pre-trains its start model, the final model trains from
scratch).
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable

from nas.supernet import Supernet, make_supernet
from nas.supernet_eval import SupernetEvaluator, check_supernet_run
from nas.supernet_job import SupernetJob
from nas.supernet_train import SupernetConfig
from pipeline.config import PipelineBudget
from pipeline.runner import Pipeline, StageStopped
from search_spaces.encoding import parse_spec
from search_spaces.spec import ArchSpec
from storage.runfolder import child_run
from storage.statefiles import write_text_atomic
from storage.status import Status
from storage.torchfiles import save_torch
from training.datasets import default_resolution, load_dataset

START_WEIGHTS = "supernet-start.pt"
"""NetAdapt's start sub-network with the supernet's weights, in the pipeline's run folder."""
START_SPEC = "supernet-start.spec"
"""The spec those weights are for (one line)."""


def uses_supernet(run: Pipeline) -> bool:
    return run.config.evaluator == "supernet"


def stage_supernet(run: Pipeline) -> dict[str, Any]:
    """The supernet the search scores candidates with: ``--supernet`` checked against the run's
    space and data, else one trained in ``supernet/`` for the budget's epochs (resumable)."""
    if not uses_supernet(run):
        return {"skipped": True}
    config = run.config
    if config.supernet is not None:
        check_supernet_run(config.supernet, space=config.space, data=config.data)
        return {"run_dir": str(Path(config.supernet).resolve()), "trained_here": False}
    settings = budget_supernet(config.space, config.data, config.stage_budget, seed=config.seed, threads=config.threads)
    return {**supernet_in(run.path / "supernet", settings, lambda m: run.say(f"supernet: {m}")), "trained_here": True}


def budget_supernet(space: str, data: str, budget: PipelineBudget, *, seed: int, threads: int) -> SupernetConfig:
    """The supernet a pipeline budget trains: its epochs, evaluated once at the end, on the
    budget's thread count when it names one (at most ``threads``)."""
    return SupernetConfig(space=space, data=data, epochs=budget.supernet_epochs, eval_every_epochs=budget.supernet_epochs,
                          seed=seed, threads=min(threads, budget.supernet_threads or threads))


def supernet_in(parent: Path, settings: SupernetConfig, say: Callable[[str], None]) -> dict[str, Any]:
    """The supernet of ``settings`` in its run folder under ``parent``: read back when finished,
    else trained or resumed (StageStopped when it stops with its state saved); its summary."""
    existing = child_run(parent, "supernet")
    if existing is not None and existing.status is Status.FINISHED:
        return existing.manifest["summary"]
    job = SupernetJob(settings, out=parent, folder=existing, say=say,
                      progress=lambda row: say(f"epoch {row['epoch']} of {settings.epochs}"))
    summary = job.run()
    if summary is None:
        raise StageStopped()
    say(f"largest sub-network {100 * summary['val_top1_largest']:.1f}%, smallest "
        f"{100 * summary['val_top1_smallest']:.1f}% (validation), {summary['train_s']:.0f} s")
    return summary


def supernet_start(run: Pipeline, spec: str, template: ArchSpec | None = None) -> str | None:
    """NetAdapt's start weights: ``spec`` sliced from the supernet with BatchNorm recalibrated as
    the search evaluated it (``START_WEIGHTS``, with the spec it holds in ``START_SPEC``: written
    again for another spec, or when an earlier version left it without); ``template``: the
    model of the space a grown ``spec`` re-widens (``pipeline.netadapt_grow``). None with the
    proxy evaluator."""
    if not uses_supernet(run):
        return None
    path, recorded = run.path / START_WEIGHTS, run.path / START_SPEC
    if not (path.is_file() and recorded.is_file() and recorded.read_text().strip() == spec):
        data = load_dataset(run.config.data, resolution=default_resolution(run.config.data), split_seed=0)
        evaluator = SupernetEvaluator.from_run(run.result("supernet")["run_dir"], data, space=run.config.space,
                                               seed=run.config.seed, threads=run.config.threads)
        save_torch(path, evaluator.subnet_weights(parse_spec(spec), template))
        write_text_atomic(recorded, spec + "\n")
    return str(path)


def final_start(run: Pipeline) -> Path | None:
    """The final training's start weights: NetAdapt's final model (or, when NetAdapt had nothing
    to cut, the supernet's slice); None with the proxy evaluator (trained from scratch)."""
    if not uses_supernet(run):
        return None
    result = run.result("netadapt")
    if "run_dir" in result:
        return Path(result["run_dir"]) / "final.pt"
    template = parse_spec(result["grown_from"]) if result.get("grown_from") else None
    return Path(supernet_start(run, result["final_spec"], template))


def supernet_ceilings(run: Pipeline, template: ArchSpec) -> tuple[tuple[int, int], ...] | None:
    """The widest ``(out, exp)`` the run's supernet holds at each block of ``template`` (a
    widened start stays within them, so it inherits the supernet's weights); None with the
    proxy evaluator (no limit: NetAdapt pre-trains its start)."""
    if not uses_supernet(run):
        return None
    return _supernet_shape(run.config.space, template.resolution, template.num_classes,
                           template.in_channels).width_ceilings(template)


@functools.lru_cache(maxsize=4)
def _supernet_shape(space: str, resolution: int, num_classes: int, in_channels: int) -> Supernet:
    """A supernet of ``space`` with fresh weights: what it holds where, not what it learned."""
    return make_supernet(space, resolution=resolution, num_classes=num_classes, in_channels=in_channels)
