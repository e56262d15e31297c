"""Train a spec's model on a :class:`~training.datasets.Dataset` (MobileNetV3 section 6.1).

Reproducibility: every random draw is derived from ``(config.seed, purpose, index)``
(:func:`training.runtime.derived_seed`): weight init, the shuffle of each epoch, the
augmentation and dropout of each step, the BatchNorm recalibration batches of each
evaluation. With a fixed thread count two runs are bit-identical, and a run resumed from
any checkpoint (epoch end or a stop between steps) continues exactly as if uninterrupted.

The trainer never prints or writes files except the checkpoint it is given; progress goes
to an optional callback, and a stop request (``should_stop``) is honoured between steps.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch
from torch import nn

from search_spaces.builder import build_model
from search_spaces.encoding import spec_to_dict
from search_spaces.spec import ArchSpec
from storage.status import Status
from training.augment import augment_batch
from training.checkpoint import FORMAT_VERSION, save_checkpoint
from training.config import TrainConfig
from training.datasets import Dataset
from training.inference import evaluate_model, recalibrate_batchnorm
from training.optim import WeightEma, make_optimizer, make_scheduler
from training.runtime import derived_seed, generator, job_context, resolve_device

logger = logging.getLogger(__name__)

METRIC_COLUMNS = ("epoch", "step", "lr", "train_loss", "train_top1", "val_loss", "val_top1", "epoch_s", "train_s",
                  "eval_s", "images_per_s")


class TrainingDiverged(RuntimeError):
    """The training loss became NaN/inf or exceeded ``config.max_loss``."""

    def __init__(self, *, epoch: int, step: int, loss: float, lr: float, max_loss: float) -> None:
        super().__init__(f"training diverged at epoch {epoch}, step {step}: loss = {loss:.4g} "
                         f"(limit {max_loss:g}, NaN/inf not allowed) at lr = {lr:.4g}; lower the learning rate "
                         "or set a grad clip norm")
        self.epoch, self.step, self.loss, self.lr = epoch, step, loss, lr


@dataclass(frozen=True)
class Progress:
    """What the progress callback receives: after every step (``phase='step'``) and after
    every epoch (``phase='epoch'``, with the epoch's metrics row)."""

    phase: str
    epoch: int
    epochs: int
    step: int
    total_steps: int
    loss: float
    top1: float
    lr: float
    elapsed_s: float
    metrics: dict[str, float] | None = None


@dataclass
class TrainResult:
    """A finished (or stopped) run: ``model`` is ready to evaluate (EMA weights if enabled,
    BatchNorm recalibrated) and on the training device."""

    model: nn.Module
    metrics: pd.DataFrame
    status: Status
    steps: int
    val_top1: float | None
    val_loss: float | None
    wall_s: float
    images_per_s: float
    device: str


@dataclass
class _EpochState:
    """Accumulators of the epoch in progress (saved in checkpoints for mid-epoch resume)."""

    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    train_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"loss_sum": self.loss_sum, "correct": self.correct, "seen": self.seen, "train_s": self.train_s}


