"""Optimizers, learning-rate schedules and the weight EMA (MobileNetV3 section 6.1)."""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from training.config import TrainConfig

RMSPROP_EPS = 0.0316
"""torch adds eps outside the square root, TensorFlow inside: sqrt(1e-3) ~ 0.0316 matches the
TF RMSProp eps 1e-3 the reference ImageNet recipes use (as timm's RMSpropTF notes)."""


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on conv and linear weights only, not on BN affine parameters or biases."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum, or RMSProp with momentum (the paper's optimizer)."""
    groups = parameter_groups(model, config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.momentum > 0)
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(groups, lr=config.lr, alpha=0.9, eps=RMSPROP_EPS, momentum=config.momentum)
    raise ValueError(f"optimizer = {config.optimizer!r} is not allowed; expected 'sgd' or 'rmsprop'")


def lr_factor(step: int, *, total_steps: int, steps_per_epoch: int, config: TrainConfig) -> float:
    """Multiplier of the base lr at optimizer step ``step``: linear warmup, then cosine to 0,
    step decay (``step_gamma`` every ``step_epochs``) or constant."""
    warmup = min(int(round(config.warmup_epochs * steps_per_epoch)), max(total_steps - 1, 0))
    if step < warmup:
        return (step + 1) / (warmup + 1)
    if config.schedule == "cosine":
        progress = (step - warmup) / max(total_steps - warmup, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    if config.schedule == "step":
        period = max(int(round(config.step_epochs * steps_per_epoch)), 1)
        return config.step_gamma ** ((step - warmup) // period)
    return 1.0


def make_scheduler(optimizer: torch.optim.Optimizer, *, total_steps: int, steps_per_epoch: int,
                   config: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step :class:`LambdaLR` over :func:`lr_factor` (its state_dict is checkpointable)."""
    def factor(step: int) -> float:
        return lr_factor(step, total_steps=total_steps, steps_per_epoch=steps_per_epoch, config=config)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class WeightEma:
    """Exponential moving average of the weights (section 6.1: decay 0.9999) on torch's
    ``AveragedModel`` with its EMA update; buffers (BN statistics) are copied, not averaged,
    and recalibrated before evaluation anyway. ``state_dict`` is the averaged model's own
    (checkpoints written before this class used ``AveragedModel`` load unchanged)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=False)
        self._count_the_copy_as_averaged()
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    def _count_the_copy_as_averaged(self) -> None:
        # AveragedModel's first update copies the model; ours averages into the starting copy
        # (a loaded state) from the first update on.
        self.averaged.n_averaged.fill_(1)

    @property
    def model(self) -> nn.Module:
        return self.averaged.module

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.averaged.update_parameters(model)
        for ema_buffer, buffer in zip(self.model.buffers(), model.buffers()):
            ema_buffer.copy_(buffer)

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state)
        self._count_the_copy_as_averaged()
