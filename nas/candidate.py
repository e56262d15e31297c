"""One trial's work: proxy-train a candidate and return its validation top-1 (MnasNet
section 4.2: every sampled model is trained briefly on a proxy task). Plain data in and out,
so the same function runs in-process and inside a Ray Tune trial; no printing, no files."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

from search_spaces.encoding import parse_spec
from storage.status import TRIAL_STATUSES, Status, parse_status
from search_spaces.spec import ArchSpec
from training.datasets import Dataset
from training.evaluate import PROXY_CONFIG, Budget, adapt_spec, binomial_stderr, proxy_evaluate
from training.trainer import Progress, Trainer, TrainingDiverged



@dataclass(frozen=True)
class CandidateResult:
    """Proxy validation top-1 with its binomial standard error, epochs trained and wall time."""

    top1: float
    top1_stderr: float
    status: Status
    epochs: int
    wall_s: float
    message: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", parse_status(self.status, TRIAL_STATUSES, "candidate status"))

    def to_dict(self) -> dict[str, object]:
        return {"top1": self.top1, "top1_stderr": self.top1_stderr, "status": self.status.value, "epochs": self.epochs,
                "wall_s": self.wall_s, "message": self.message}

    @classmethod
    def from_dict(cls, data: dict) -> "CandidateResult":
        return cls(float(data["top1"]), float(data["top1_stderr"]), str(data["status"]), int(data["epochs"]),
                   float(data["wall_s"]), str(data.get("message", "")))


def failed(message: str, wall_s: float = math.nan) -> CandidateResult:
    return CandidateResult(math.nan, math.nan, Status.FAILED, 0, wall_s, message)


def evaluate_candidate(spec: str | ArchSpec, data: Dataset, *, epochs: int, train_subset: int | None = None, seed: int = 0,
                       threads: int = 1, device: str = "cpu",
                       on_epoch: Callable[[int, float, float], None] | None = None) -> CandidateResult:
    """Train ``spec`` (a canonical spec string or an ``ArchSpec``, adapted to ``data``) for ``epochs`` and
    evaluate it on the validation split. ``on_epoch(epoch, top1, top1_stderr)`` is called after
    every epoch when given (early stopping); otherwise the proxy recipe of
    :func:`training.evaluate.proxy_evaluate` runs with one evaluation at the end. A candidate that
    cannot be built at the data's shape is ``infeasible``."""
    try:
        arch = adapt_spec(parse_spec(spec) if isinstance(spec, str) else spec, data)
    except ValueError as exc:
        return CandidateResult(math.nan, math.nan, Status.INFEASIBLE, 0, 0.0, str(exc))
    if on_epoch is None:
        result = proxy_evaluate(arch, data, Budget(epochs=epochs, train_subset=train_subset), seed=seed,
                                threads=threads, device=device)
        if result.status is not Status.FINISHED:
            return CandidateResult(math.nan, math.nan, Status.DIVERGED, epochs, result.wall_s, result.message)
        return CandidateResult(result.top1, result.top1_stderr, Status.FINISHED, epochs, result.wall_s)
    return _evaluate_per_epoch(arch, data, epochs=epochs, train_subset=train_subset, seed=seed, threads=threads,
                               device=device, on_epoch=on_epoch)


def _evaluate_per_epoch(arch, data: Dataset, *, epochs: int, train_subset: int | None, seed: int, threads: int,
                        device: str, on_epoch: Callable[[int, float, float], None]) -> CandidateResult:
    """The proxy recipe with a validation pass after every epoch, each reported to ``on_epoch``."""
    subset = data if train_subset is None else data.train_subset(train_subset, seed)
    config = PROXY_CONFIG.replace(epochs=epochs, seed=seed, threads=threads, device=device, eval_every_epochs=1)
    n_val = len(subset.y_val)

    def report(progress: Progress) -> None:
        if progress.phase == "epoch" and progress.metrics is not None:
            top1 = float(progress.metrics["val_top1"])
            on_epoch(progress.epoch, top1, binomial_stderr(top1, n_val))

    start = time.perf_counter()
    try:
        result = Trainer(arch, subset, config, on_progress=report).fit()
    except TrainingDiverged as exc:
        return CandidateResult(math.nan, math.nan, Status.DIVERGED, exc.epoch, time.perf_counter() - start, str(exc))
    top1 = float(result.val_top1)
    return CandidateResult(top1, binomial_stderr(top1, n_val), Status.FINISHED, epochs, time.perf_counter() - start)
