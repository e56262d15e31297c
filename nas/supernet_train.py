"""Training the weight-sharing supernet (BigNAS sections 3.1-3.2, TuNAS / SPOS uniform sampling).

Each optimizer step trains several sub-networks on the same batch and sums their gradients:

- ``sandwich`` (BigNAS 3.1, "sandwich rule" with "in-place distillation"): the largest
  sub-network on the labels (label smoothing), the smallest and ``subnets_per_step - 2``
  sampled ones on the largest one's soft predictions of that batch. The sampled ones start
  near the two ends and spread over the whole space during the first ``spread`` fraction of
  the steps (each decision keeps its end's choice with a probability falling linearly from 1
  to 0), a soft form of once-for-all's progressive shrinking (section 3.2): a path far from
  both ends is trained only after its neighbours have learned;
- ``uniform`` (single-path uniform sampling, Guo et al. 2020; TuNAS's warm-up): one uniformly
  sampled sub-network per step on the labels.

After every epoch the MBConv expansion channels are sorted by importance (once-for-all 3.2;
momentum buffers follow), and the largest and smallest sub-networks are evaluated on the
validation split after BatchNorm recalibration.

Reproducibility: every random draw comes from ``(seed, purpose, index)``: the weights, each
epoch's shuffle, each step's sampled sub-networks and dropout. With a fixed thread count a run
is bit-identical, and a run resumed from a checkpoint (saved atomically at every epoch end and at
a stop between steps) continues exactly as if it had never stopped.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from nas.supernet import SUPERNET_SPACES, Layout, Supernet, extreme_indices, make_supernet, no_supernet_message
from nas.supernet_eval import CALIBRATION_IMAGES, calibration_images, evaluate_layout, recalibrate
from storage.settings import check_settings, setting
from training.checkpoint import FORMAT_VERSION, save_checkpoint
from training.config import DEVICES, TrainConfig
from training.datasets import DEFAULT_SEARCH_DATA, Dataset
from training.optim import make_optimizer, make_scheduler
from training.runtime import derived_seed, generator, job_context, resolve_device
from training.trainer import TrainingDiverged, steps_per_epoch

RULES = ("sandwich", "uniform")
METRIC_COLUMNS = ("epoch", "step", "lr", "loss_labels", "loss_distill", "val_top1_largest", "val_top1_smallest",
                  "train_s", "eval_s")
"""``loss_labels``: the loss on the labels (sandwich: the largest sub-network's; uniform: the
sampled one's); ``loss_distill``: the mean in-place distillation loss of the others (sandwich)."""
CHANNELS_LAST = torch.channels_last  # measured 1.8x faster CPU training steps than contiguous
SAMPLE_PURPOSE = 7919  # SeedSequence key of the per-step sub-network draws (apart from training.runtime's)


@dataclass(frozen=True)
class SupernetConfig:
    """Settings of one supernet training (the CLI's defaults). ``subnets_per_step``: the
    sandwich's sub-networks per step (largest + smallest + the rest random; BigNAS uses 4);
    ``spread``: the fraction of the steps over which the random ones move from near the ends
    to the whole space (0: uniform from the start).
    The optimizer and schedule are :mod:`training.optim`'s (SGD Nesterov, warmup, cosine)."""

    space: str = "mnasnet-mbconv"
    data: str = DEFAULT_SEARCH_DATA
    epochs: int = setting(8, low=1)
    rule: str = "sandwich"
    subnets_per_step: int = setting(4, low=2)
    spread: float = setting(0.7, kind=float, low=0, high=1)
    batch_size: int = setting(64, low=2)
    lr: float = setting(0.05, kind=float, low=0)
    momentum: float = 0.9
    weight_decay: float = setting(3e-5, kind=float, low=0)
    warmup_epochs: float = setting(1.0, kind=float, low=0)
    label_smoothing: float = setting(0.1, kind=float, low=0)
    sort_channels: bool = True
    calibration_images: int = setting(CALIBRATION_IMAGES, low=2)
    eval_every_epochs: int = setting(1, low=1)
    resolution: int | None = setting(None, low=8, optional=True)
    seed: int = setting(0, low=0)
    threads: int = setting(1, low=1)
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.space not in SUPERNET_SPACES:
            raise ValueError(no_supernet_message(self.space))
        if self.rule not in RULES:
            raise ValueError(f"--rule {self.rule!r} is not known; expected one of {list(RULES)}")
        if self.device not in DEVICES:
            raise ValueError(f"--device {self.device!r} is not allowed; expected one of {list(DEVICES)}")
        check_settings(self, "{flag}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def train_config(self) -> TrainConfig:
        """The optimizer/schedule part as :class:`training.config.TrainConfig`."""
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, optimizer="sgd", lr=self.lr,
                           momentum=self.momentum, weight_decay=self.weight_decay, schedule="cosine",
                           warmup_epochs=self.warmup_epochs, label_smoothing=self.label_smoothing, augment=False,
                           threads=self.threads, device=self.device, seed=self.seed)


@dataclass
class _EpochSums:
    loss_labels: float = 0.0
    loss_distill: float = 0.0
    steps: int = 0
    train_s: float = 0.0


class SupernetTrainer:
    """One supernet training job; see the module docstring. ``checkpoint_path`` (optional) is
    written at every epoch end and when ``should_stop`` stops it between steps."""

    def __init__(self, config: SupernetConfig, data: Dataset, *, checkpoint_path: str | Path | None = None,
                 should_stop: Callable[[], bool] = lambda: False,
                 on_epoch: Callable[[dict[str, float]], None] = lambda row: None) -> None:
        self.config, self.data = config, data
        self.checkpoint_path = None if checkpoint_path is None else Path(checkpoint_path)
        self.should_stop, self.on_epoch = should_stop, on_epoch
        self.steps_per_epoch = steps_per_epoch(len(data.y_train), config.batch_size)
        self.total_steps = config.epochs * self.steps_per_epoch

    def fit(self, resume: dict[str, Any] | None = None) -> bool:
        """Train to the budget; False when stopped early (checkpoint saved). Raises
        :class:`training.trainer.TrainingDiverged` on a NaN/huge loss."""
        device = resolve_device(self.config.device)
        with job_context(self.config.threads, device):
            self._setup(device)
            sums = _EpochSums() if resume is None else self._restore(resume)
            while self.step < self.total_steps:
                if not self._run_epoch(self.step // self.steps_per_epoch, sums):
                    return False
                sums = _EpochSums()
        return True

    def _setup(self, device: torch.device) -> None:
        self.device = device
        torch.manual_seed(derived_seed(self.config.seed, "init"))
        data = self.data
        self.net = make_supernet(self.config.space, resolution=data.resolution, num_classes=data.num_classes,
                                 in_channels=data.in_channels).to(device, memory_format=CHANNELS_LAST).train()
        train = self.config.train_config()
        self.optimizer = make_optimizer(self.net, train)
        self.scheduler = make_scheduler(self.optimizer, total_steps=self.total_steps,
                                        steps_per_epoch=self.steps_per_epoch, config=train)
        self.x_train, self.y_train = data.x_train.to(device, memory_format=CHANNELS_LAST), data.y_train.to(device)
        self.x_val, self.y_val = data.x_val.to(device, memory_format=CHANNELS_LAST), data.y_val.to(device)
        calibration = calibration_images(data, self.config.calibration_images, self.config.seed)
        self.calibration = calibration.to(device, memory_format=CHANNELS_LAST)
        self.extremes = {end: extreme_indices(self.net.space, largest=end == "largest") for end in ("largest", "smallest")}
        self.largest, self.smallest = (self.net.layout(self.extremes[end]) for end in ("largest", "smallest"))
        self.step, self.rows = 0, []

    def _run_epoch(self, epoch: int, sums: _EpochSums) -> bool:
        order = torch.randperm(len(self.y_train), generator=generator(self.config.seed, "shuffle", epoch)).to(self.device)
        bs = self.config.batch_size
        for batch in range(self.step - epoch * self.steps_per_epoch, self.steps_per_epoch):
            tick = time.perf_counter()
            self._train_step(order[batch * bs:(batch + 1) * bs], epoch, sums)
            sums.train_s += time.perf_counter() - tick
            if self.should_stop() and self.step < self.total_steps:
                self._save(sums)
                return False
        self._end_epoch(epoch, sums)
        return True

    def sample_layouts(self, step: int) -> list[Layout]:
        """The sub-networks of optimizer step ``step`` (a pure function of seed and step)."""
        space = self.net.space
        rng = np.random.default_rng(np.random.SeedSequence([self.config.seed, SAMPLE_PURPOSE, step]))
        if self.config.rule == "uniform":
            return [self.net.layout(space.sample_indices(rng))]
        keep = 1.0 - step / (self.config.spread * self.total_steps) if self.config.spread else 0.0
        randoms = []
        for k in range(self.config.subnets_per_step - 2):
            end = self.extremes["largest" if k % 2 == 0 else "smallest"]
            drawn = space.sample_indices(rng)
            kept = rng.random(len(drawn)) < keep
            randoms.append(self.net.layout(space.canonicalize(np.where(kept, end, drawn).tolist())))
        return [self.largest, self.smallest, *randoms]

    def _train_step(self, index: torch.Tensor, epoch: int, sums: _EpochSums) -> None:
        x, y = self.x_train[index].contiguous(memory_format=CHANNELS_LAST), self.y_train[index]
        torch.manual_seed(derived_seed(self.config.seed, "dropout", self.step))
        self.optimizer.zero_grad(set_to_none=True)
        layouts = self.sample_layouts(self.step)
        logits = self.net(x, layouts[0])
        loss = F.cross_entropy(logits, y, label_smoothing=self.config.label_smoothing)
        loss.backward()
        first, others = float(loss.detach()), 0.0
        teacher = logits.detach().softmax(1)  # in-place distillation (BigNAS 3.1)
        for layout in layouts[1:]:
            student = self.net(x, layout).log_softmax(1)
            distill = -(teacher * student).sum(1).mean()
            distill.backward()
            others += float(distill.detach()) / (len(layouts) - 1)
        self._check_finite(epoch, first + others)
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        sums.loss_labels += first
        sums.loss_distill += others
        sums.steps += 1

    def _check_finite(self, epoch: int, loss: float) -> None:
        if not math.isfinite(loss) or loss > 100.0:
            raise TrainingDiverged(epoch=epoch + 1, step=self.step + 1, loss=loss, lr=self.scheduler.get_last_lr()[0],
                                   max_loss=100.0)

    def evaluate(self, layout: Layout) -> float:
        """Validation top-1 of a sub-network after BatchNorm recalibration."""
        recalibrate(self.net, layout, self.calibration)
        return evaluate_layout(self.net, layout, self.x_val, self.y_val)

    def _end_epoch(self, epoch: int, sums: _EpochSums) -> None:
        if self.config.sort_channels:
            self.net.sort_channels(self.optimizer)
        tick = time.perf_counter()
        largest = smallest = math.nan
        if (epoch + 1) % self.config.eval_every_epochs == 0 or epoch + 1 == self.config.epochs:
            largest, smallest = self.evaluate(self.largest), self.evaluate(self.smallest)
        self.net.train()
        n = max(sums.steps, 1)
        row = {"epoch": epoch + 1, "step": self.step, "lr": self.scheduler.get_last_lr()[0],
               "loss_labels": sums.loss_labels / n, "loss_distill": sums.loss_distill / n,
               "val_top1_largest": largest, "val_top1_smallest": smallest, "train_s": sums.train_s,
               "eval_s": time.perf_counter() - tick}
        self.rows.append(row)
        self._save(_EpochSums())
        self.on_epoch(row)

    def checkpoint_state(self, sums: _EpochSums) -> dict[str, Any]:
        """Everything needed to continue: weights, optimizer, scheduler, step, epoch sums, metrics."""
        return {"format_version": FORMAT_VERSION, "spec": {"space": self.config.space, **self.data.summary()},
                "config": self.config.to_dict(), "model": self.net.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "step": self.step, "epoch_state": asdict(sums), "metrics": list(self.rows)}

    def _save(self, sums: _EpochSums) -> None:
        if self.checkpoint_path is not None:
            save_checkpoint(self.checkpoint_state(sums), self.checkpoint_path)

    def _restore(self, checkpoint: dict[str, Any]) -> _EpochSums:
        if checkpoint["config"] != self.config.to_dict():
            differ = sorted(k for k, v in self.config.to_dict().items() if checkpoint["config"].get(k) != v)
            raise ValueError(f"checkpoint was written with other supernet settings (fields {differ}); resume with the same")
        if checkpoint["spec"] != {"space": self.config.space, **self.data.summary()}:
            raise ValueError("checkpoint was written for another data set or shape; resume with the same data")
        self.net.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.step, self.rows = int(checkpoint["step"]), list(checkpoint["metrics"])
        return _EpochSums(**checkpoint["epoch_state"])
