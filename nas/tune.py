"""Ray Tune as the search's trial engine (the only module importing ``ray``).

:class:`StrategySearcher` is a thin ``ray.tune.search.Searcher`` over a
:class:`nas.search.SearchDriver`, shaped like Ray's ``OptunaSearch``: ``suggest`` asks the
strategy, ``on_trial_complete`` scores, logs and tells it, ``save``/``restore`` carry the
strategy's ``state_dict``. Each trial hands one candidate to the search's evaluator
(:func:`candidate_trainable`; :mod:`nas.evaluator`: proxy training or a weight-sharing supernet)
and reports its top-1; latency and reward are the driver's. The evaluator (with its data set)
reaches the workers once through ``tune.with_parameters``; actors are reused, so a trial does not
pay a worker's start-up and imports again. :func:`ray_cluster` starts a local one-node cluster with its temp folder and results
inside the run folder (or joins ``--address``) and always ends what it started.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import Searcher

from nas.candidate import CandidateResult, failed
from nas.evaluator import Evaluator
from nas.rewards import RewardConfig
from nas.search import SearchDriver, TrialRequest
from storage.processes import end_processes_using, start_with_retries
from storage.statefiles import read_json, write_json
from storage.status import Status
from training.datasets import Dataset
from search_spaces.encoding import parse_spec

log = logging.getLogger(__name__)
SOCKET_PATH_MAX = 107          # sun_path in sockaddr_un, minus the terminating NUL
RAY_SOCKET_SUFFIX = 64         # "/session_<date>_<time>_<usec>_<pid>/sockets/plasma_store" and the like
RAY_TMP = "ray_tmp"
LINK_RECORD = "link-path"
CLEANUP_GRACE_S = 3.0
RAY_RESULTS = "ray_results"


class StrategySearcher(Searcher):
    """``Searcher`` adapter of a :class:`SearchDriver` (MnasNet's controller loop on Ray Tune)."""

    def __init__(self, driver: SearchDriver, *, should_stop: Callable[[], bool] = lambda: False) -> None:
        super().__init__(metric="reward", mode="max")
        self.driver = driver
        self.should_stop = should_stop
        self.requests: dict[str, TrialRequest] = {}

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if self.should_stop():
            return Searcher.FINISHED
        request = self.driver.ask()
        if request is None:
            budget_issued = self.driver.done + self.driver.in_flight >= self.driver.config.trials
            return Searcher.FINISHED if budget_issued or self.driver.exhausted else None
        self.requests[trial_id] = request
        return {"spec": request.spec, "latency_ms": request.latency_ms, "trial": request.trial}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        request = self.requests.pop(trial_id, None)
        if request is None:
            return
        self.driver.complete(request, _candidate_result(result, error, self.driver.config.epochs), trial_id=trial_id)

    def __getstate__(self) -> dict[str, Any]:
        """What a pickle of the searcher keeps: Tune pickles its config into ``tuner.pkl`` (for
        ``Tuner.restore``, which a search does not use: it resumes from its own trial log), and the
        live driver and stop callback can reach objects that do not pickle (a lock, once a
        process has joined a Ray cluster before); they stay with the searcher in this process."""
        return {k: v for k, v in self.__dict__.items() if k not in ("driver", "should_stop", "requests")}

    def save(self, checkpoint_path: str) -> None:
        write_json(checkpoint_path, {"schema_version": 1, "strategy": self.driver.strategy.state_dict()})

    def restore(self, checkpoint_path: str) -> None:
        state = read_json(checkpoint_path, schema_version=1, fields={"strategy": dict}, what="searcher state")
        self.driver.strategy.load_state_dict(state["strategy"])


def _candidate_result(result: dict | None, error: bool, epochs: int) -> CandidateResult:
    """The trial's last report as a result; an errored or silent trial is ``failed``; a trial
    whose last report is before the final epoch was stopped early by the scheduler."""
    if error or not result or "status" not in result:
        return failed("the Ray trial raised an error (see the trial's error.txt under ray_results)")
    if result.get("final") is False and int(result["epochs"]) < epochs:
        return CandidateResult.from_dict({**result, "status": Status.PRUNED, "message": "stopped early by ASHA"})
    return CandidateResult.from_dict(result)


def candidate_trainable(config: dict, *, evaluator: Evaluator, epochs: int, per_epoch: bool,
                        reward: RewardConfig) -> None:
    """A Ray Tune function trainable: ``evaluator`` evaluates ``config['spec']`` and the trial
    reports its top-1 (every epoch when ``per_epoch``, for ASHA; ``final`` marks the last report)."""
    import time

    start = time.perf_counter()

    def report(epoch: int, top1: float, top1_stderr: float) -> None:
        if epoch < epochs:
            tune.report({"top1": top1, "top1_stderr": top1_stderr, "status": Status.RUNNING.value, "epochs": epoch,
                         "epoch": epoch,
                         "wall_s": time.perf_counter() - start, "message": "", "final": False,
                         "reward": reward(top1, config["latency_ms"])})

    try:
        result = evaluator.evaluate(parse_spec(config["spec"]), on_epoch=report if per_epoch else None)
    except Exception as exc:  # a trial must report, not raise: the driver logs it as failed
        result = failed(f"{type(exc).__name__}: {exc}", time.perf_counter() - start)
    reward_value = reward(result.top1, config["latency_ms"]) if result.status is Status.FINISHED else reward.worst
    tune.report({**result.to_dict(), "epoch": max(result.epochs, 1), "final": True, "reward": reward_value})


@dataclass(frozen=True)
class ClusterInfo:
    """Where Ray runs: ``address`` joined (None: a local cluster started here); the local
    cluster's temp folder (always inside the run folder) and the path Ray was given for it
    (a short symlink in /tmp when the real path is too long for Unix sockets); results folder."""

    address: str | None
    temp_dir: str | None
    temp_link: str | None
    storage_path: str

    def to_dict(self) -> dict[str, Any]:
        return {"address": self.address, "temp_dir": self.temp_dir, "temp_link": self.temp_link,
                "storage_path": self.storage_path}


def _short_path(temp: Path) -> Path | None:
    """None when ``temp``'s socket paths fit ``sun_path``; else a new short symlink to it."""
    if len(str(temp)) + RAY_SOCKET_SUFFIX <= SOCKET_PATH_MAX:
        return None
    link = Path(tempfile.mkdtemp(prefix="mnas-", dir="/tmp")) / "t"
    link.symlink_to(temp, target_is_directory=True)
    return link


def end_cluster_processes(temp: Path, grace_s: float) -> int:
    """End what a local cluster of ``temp`` left running (a killed driver's cluster, or agents
    outliving a shutdown) and remove its short symlink; returns how many were ended."""
    record = temp / LINK_RECORD
    link = Path(record.read_text().strip()) if record.is_file() else None
    ended = end_processes_using([temp] + ([link] if link else []), grace_s=grace_s)
    if link is not None and link.is_symlink():
        link.unlink()
        shutil.rmtree(link.parent, ignore_errors=True)
    record.unlink(missing_ok=True)
    return ended


@contextlib.contextmanager
def ray_cluster(folder: str | Path, *, num_cpus: int, address: str | None = None) -> Iterator[ClusterInfo]:
    """Start a local Ray cluster for this run (``num_cpus``), or connect to ``address``;
    on exit shut down and end every process the local cluster started."""
    folder = Path(folder)
    storage = str((folder / RAY_RESULTS).resolve())
    if address is not None:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        try:
            yield ClusterInfo(address, None, None, storage)
        finally:
            ray.shutdown()
        return
    temp = (folder / RAY_TMP).resolve()
    temp.mkdir(parents=True, exist_ok=True)
    left = end_cluster_processes(temp, grace_s=0.0)
    if left:
        log.warning("ended %d Ray processes left by an earlier (killed) run of %s", left, folder)
    link = _short_path(temp)
    if link is not None:
        (temp / LINK_RECORD).write_text(str(link))
    os.environ["RAY_AUTH_MODE"] = "disabled"  # else Ray writes a token under the home folder
    # Ray starts its workers at nice 15; the trials are the job, and niced they got ~3% of a core
    # whenever any other process on the machine was busy
    os.environ.setdefault("RAY_worker_niceness", "0")
    try:
        start_with_retries(lambda: ray.init(num_cpus=num_cpus, _temp_dir=str(link or temp), include_dashboard=False,
                                            logging_level=logging.WARNING, log_to_driver=False),
                           lambda: (ray.shutdown(), end_processes_using([temp] + ([link] if link else []), grace_s=1.0)))
        yield ClusterInfo(None, str(temp), str(link) if link else None, storage)
    finally:
        ray.shutdown()
        end_cluster_processes(temp, grace_s=CLEANUP_GRACE_S)


def run_tune(driver: SearchDriver, evaluator: Evaluator, cluster: ClusterInfo, *, name: str,
             should_stop: Callable[[], bool] = lambda: False) -> None:
    """Run the driver's remaining budget as one Ray Tune experiment ``name``, each trial
    evaluated by ``evaluator`` (shipped to the workers once)."""
    config = driver.config
    remaining = config.trials - driver.done
    if remaining <= 0:
        return
    trainable = tune.with_parameters(candidate_trainable, evaluator=evaluator, epochs=config.epochs,
                                     per_epoch=config.asha and evaluator.per_epoch, reward=config.reward_config())
    trainable = tune.with_resources(trainable, {"cpu": config.cpus_per_trial})
    scheduler = (ASHAScheduler(time_attr="epoch", metric="reward", mode="max", max_t=config.epochs, grace_period=1,
                               reduction_factor=2) if config.asha else None)
    tune_config = tune.TuneConfig(search_alg=StrategySearcher(driver, should_stop=should_stop), scheduler=scheduler,
                                  num_samples=remaining, max_concurrent_trials=config.concurrency, reuse_actors=True)
    run_config = tune.RunConfig(name=name, storage_path=cluster.storage_path, verbose=0,
                                failure_config=tune.FailureConfig(max_failures=0))
    console = Path(cluster.storage_path) / f"{name}.console.txt"  # Tune's own banner and tables
    console.parent.mkdir(parents=True, exist_ok=True)
    with console.open("a") as handle, contextlib.redirect_stdout(handle):
        tune.Tuner(trainable, tune_config=tune_config, run_config=run_config).fit()
