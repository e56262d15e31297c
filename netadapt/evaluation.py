"""NetAdapt step 3 for one iteration's proposals: transfer weights, short-term fine-tune, evaluate.

Each proposal starts from the current model's weights, its filters chosen by L2 norm
(:func:`netadapt.transfer.shrink_state_dict`), is fine-tuned for the short budget and is
evaluated on the validation split (MobileNetV3 section 4.2; NetAdapt uses T = 10^4 steps).
A proposal's outcome depends only on (current model, proposal spec, its seed), never on the
order or the process it runs in, so the sequential evaluator here and the Ray evaluator of
:mod:`netadapt.parallel` give the same results.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import torch

from netadapt.transfer import shrink_state_dict
from search_spaces.spec import ArchSpec
from training.datasets import Dataset
from training.evaluate import Budget, EvalResult, finetune


@dataclass(frozen=True)
class ProposalTask:
    """Proposal ``index`` of an iteration: the shrunk spec and the seed of its fine-tune."""

    index: int
    spec: ArchSpec
    seed: int


@dataclass(frozen=True)
class TaskOutcome:
    """The validation result of a task and its fine-tuned weights (None if it diverged)."""

    index: int
    result: EvalResult
    weights: dict[str, torch.Tensor] | None


@dataclass(frozen=True)
class FinetuneJob:
    """What every task of a run shares: the short budget, threads per task and device."""

    budget: Budget
    threads: int = 1
    device: str = "cpu"


def run_task(current_spec: ArchSpec, current_weights: dict[str, torch.Tensor], task: ProposalTask, data: Dataset,
             job: FinetuneJob) -> TaskOutcome:
    """Transfer ``current_weights`` to ``task.spec``, fine-tune for the short budget, evaluate."""
    weights = shrink_state_dict(current_spec, current_weights, task.spec)
    result, tuned = finetune(task.spec, weights, data, job.budget, seed=task.seed, threads=job.threads,
                             device=job.device)
    return TaskOutcome(task.index, result, tuned)


class Evaluator(Protocol):
    """Runs an iteration's tasks; returns outcomes in task order."""

    def evaluate(self, current_spec: ArchSpec, current_weights: dict[str, torch.Tensor],
                 tasks: Sequence[ProposalTask]) -> list[TaskOutcome]: ...

    def close(self) -> None: ...


class SequentialEvaluator:
    """In-process, one task after the other (tests, and ``--workers 1``)."""

    def __init__(self, data: Dataset, job: FinetuneJob) -> None:
        self.data, self.job = data, job

    def evaluate(self, current_spec: ArchSpec, current_weights: dict[str, torch.Tensor],
                 tasks: Sequence[ProposalTask]) -> list[TaskOutcome]:
        return [run_task(current_spec, current_weights, task, self.data, self.job) for task in tasks]

    def close(self) -> None:
        pass

    def __enter__(self) -> "SequentialEvaluator":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
