"""The evaluator seam: how the search learns a candidate's accuracy (MnasNet section 4.2 vs
one-shot weight sharing, TuNAS / once-for-all / BigNAS).

An :class:`Evaluator` turns a candidate ``ArchSpec`` into a :class:`nas.candidate.CandidateResult`
(validation top-1, its standard error, and the seconds it cost). The search driver, the
strategies, the rewards, ``trials.csv`` and resume do not know which one runs:

- :class:`ProxyEvaluator` trains every candidate from scratch for a few epochs (MnasNet's
  proxy task; the default);
- :class:`nas.supernet_eval.SupernetEvaluator` slices the candidate out of a trained
  weight-sharing supernet and evaluates it after BatchNorm recalibration (seconds, not minutes).

Evaluators are plain picklable objects: the Ray Tune trainable receives one through
``tune.with_parameters`` and calls :meth:`Evaluator.evaluate`; :func:`request_fn` adapts one to
:func:`nas.search.run_serial` for in-process runs.

:data:`EVALUATORS` names them (``--evaluator``); a new one is a module ``nas/<name>.py`` and
a line there. This module does not import ``nas.search`` (which validates names against
:data:`EVALUATORS`): the search config and trial requests arrive duck-typed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, runtime_checkable

from nas.candidate import CandidateResult, evaluate_candidate
from search_spaces.encoding import parse_spec
from search_spaces.spec import ArchSpec
from training.datasets import Dataset

EpochCallback = Callable[[int, float, float], None]
"""``on_epoch(epoch, top1, top1_stderr)``: an intermediate result (ASHA stops between epochs)."""


@runtime_checkable
class Evaluator(Protocol):
    """Candidates in, accuracy with its standard error and cost (``wall_s``) out.

    ``evaluate`` never raises for a bad candidate: it returns a ``failed`` or ``diverged``
    result. ``per_epoch`` says whether ``on_epoch`` is ever called (early stopping needs it).
    ``describe`` is a JSON-safe record of the evaluator for the run manifest."""

    name: str
    per_epoch: bool

    def evaluate(self, spec: ArchSpec, *, on_epoch: EpochCallback | None = None) -> CandidateResult: ...
    def describe(self) -> dict[str, Any]: ...


@dataclass(frozen=True, eq=False)
class ProxyEvaluator:
    """Proxy training from scratch (MnasNet section 4.2): ``epochs`` of the proxy recipe on
    the training split (or a ``train_subset``), top-1 on the validation split."""

    data: Dataset
    epochs: int = 1
    train_subset: int | None = None
    seed: int = 0
    threads: int = 1
    device: str = "cpu"

    name = "proxy"
    per_epoch = True

    @classmethod
    def from_config(cls, config: Any, data: Dataset) -> "ProxyEvaluator":
        """From a ``nas.search.SearchConfig``."""
        return cls(data, config.epochs, config.train_subset, config.seed, config.cpus_per_trial, config.device)

    def evaluate(self, spec: ArchSpec, *, on_epoch: EpochCallback | None = None) -> CandidateResult:
        return evaluate_candidate(spec, self.data, epochs=self.epochs, train_subset=self.train_subset, seed=self.seed,
                                  threads=self.threads, device=self.device, on_epoch=on_epoch)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "epochs": self.epochs, "train_subset": self.train_subset, "seed": self.seed,
                "threads": self.threads, "device": self.device, "data": self.data.name}


def _supernet(config: Any, data: Dataset) -> Evaluator:
    from nas.supernet_eval import SupernetEvaluator

    return SupernetEvaluator.from_run(config.supernet, data, space=config.space, seed=config.seed,
                                      threads=config.cpus_per_trial, device=config.device)


EVALUATORS: dict[str, Callable[[Any, Dataset], Evaluator]] = {
    "proxy": ProxyEvaluator.from_config,
    "supernet": _supernet,
}
"""name -> factory ``(search config, data) -> Evaluator``, in ``--help`` order."""
EVALUATOR_NAMES = tuple(EVALUATORS)


def make_evaluator(config: Any, data: Dataset) -> Evaluator:
    """The evaluator a search's settings (a ``nas.search.SearchConfig``) ask for (``config.evaluator``)."""
    if config.evaluator not in EVALUATORS:
        raise ValueError(f"--evaluator {config.evaluator!r} is not known; expected one of {list(EVALUATORS)}")
    return EVALUATORS[config.evaluator](config, data)


def request_fn(evaluator: Evaluator) -> Callable[[Any], CandidateResult]:
    """``evaluator`` as the per-request function :func:`nas.search.run_serial` calls (it
    receives a ``nas.search.TrialRequest``)."""
    return lambda request: evaluator.evaluate(parse_spec(request.spec))
