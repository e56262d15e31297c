"""The evaluation API of the global search and NetAdapt: proxy training and fine-tuning.

MnasNet trains every sampled model for 5 epochs on a proxy task (MnasNet section 4.2);
NetAdapt fine-tunes each proposal for a short budget from the previous model's weights
(MobileNetV3 section 4.2, NetAdapt step 3). Both evaluate on the **validation** split:
search never sees test. Both are safe in a Ray worker: no printing, no files, the thread
count and the global RNG restored afterwards; a diverged run is reported, not raised.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from search_spaces.spec import ArchSpec
from storage.settings import check_settings, setting
from storage.status import Status
from training.config import TrainConfig
from training.datasets import Dataset
from training.trainer import Trainer, TrainingDiverged


@dataclass(frozen=True)
class Budget:
    """Training budget: ``epochs`` or ``steps`` (exactly one), on an optional stratified
    ``train_subset`` of that many training images."""

    epochs: int | None = setting(None, low=1, optional=True)
    steps: int | None = setting(None, low=1, optional=True)
    train_subset: int | None = setting(None, low=1, optional=True)

    def __post_init__(self) -> None:
        if (self.epochs is None) == (self.steps is None):
            raise ValueError(f"budget epochs = {self.epochs!r}, steps = {self.steps!r} is not allowed; give exactly one")
        check_settings(self, "budget {name}")


@dataclass(frozen=True)
class EvalResult:
    """Validation top-1 (fraction) and loss after the budget; ``status`` is ``finished`` or
    ``diverged`` (then ``top1`` and ``loss`` are NaN and ``message`` says why).

    ``top1_stderr`` is the binomial standard error of ``top1`` on the ``n_val`` validation
    images, sqrt(p (1 - p) / n): two models whose accuracies differ by less than about twice
    it cannot be told apart by this measurement (NaN when unknown or diverged).
    """

    top1: float
    loss: float
    wall_s: float
    steps: int
    images_per_s: float
    status: Status = Status.FINISHED
    message: str = ""
    top1_stderr: float = math.nan
    n_val: int = 0


def binomial_stderr(top1: float, n: int) -> float:
    """Standard error sqrt(p (1 - p) / n) of an accuracy ``top1`` measured on ``n`` images."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n = {n!r} is not allowed; expected an integer >= 1 (validation images)")
    if not 0.0 <= top1 <= 1.0:
        return math.nan
    return math.sqrt(top1 * (1.0 - top1) / n)


PROXY_CONFIG = TrainConfig(batch_size=64, lr=0.1, warmup_epochs=0.1, schedule="cosine", augment=False, eval_every_epochs=0,
                           bn_recalibration_batches=10, device="auto")
"""Proxy recipe: batch 64 (twice the steps of 128; measured: 77% vs 41% val top-1 after one mnist5k epoch
of a sampled MnasNet-space model), no augmentation (it slows learning within 1-2 epochs), short warmup,
cosine to zero, one evaluation at the end."""

DEFAULT_PROXY_BUDGET = Budget(epochs=2)
"""The search's proxy budget on DEFAULT_SEARCH_DATA (mnist-rot-back-image, 2,500 training images at
32x32, 1,500 validation): 2 epochs of PROXY_CONFIG. Measured (results/training/proxy_fidelity.json,
22 specs): Spearman 0.82 against 5-epoch default-recipe training (noise ceiling 0.87), 9 s CPU per
spec (1 thread, median). One epoch left the first sampled spec at chance (0.099)."""

FINETUNE_CONFIG = PROXY_CONFIG.replace(lr=0.01, warmup_epochs=0.0)
"""Fine-tuning recipe: a tenth of the proxy lr, no warmup, starting from given weights."""


def adapt_spec(spec: ArchSpec, data: Dataset) -> ArchSpec:
    """``spec`` with the data's input channels, resolution and class count (the rest kept)."""
    return spec.replace(in_channels=data.in_channels, resolution=data.resolution, num_classes=data.num_classes)


def _job_config(base: TrainConfig, budget: Budget, *, seed: int, threads: int, device: str) -> TrainConfig:
    return base.replace(epochs=budget.epochs or 1, steps=budget.steps, seed=seed, threads=threads, device=device)


def _subset(data: Dataset, budget: Budget, seed: int) -> Dataset:
    return data if budget.train_subset is None else data.train_subset(budget.train_subset, seed)


def _run(spec: ArchSpec, data: Dataset, config: TrainConfig,
         initial_state: dict[str, torch.Tensor] | None) -> tuple[EvalResult, Trainer | None]:
    start = time.perf_counter()
    n_val = len(data.y_val)
    trainer = Trainer(spec, data, config, initial_state=initial_state)
    try:
        result = trainer.fit()
    except TrainingDiverged as exc:
        wall_s = time.perf_counter() - start
        return EvalResult(math.nan, math.nan, wall_s, exc.step, math.nan, Status.DIVERGED, str(exc),
                          n_val=n_val), None
    wall_s = time.perf_counter() - start
    top1 = float(result.val_top1)
    return EvalResult(top1, float(result.val_loss), wall_s, result.steps, result.images_per_s,
                      top1_stderr=binomial_stderr(top1, n_val), n_val=n_val), trainer


def proxy_evaluate(spec: ArchSpec, data: Dataset, budget: Budget, *, seed: int = 0, threads: int = 1,
                   device: str = "auto", config: TrainConfig = PROXY_CONFIG) -> EvalResult:
    """Train ``spec`` from scratch for ``budget`` and return its validation accuracy.

    ``config`` supplies the recipe; its budget, seed, threads and device are replaced.
    """
    job = _job_config(config, budget, seed=seed, threads=threads, device=device)
    return _run(spec, _subset(data, budget, seed), job, None)[0]


def finetune(spec: ArchSpec, state_dict: dict[str, torch.Tensor], data: Dataset, budget: Budget, *, seed: int = 0,
             threads: int = 1, device: str = "auto",
             config: TrainConfig = FINETUNE_CONFIG) -> tuple[EvalResult, dict[str, torch.Tensor] | None]:
    """Fine-tune ``spec`` from ``state_dict`` for ``budget``; returns the validation result and
    the new weights (a CPU state dict; None when training diverged)."""
    job = _job_config(config, budget, seed=seed, threads=threads, device=device)
    outcome, trainer = _run(spec, _subset(data, budget, seed), job, state_dict)
    if trainer is None:
        return outcome, None
    weights = {k: v.detach().to("cpu", copy=True) for k, v in trainer.eval_model.state_dict().items()}
    return outcome, weights
