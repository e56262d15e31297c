"""One ``supernet train`` job: run folder, data, training with checkpoints, result files
(the one-shot training of once-for-all / BigNAS as a resumable job, ARCHITECTURE.md).

``SupernetJob(config, out=...).run()`` creates (or, given ``folder``, resumes) the run folder,
records the resolved settings and the data, trains (:mod:`nas.supernet_train`) and writes
``checkpoint.pt`` (atomic; the trained supernet once the run is finished), ``metrics.csv``
(one row per epoch: losses, validation top-1 of the largest and smallest sub-networks) and
``summary.json``. This layer prints nothing: messages go to ``say``, epoch rows to ``progress``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from nas.supernet_eval import CHECKPOINT, JOB
from nas.supernet_train import METRIC_COLUMNS, SupernetConfig, SupernetTrainer
from search_spaces.counting import spec_cost
from search_spaces.encoding import format_spec
from storage.runfolder import RunFolder
from storage.status import Status
from storage.statefiles import CsvLog, write_json
from training.checkpoint import load_checkpoint
from training.datasets import Dataset, default_resolution, load_dataset
from training.trainer import TrainingDiverged

METRICS = "metrics.csv"
SUMMARY = "summary.json"


def load_supernet_data(config: SupernetConfig) -> Dataset:
    """The search's data at the configured (or the data set's default) resolution; split seed 0
    as the search uses, so the supernet never trains on the search's validation images."""
    resolution = config.resolution if config.resolution is not None else default_resolution(config.data)
    return load_dataset(config.data, resolution=resolution, split_seed=0)


def open_supernet_run(path: str | Path) -> tuple[RunFolder, SupernetConfig]:
    """A supernet run folder to resume and its recorded settings (one-line errors)."""
    folder = RunFolder.open(path, job=JOB)
    folder.check_resumable()
    try:
        return folder, SupernetConfig(**folder.manifest["config"])
    except TypeError as exc:
        raise ValueError(f"{folder.path / 'manifest.json'}: config does not fit this version ({exc})") from None


class SupernetJob:
    """See the module docstring."""

    def __init__(self, config: SupernetConfig, *, out: Path, folder: RunFolder | None = None,
                 say: Callable[[str], None] = lambda message: None,
                 progress: Callable[[dict[str, float]], None] = lambda row: None) -> None:
        self.config, self.out, self.folder = config, Path(out), folder
        self.say, self.progress = say, progress

    def run(self) -> dict[str, Any] | None:
        """Train (or continue); the summary, or None when stopped (checkpoint saved)."""
        data = load_supernet_data(self.config)
        resumed = self.folder is not None
        if self.folder is None:
            self.folder = RunFolder.create(self.out, job=JOB, slug=f"supernet-{self.config.space}-{self.config.rule}",
                                           seed=self.config.seed, config=self.config.to_dict())
            self.say(f"run folder {self.folder.path}")
        folder = self.folder
        checkpoint_path = folder.file(CHECKPOINT)
        checkpoint = load_checkpoint(checkpoint_path) if resumed and checkpoint_path.is_file() else None
        with folder.session() as stop:
            folder.update(data={"name": data.name, **{k: v for k, v in data.summary().items() if k != "name"}})
            trainer = SupernetTrainer(self.config, data, checkpoint_path=checkpoint_path, should_stop=stop)
            metrics = CsvLog(folder.file(METRICS), METRIC_COLUMNS)
            metrics.rewrite([] if checkpoint is None else checkpoint["metrics"])  # exactly the saved epochs
            if checkpoint is not None:
                self.say(f"resuming at step {checkpoint['step']} of {trainer.total_steps}")
            trainer.on_epoch = lambda row: (metrics.append([row]), self.progress(row))
            try:
                done = trainer.fit(checkpoint)
            except TrainingDiverged as exc:
                folder.set_status(Status.DIVERGED, error=str(exc))
                raise ValueError(f"{exc} (run folder {folder.path})") from exc
            if not done:
                folder.set_status(Status.INTERRUPTED, step=trainer.step)
                return None
            result = self._summary(trainer)
            write_json(folder.file(SUMMARY), result)
            folder.set_status(Status.FINISHED, step=trainer.step, summary=result)
        return result

    def _summary(self, trainer: SupernetTrainer) -> dict[str, Any]:
        last = trainer.rows[-1]
        space = trainer.net.space
        largest, smallest = (space.decode(trainer.extremes[end]) for end in ("largest", "smallest"))
        return {"run_dir": str(self.folder.path), "space": self.config.space, "data": self.config.data,
                "rule": self.config.rule, "epochs": int(last["epoch"]), "steps": trainer.step,
                "val_top1_largest": last["val_top1_largest"], "val_top1_smallest": last["val_top1_smallest"],
                "train_s": sum(float(r["train_s"]) for r in trainer.rows),
                "supernet_params": sum(p.numel() for p in trainer.net.parameters()),
                "largest_params": spec_cost(largest).params, "smallest_params": spec_cost(smallest).params,
                "largest_spec": format_spec(largest), "smallest_spec": format_spec(smallest)}

