"""The runner of ``mobilenas run``: the MobileNetV3 recipe as one resumable job (Howard et al.
2019, section 4). The runner is handed its stages (:data:`pipeline.stages.RECIPE`); it never
looks one up by name.

Stages, each recorded in the run manifest (``stages.<name>.status``) and skipped once finished:

1. ``table``: create or reuse the latency table for this machine at the data's shape, with the
   drift probe; a ``--target-like`` spec is measured end to end here and fixes the target.
2. ``search``: the platform-aware global search (MnasNet reward) aiming ``search_target_factor``
   above the target, as a ``search`` run folder under ``search/``.
3. ``netadapt``: NetAdapt from the search's best model down to the target (section 4.2), a
   ``netadapt`` run folder under ``netadapt/`` (skipped when the best is already at the target);
   while the result measures over budget end to end, further rounds (``netadapt-2/``, ...)
   continue from it at a target corrected by the measured ratio (:mod:`pipeline.netadapt_rounds`).
4. ``final``: the final spec trained from scratch with the full recipe (section 6.1).
5. ``references``: MobileNetV3-Small/-Large at width multipliers, same recipe and budget.
6. ``measure``: every trained model's end-to-end latency, interleaved in one session.
7. ``export``: spec JSON, paper table, timm ``arch_def``, ONNX checked in ONNX Runtime, weights.
8. ``report``: ``report.md`` and a self-contained ``report.html``.

Every stage resumes after SIGKILL: sub-jobs keep their own run folders and checkpoints. This
module prints nothing; messages go to ``say``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from storage.runfolder import RunFolder
from storage.status import Status

Say = Callable[[str], None]


class StageStopped(Exception):
    """A stage stopped on Ctrl-C/SIGTERM with its state saved."""


class StageFailed(ValueError):
    """A stage failed; the message names the stage, the cause and how to resume."""


@dataclass(frozen=True)
class Stage:
    """One named step: ``run(pipeline)`` returns the JSON-safe result recorded in the manifest."""

    name: str
    run: Callable[["Pipeline"], dict[str, Any]]


class Pipeline:
    """Runs (or continues) ``stages`` in order in one pipeline run folder; ``summarize`` turns the
    finished stages into the run's results. ``config`` is the job's settings (a
    :class:`~pipeline.config.PipelineConfig` for ``mobilenas run``)."""

    def __init__(self, folder: RunFolder, config: Any, stages: Sequence[Stage],
                 summarize: Callable[["Pipeline"], dict[str, Any]], *, say: Say = lambda m: None,
                 stop: Callable[[], bool] = lambda: False, resume_command: str = "mobilenas run --resume") -> None:
        self.folder, self.config, self.say, self.stop = folder, config, say, stop
        self.resume_command = resume_command
        self.stages, self.summarize = tuple(stages), summarize
        self.started = time.monotonic()

    @property
    def path(self) -> Path:
        return self.folder.path

    def records(self) -> dict[str, Any]:
        return self.folder.manifest.setdefault("stages", {})

    def result(self, stage: str) -> dict[str, Any]:
        """The recorded result of a finished stage."""
        record = self.records().get(stage, {})
        if record.get("status") != Status.FINISHED:
            raise StageFailed(f"stage {stage!r} has not finished; resume with: {self.resume_command} {self.path}")
        return record["result"]

    def run(self) -> dict[str, Any]:
        """Run every unfinished stage in order; returns the final summary."""
        total = len(self.stages)
        for number, stage in enumerate(self.stages, start=1):
            record = self.records().get(stage.name, {})
            if record.get("status") == Status.FINISHED:
                self.say(f"[{number}/{total} {stage.name}] done earlier, kept")
                continue
            self.say(f"[{number}/{total} {stage.name}] starting (elapsed {self.elapsed()})")
            self._run_stage(stage.name, stage.run)
        summary = self.summarize(self)
        self.folder.set_status(Status.FINISHED, results=summary)
        return summary

    def _run_stage(self, name: str, function: Callable[["Pipeline"], dict[str, Any]]) -> None:
        start = time.monotonic()
        self._mark(name, Status.RUNNING)
        try:
            result = function(self)
        except StageStopped:
            self._mark(name, Status.INTERRUPTED)
            raise
        except Exception as exc:
            self._mark(name, Status.FAILED, error=f"{type(exc).__name__}: {exc}")
            raise StageFailed(f"stage {name!r} failed: {exc} (fix the cause, then: {self.resume_command} "
                              f"{self.path})") from exc
        previous = float(self.records().get(name, {}).get("elapsed_s", 0.0))
        self._mark(name, Status.FINISHED, result=result, elapsed_s=round(previous + time.monotonic() - start, 2))

    def _mark(self, name: str, status: Status, **fields: Any) -> None:
        record = self.records().setdefault(name, {})
        if status is Status.RUNNING and "elapsed_s" in record:
            fields.setdefault("elapsed_s", record["elapsed_s"])
        record.update(status=status.value, **fields)
        self.folder.save()

    def elapsed(self) -> str:
        seconds = time.monotonic() - self.started
        return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"

    def check_stop(self) -> None:
        if self.stop():
            raise StageStopped()


def run_in_session(folder: RunFolder, make: Callable[[Callable[[], bool]], Pipeline]) -> dict[str, Any] | None:
    """Run the pipeline ``make(stop)`` builds inside ``folder``'s session (this process its owner,
    Ctrl-C/SIGTERM setting ``stop``); its summary, or None when it stopped with its work saved."""
    with folder.session() as stop:
        try:
            return make(stop).run()
        except StageStopped:
            folder.set_status(Status.INTERRUPTED)
            return None
