"""An iteration's proposals as Ray tasks (MobileNetV3 section 4.2: proposals are independent).

:class:`RayEvaluator` has the interface of :class:`netadapt.evaluation.SequentialEvaluator`
and gives the same outcomes (a task's result depends only on its inputs and seed). It starts
a local one-node cluster (``RAY_AUTH_MODE=disabled``, temp folder inside the run folder) or
connects to ``address``; the data set is put in the object store once, the current weights
once per iteration. Each task asks for ``threads`` CPUs and pins torch to that many threads.

Ray's unix sockets must fit in 107 bytes, which a temp folder inside a run folder often does
not; the cluster is therefore started through a short symlink in the system temp folder that
points into the run folder. :meth:`RayEvaluator.close` shuts the cluster down and ends any
process still running from that temp folder (Ray's agents can outlive a shutdown),
and :func:`storage.processes.end_processes_using` does the same for a cluster whose driver was killed.
"""
from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Sequence

import ray
import torch

from netadapt.evaluation import FinetuneJob, ProposalTask, TaskOutcome, run_task
from search_spaces.spec import ArchSpec
from storage.processes import end_processes_using, processes_using, start_with_retries  # noqa: F401 (tests import processes_using from here)
from training.datasets import Dataset

log = logging.getLogger(__name__)
OBJECT_STORE_BYTES = 512 * 2**20

LINK_RECORD = "link-path"


def _short_link(target: Path) -> Path:
    """A short symlink in the system temp folder pointing at ``target``, recorded in
    ``target/link-path`` so that a later run can find what a killed driver left running."""
    link = Path(tempfile.mkdtemp(prefix="mnray-")) / "t"
    link.symlink_to(target.resolve(), target_is_directory=True)
    (target / LINK_RECORD).write_text(str(link))
    return link


def ray_folders(temp_dir: Path) -> list[Path]:
    """The paths Ray processes started for ``temp_dir`` carry in their command lines."""
    folders = [temp_dir.resolve()]
    record = temp_dir / LINK_RECORD
    if record.is_file():
        folders.append(Path(record.read_text().strip()))
    return folders


def end_ray_processes(temp_dir: str | Path, grace_s: float = 10.0) -> int:
    """End the processes of a local cluster started in ``temp_dir`` (e.g. after its driver was
    killed), and remove the short symlink; returns how many had to be ended."""
    temp_dir = Path(temp_dir)
    if not temp_dir.is_dir():
        return 0
    folders = ray_folders(temp_dir)
    ended = end_processes_using(folders, grace_s)
    link = folders[-1]
    if link != folders[0] and link.is_symlink():
        link.unlink()
        try:
            link.parent.rmdir()
        except OSError:
            pass
    return ended


class RayEvaluator:
    """Proposals as Ray tasks; see the module docstring. Use as a context manager."""

    def __init__(self, data: Dataset, job: FinetuneJob, *, temp_dir: str | Path, workers: int,
                 address: str | None = None) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers = {workers!r} is not allowed; expected an integer >= 1")
        self.job, self.address = job, address
        self.temp_dir = Path(temp_dir)
        self.link: Path | None = None
        self._start(workers)
        self._data = ray.put(data)
        self._task = ray.remote(num_cpus=job.threads)(run_task)

    def _start(self, workers: int) -> None:
        if ray.is_initialized():
            raise RuntimeError("Ray is already initialised in this process; NetAdapt starts its own connection")
        if self.address is not None:
            ray.init(address=self.address, log_to_driver=False)
            return
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        end_ray_processes(self.temp_dir, grace_s=0.0)  # what a killed driver left running
        self.link = _short_link(self.temp_dir)
        os.environ["RAY_AUTH_MODE"] = "disabled"  # no token under the home folder
        # Ray starts its workers at nice 15; the trials are the job, and niced they got ~3% of a core
        # whenever any other process on the machine was busy
        os.environ.setdefault("RAY_worker_niceness", "0")
        try:
            start_with_retries(lambda: ray.init(num_cpus=workers * self.job.threads, _temp_dir=str(self.link),
                                                include_dashboard=False, log_to_driver=False,
                                                object_store_memory=OBJECT_STORE_BYTES, configure_logging=False),
                               lambda: (ray.shutdown(), end_ray_processes(self.temp_dir, grace_s=1.0)))
        except BaseException:
            self.close()
            raise

    def evaluate(self, current_spec: ArchSpec, current_weights: dict[str, torch.Tensor],
                 tasks: Sequence[ProposalTask]) -> list[TaskOutcome]:
        weights = ray.put(current_weights)
        refs = [self._task.remote(current_spec, weights, task, self._data, self.job) for task in tasks]
        return list(ray.get(refs))

    def close(self) -> None:
        """Shut Ray down; for a local cluster also end its leftover processes and the symlink."""
        if ray.is_initialized():
            ray.shutdown()
        if self.link is not None:
            ended = end_ray_processes(self.temp_dir)
            if ended:
                log.info("ended %d Ray processes left after shutdown", ended)
            self.link = None

    def __enter__(self) -> "RayEvaluator":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