def steps_per_epoch(train_size: int, batch_size: int) -> int:
    """Full batches per epoch (the last partial batch is dropped; at least one batch)."""
    return max(train_size // batch_size, 1)


class Trainer:
    """One training job. ``initial_state`` (a state dict) starts from given weights
    (fine-tuning); ``resume`` (a checkpoint dict) continues a stopped run."""

    def __init__(self, spec: ArchSpec, data: Dataset, config: TrainConfig, *,
                 initial_state: dict[str, torch.Tensor] | None = None,
                 on_progress: Callable[[Progress], None] | None = None,
                 should_stop: Callable[[], bool] | None = None,
                 checkpoint_path: str | Path | None = None) -> None:
        _check_compatible(spec, data)
        self.spec, self.data, self.config = spec, data, config
        self.initial_state = initial_state
        self.on_progress, self.should_stop = on_progress, should_stop
        self.checkpoint_path = None if checkpoint_path is None else Path(checkpoint_path)
        self.steps_per_epoch = steps_per_epoch(len(data.y_train), config.batch_size)
        self.total_steps = config.steps if config.steps is not None else config.epochs * self.steps_per_epoch
        self.epochs = math.ceil(self.total_steps / self.steps_per_epoch)

    def fit(self, resume: dict[str, Any] | None = None) -> TrainResult:
        """Train to the budget (or until ``should_stop``); raises :class:`TrainingDiverged`."""
        device = resolve_device(self.config.device)
        with job_context(self.config.threads, device):
            return self._fit(device, resume)

    def _fit(self, device: torch.device, resume: dict[str, Any] | None) -> TrainResult:
        start = time.perf_counter()
        self._setup(device)
        epoch_state = _EpochState()
        if resume is not None:
            epoch_state = self._restore(resume)
        elif self.checkpoint_path is not None:
            self._save(epoch_state)  # an interrupt in epoch 1 can resume from here
        status = Status.FINISHED
        while self.step < self.total_steps:
            epoch = self.step // self.steps_per_epoch
            if not self._run_epoch(epoch, epoch_state):
                status = Status.INTERRUPTED
                break
            epoch_state = _EpochState()
        return self._result(status, time.perf_counter() - start)

    def _setup(self, device: torch.device) -> None:
        self.device = device
        torch.manual_seed(derived_seed(self.config.seed, "init"))
        model = build_model(self.spec)
        if self.initial_state is not None:
            model.load_state_dict(self.initial_state)
        self.model = model.to(device).train()
        self.optimizer = make_optimizer(self.model, self.config)
        self.scheduler = make_scheduler(self.optimizer, total_steps=self.total_steps,
                                        steps_per_epoch=self.steps_per_epoch, config=self.config)
        self.ema = None if self.config.ema_decay is None else WeightEma(self.model, self.config.ema_decay)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=self.config.label_smoothing)
        self.x_train = self.data.x_train.to(device)
        self.y_train = self.data.y_train.to(device)
        self.step, self.rows = 0, []

    def _run_epoch(self, epoch: int, state: _EpochState) -> bool:
        """Run the rest of ``epoch``; False when stopped early (checkpoint saved)."""
        order = torch.randperm(len(self.y_train), generator=generator(self.config.seed, "shuffle", epoch))
        order = order.to(self.device)
        bs, first = self.config.batch_size, self.step - epoch * self.steps_per_epoch
        last = min(self.steps_per_epoch, self.total_steps - epoch * self.steps_per_epoch)
        for batch in range(first, last):
            tick = time.perf_counter()
            self._train_step(order[batch * bs:(batch + 1) * bs], epoch, state)
            state.train_s += time.perf_counter() - tick
            self._report("step", epoch, state)
            if self.should_stop is not None and self.should_stop() and self.step < self.total_steps:
                self._save(state)
                return False
        self._end_epoch(epoch, state)
        return True

    def _train_step(self, index: torch.Tensor, epoch: int, state: _EpochState) -> None:
        x, y = self.x_train[index], self.y_train[index]
        if self.config.augment:
            x = augment_batch(x, self.data.augmentation, generator(self.config.seed, "augment", self.step))
        torch.manual_seed(derived_seed(self.config.seed, "dropout", self.step))
        logits = self.model(x)
        loss = self.criterion(logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip_norm is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip_norm)
        value = float(loss.detach())
        if not math.isfinite(value) or value > self.config.max_loss:
            raise TrainingDiverged(epoch=epoch + 1, step=self.step + 1, loss=value, lr=self.scheduler.get_last_lr()[0],
                                   max_loss=self.config.max_loss)
        self.optimizer.step()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model)
        self.step += 1
        state.loss_sum += value * len(y)
        state.correct += int((logits.detach().argmax(1) == y).sum())
        state.seen += len(y)

    def _evaluate(self, epoch: int) -> tuple[float, float]:
        """Recalibrate BatchNorm on training batches, then evaluate the validation split."""
        model = self.eval_model
        recalibrate_batchnorm(model, self.x_train, batch_size=self.config.batch_size,
                              batches=self.config.bn_recalibration_batches,
                              generator=generator(self.config.seed, "recalibrate", epoch), device=self.device)
        top1, loss = evaluate_model(model, self.data.x_val, self.data.y_val, device=self.device)
        self.model.train()
        return top1, loss

    @property
    def eval_model(self) -> nn.Module:
        return self.model if self.ema is None else self.ema.model

    def _end_epoch(self, epoch: int, state: _EpochState) -> None:
        tick = time.perf_counter()
        every, is_last = self.config.eval_every_epochs, self.step >= self.total_steps
        val_top1 = val_loss = math.nan
        if is_last or (every > 0 and (epoch + 1) % every == 0):
            val_top1, val_loss = self._evaluate(epoch)
        eval_s = time.perf_counter() - tick
        row = {"epoch": epoch + 1, "step": self.step, "lr": self.scheduler.get_last_lr()[0],
               "train_loss": state.loss_sum / max(state.seen, 1), "train_top1": state.correct / max(state.seen, 1),
               "val_loss": val_loss, "val_top1": val_top1, "epoch_s": state.train_s + eval_s, "train_s": state.train_s,
               "eval_s": eval_s, "images_per_s": state.seen / state.train_s if state.train_s > 0 else math.nan}
        self.rows.append(row)
        logger.info("epoch %d/%d: loss %.4f, val top-1 %.4f, %.1f s", epoch + 1, self.epochs, row["train_loss"],
                    val_top1, row["epoch_s"])
        if self.checkpoint_path is not None:
            self._save(_EpochState())
        self._report("epoch", epoch, state, row)

    def _report(self, phase: str, epoch: int, state: _EpochState, row: dict[str, float] | None = None) -> None:
        if self.on_progress is None:
            return
        self.on_progress(Progress(phase, epoch + 1, self.epochs, self.step, self.total_steps,
                                  state.loss_sum / max(state.seen, 1), state.correct / max(state.seen, 1),
                                  self.scheduler.get_last_lr()[0], state.train_s, row))

    def checkpoint_state(self, state: _EpochState) -> dict[str, Any]:
        """Everything needed to continue: weights, optimizer, scheduler, EMA, step, metrics."""
        return {"format_version": FORMAT_VERSION, "spec": spec_to_dict(self.spec), "config": self.config.to_dict(),
                "data": self.data.summary(), "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "ema": None if self.ema is None else self.ema.state_dict(), "step": self.step,
                "epoch_state": state.to_dict(), "metrics": list(self.rows),
                "rng": {"torch": torch.get_rng_state()}}

    def _save(self, state: _EpochState) -> None:
        if self.checkpoint_path is not None:
            save_checkpoint(self.checkpoint_state(state), self.checkpoint_path)

    def _restore(self, checkpoint: dict[str, Any]) -> _EpochState:
        _check_resumable(checkpoint, self.spec, self.config, self.data)
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        if self.ema is not None:
            self.ema.load_state_dict(checkpoint["ema"])
        self.step, self.rows = int(checkpoint["step"]), list(checkpoint["metrics"])
        return _EpochState(**checkpoint["epoch_state"])

    def _result(self, status: Status, wall_s: float) -> TrainResult:
        metrics = pd.DataFrame(self.rows, columns=list(METRIC_COLUMNS))
        last = self.rows[-1] if self.rows and status is Status.FINISHED else None
        train_s = float(metrics["train_s"].sum()) if len(metrics) else 0.0
        seen = float((metrics["images_per_s"] * metrics["train_s"]).sum()) if len(metrics) else 0.0
        return TrainResult(self.eval_model, metrics, status, self.step, None if last is None else last["val_top1"],
                           None if last is None else last["val_loss"], wall_s,
                           seen / train_s if train_s > 0 else math.nan, str(self.device))


def _check_compatible(spec: ArchSpec, data: Dataset) -> None:
    mismatch = [f"{name} {getattr(spec, name)} != data {value}" for name, value in
                (("in_channels", data.in_channels), ("resolution", data.resolution), ("num_classes", data.num_classes))
                if getattr(spec, name) != value]
    if mismatch:
        raise ValueError(f"spec does not fit data set {data.name!r}: {', '.join(mismatch)}; adapt the spec to the data")


def _check_resumable(checkpoint: dict[str, Any], spec: ArchSpec, config: TrainConfig, data: Dataset) -> None:
    if checkpoint["data"] != data.summary():
        raise ValueError(f"checkpoint was written for data {checkpoint['data']}, not {data.summary()}")
    if checkpoint["spec"] != spec_to_dict(spec):
        raise ValueError("checkpoint was written for a different spec; resume with the spec it was trained with")
    saved = checkpoint["config"]
    differ = sorted(k for k, v in config.to_dict().items() if saved.get(k) != v)
    if differ:
        raise ValueError(f"checkpoint was written with a different train config (fields {differ}); resume with the same")

