"""The platform comparison as one resumable job: :mod:`pipeline.compare`'s stages, in order,
handed to the :class:`~pipeline.runner.Pipeline` runner."""
from __future__ import annotations

from typing import Any

from pipeline.compare import CompareConfig, stage_netadapt, stage_start, stage_table
from pipeline.compare_search import stage_platform_run, stage_shared_supernet
from pipeline.platform_matrix import stage_matrix, stage_report
from pipeline.runner import Pipeline, Stage
from storage.runfolder import RunFolder

RESUME = "mobilenas platforms compare --resume"


def stages(config: CompareConfig) -> tuple[Stage, ...]:
    """The job's stages for ``config``'s platforms."""
    if config.method == "search":
        runs = [Stage(f"run-{n}", stage_platform_run(n)) for n in config.names]
        return (Stage("supernet", stage_shared_supernet), *runs, Stage("matrix", stage_matrix), Stage("report", stage_report))
    per_platform = [Stage(f"{kind}-{n}", make(n)) for n in config.names
                    for kind, make in (("table", stage_table), ("netadapt", stage_netadapt))]
    return (Stage("start", stage_start), *per_platform, Stage("matrix", stage_matrix), Stage("report", stage_report))


def summarize(run: Pipeline) -> dict[str, Any]:
    report = run.result("report")
    return {"run_dir": str(run.path), **report}


def compare_run(folder: RunFolder, config: CompareConfig, *, say=lambda m: None, stop=lambda: False) -> Pipeline:
    """The comparison as a runnable :class:`Pipeline` in ``folder``."""
    return Pipeline(folder, config, stages(config), summarize, say=say, stop=stop, resume_command=RESUME)
