"""Training settings: one frozen dataclass, defaults next to the code, validated on creation.

The default recipe is tuned for the small 32x32 tasks of this project: 50 epochs, SGD with
Nesterov momentum 0.9, lr 0.1 at batch 128, 1 warmup epoch, cosine to 0, label smoothing 0.1,
weight decay 5e-5 (conv/linear weights only), the data set's augmentation; 50 rather than 30
epochs because MobileNetV3-Small falls short of 98% on mnist5k at 30 (its measured accuracies:
results/training/README.md). The paper's ImageNet
recipe (MobileNetV3 section 6.1: RMSProp, momentum 0.9, lr 0.1 at batch 4096, weight decay
1e-5, EMA 0.9999) is :func:`paper_config`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from storage.settings import check_settings, setting, settings_from_dict

OPTIMIZERS = ("sgd", "rmsprop")
SCHEDULES = ("cosine", "step", "constant")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TrainConfig:
    """How to train one model.

    The budget is ``epochs`` passes over the training split, or ``steps`` optimizer steps
    when given (the last epoch may then be partial). ``threads`` pins torch's intra-op
    threads for the job: results are bit-identical only for a fixed thread count (the kernels
    split their reductions by thread, so the summation order follows it).
    ``bn_recalibration_batches`` training batches re-estimate the BatchNorm statistics before
    every evaluation (0: off); without it a briefly trained model evaluates at chance (the
    builder's BatchNorm momentum is MobileNetV3's 0.01, so running statistics lag for
    thousands of steps; see ``training/inference.py``).
    ``max_loss``: a training loss above it, or NaN/inf, stops the job (TrainingDiverged).
    """

    epochs: int = setting(50, low=1)
    steps: int | None = setting(None, low=1, optional=True)
    batch_size: int = setting(128, low=1)
    optimizer: str = "sgd"
    lr: float = setting(0.1, kind=float, low=0, low_open=True)
    momentum: float = setting(0.9, kind=float, low=0, high=1, high_open=True)
    weight_decay: float = setting(5e-5, kind=float, low=0)
    schedule: str = "cosine"
    warmup_epochs: float = setting(1.0, kind=float, low=0)
    step_epochs: float = setting(3.0, kind=float, low=0, low_open=True)
    step_gamma: float = setting(0.5, kind=float, low=0, high=1, low_open=True)
    label_smoothing: float = setting(0.1, kind=float, low=0, high=1, high_open=True)
    ema_decay: float | None = setting(None, kind=float, low=0, high=1, low_open=True, high_open=True, optional=True)
    augment: bool = True
    grad_clip_norm: float | None = setting(None, kind=float, low=0, low_open=True, optional=True)
    max_loss: float = setting(100.0, kind=float, low=0, low_open=True)
    bn_recalibration_batches: int = setting(10, low=0)
    eval_every_epochs: int = setting(1, low=0)
    threads: int = setting(1, low=1)
    device: str = "auto"
    seed: int = setting(0, low=0)

    def __post_init__(self) -> None:
        check_settings(self, "train.{name}")
        for name, allowed in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES), ("device", DEVICES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"train.{name} = {getattr(self, name)!r} is not allowed; expected one of {allowed}")
        if not isinstance(self.augment, bool):
            raise ValueError(f"train.augment = {self.augment!r} is not allowed; expected True or False")

    def replace(self, **changes: Any) -> "TrainConfig":
        """A validated copy with ``changes``."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """Inverse of :meth:`to_dict`; unknown keys are an error (a misspelt setting never passes silently)."""
        return settings_from_dict(cls, data, "train config")


def paper_config(**changes: Any) -> TrainConfig:
    """MobileNetV3 section 6.1 adapted to one worker: RMSProp (momentum 0.9), lr scaled
    linearly from 0.1 at batch 4096 to batch 128, step decay 0.97 every 2.4 epochs (the
    reference implementations' reading of the paper's decay), weight decay 1e-5, EMA 0.9999."""
    base = TrainConfig(optimizer="rmsprop", lr=0.1 * 128 / 4096, momentum=0.9, weight_decay=1e-5, schedule="step",
                       step_epochs=2.4, step_gamma=0.97, warmup_epochs=3.0, ema_decay=0.9999, epochs=350)
    return base.replace(**changes)
