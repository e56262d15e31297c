"""The platform comparison by search: one supernet, then ``mobilenas run``'s recipe per platform.

MnasNet (section 3) and MobileNetV3 (section 4.1) search the architecture with the latency
measured on the target platform. Here the accuracy side is shared: one weight-sharing supernet
(once-for-all) is trained once, since what a sub-network scores does not depend on where it
runs. Then, for each platform, a child ``mobilenas run`` folder runs the recipe's first stages
with that platform's measurer and target: its lazy table, the search scoring candidates with the
shared supernet, NetAdapt closed on the platform's measurement, and the final training from the
inherited weights. Unlike NetAdapt from one start model (:mod:`pipeline.compare`), the search
can change depth, kernel sizes, SE and nonlinearity, which a platform whose cost is per
operator (torch eager) needs. Each child is a run folder of its own, resumable after a kill
like the comparison (and ``mobilenas run --resume`` can carry it on to the reference trainings
and report).
"""
from __future__ import annotations

from typing import Any, Callable

from pipeline.config import BUDGETS, PipelineConfig
from pipeline.runner import Pipeline, StageStopped, run_in_session
from pipeline.stages import RECIPE
from pipeline.supernet_stage import budget_supernet, supernet_in
from storage.runfolder import RunFolder, child_run
from storage.status import Status

CHILD_STAGES = ("table", "supernet", "search", "netadapt", "final")
"""The stages of ``mobilenas run`` each platform's child run goes through."""


def stage_shared_supernet(run: Pipeline) -> dict[str, Any]:
    """The supernet every platform's search scores candidates with, trained once (resumable)."""
    config = run.config
    settings = budget_supernet(config.space, config.data, BUDGETS[config.budget], seed=config.seed, threads=config.threads)
    return supernet_in(run.path / "supernet", settings, lambda m: run.say(f"supernet: {m}"))


def child_config(run: Pipeline, name: str) -> PipelineConfig:
    """``mobilenas run``'s settings for platform ``name``: the comparison's data, target, budget
    and seed, the shared supernet, one worker (the final model trains alone)."""
    config = run.config
    return PipelineConfig(data=config.data, target_like=config.target_like, target_width=config.target_width,
                          target_scale=config.target_scale, budget=config.budget, seed=config.seed,
                          space=config.space, evaluator="supernet", supernet=run.result("supernet")["run_dir"],
                          reward=config.reward, workers=1, threads=config.threads,
                          platform=config.platform(name).record(), netadapt_close_on=config.close_on)


def stage_platform_run(name: str) -> Callable[[Pipeline], dict[str, Any]]:
    """Platform ``name``'s child run (``run-<name>/``): created, resumed, or read back when finished."""

    def run_stage(run: Pipeline) -> dict[str, Any]:
        path = run.path / f"run-{name}"
        folder = child_run(path, "run")
        if folder is None:
            config = child_config(run, name)
            folder = RunFolder.create(path, job="run", slug=f"run-{name}", seed=config.seed, config=config.to_dict())
        config = PipelineConfig.from_dict(folder.manifest["config"])
        stages = tuple(s for s in RECIPE if s.name in CHILD_STAGES)

        def make(stop: Callable[[], bool]) -> Pipeline:
            return Pipeline(folder, config, stages, found_summary, say=lambda m: run.say(f"{name}: {m}"),
                            stop=lambda: stop() or run.stop())

        if folder.status is Status.FINISHED:  # read from its stages: `mobilenas run --resume` may have gone on
            return found_summary(make(lambda: False))
        summary = run_in_session(folder, make)
        if summary is None:
            raise StageStopped()
        run.say(f"{name}: found {summary['final_spec']} (test top-1 {summary['final_top1']:.4f})")
        return summary

    return run_stage


def found_summary(child: Pipeline) -> dict[str, Any]:
    """What the comparison needs of a child run: the found and trained model, its target, the
    search's pick, NetAdapt's measured rounds and the seconds each stage took."""
    final, netadapt = child.result("final"), child.result("netadapt")
    records = child.records()
    return {"final_spec": final["arch"], "final_top1": final["top1"], "final_top1_stderr": final["top1_stderr"],
            "target_ms": child.result("table")["target_ms"], "table_folder": child.result("table")["folder"],
            "search_best": child.result("search")["best_spec"], "netadapt_rounds": netadapt.get("latency_rounds", []),
            "stage_s": {n: records[n].get("elapsed_s") for n in CHILD_STAGES}, "run_dir": str(child.path)}
