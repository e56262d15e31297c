"""Augmentation, config validation and learning-rate schedules."""
from __future__ import annotations

import math

import pytest
import torch

from training.augment import augment_batch
from training.config import TrainConfig, paper_config
from training.optim import WeightEma, lr_factor, make_optimizer, parameter_groups


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("policy", ["affine", "crop_flip"])
def test_augmentation_is_seeded_and_keeps_shape(policy):
    x = torch.randn(8, 3, 16, 16)
    a, b = augment_batch(x, policy, _gen(1)), augment_batch(x, policy, _gen(1))
    assert a.shape == x.shape and torch.equal(a, b)
    assert not torch.equal(a, augment_batch(x, policy, _gen(2)))


def test_crop_flip_moves_whole_pixels():
    x = torch.arange(16.0).reshape(1, 1, 4, 4).repeat(64, 1, 1, 1) + 1
    out = augment_batch(x, "crop_flip", _gen(0))
    values = set(torch.round(out, decimals=4).flatten().tolist())
    assert values <= set(range(0, 17))  # shifted and flipped copies, zero padding, no interpolation


def test_no_augmentation_is_identity():
    x = torch.randn(2, 1, 8, 8)
    assert augment_batch(x, "none", _gen()) is x
    with pytest.raises(ValueError, match="expected 'affine'"):
        augment_batch(x, "mixup", _gen())


@pytest.mark.parametrize("changes, field", [
    ({"epochs": 0}, "epochs"), ({"optimizer": "adam"}, "optimizer"), ({"schedule": "poly"}, "schedule"),
    ({"lr": -1.0}, "lr"), ({"device": "tpu"}, "device"), ({"ema_decay": 1.0}, "ema_decay"),
    ({"label_smoothing": 1.0}, "label_smoothing"), ({"threads": 0}, "threads"), ({"steps": 0}, "steps"),
])
def test_config_rejects_bad_values_naming_them(changes, field):
    with pytest.raises(ValueError, match=f"train.{field} = "):
        TrainConfig(**changes)


def test_config_round_trip_and_unknown_keys():
    config = paper_config(epochs=3)
    assert TrainConfig.from_dict(config.to_dict()) == config and config.optimizer == "rmsprop"
    with pytest.raises(ValueError, match="unknown keys \\['lr_max'\\]"):
        TrainConfig.from_dict({"lr_max": 1.0})


def test_warmup_then_cosine_to_zero():
    config = TrainConfig(warmup_epochs=1.0, schedule="cosine")
    factors = [lr_factor(s, total_steps=100, steps_per_epoch=10, config=config) for s in range(100)]
    assert factors[0] == pytest.approx(1 / 11) and factors[9] == pytest.approx(10 / 11)
    assert factors[10] == pytest.approx(1.0) and factors[-1] < 0.01
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))


def test_step_schedule_decays_every_period():
    config = TrainConfig(warmup_epochs=0.0, schedule="step", step_epochs=2.0, step_gamma=0.5)
    assert [lr_factor(s, total_steps=100, steps_per_epoch=10, config=config) for s in (0, 19, 20, 45)] == \
        [1.0, 1.0, 0.5, 0.25]


def test_weight_decay_skips_bn_and_bias_and_optimizers_build():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4))
    decay, no_decay = parameter_groups(model, 1e-4)
    assert len(decay["params"]) == 1 and len(no_decay["params"]) == 3 and no_decay["weight_decay"] == 0.0
    assert isinstance(make_optimizer(model, TrainConfig(optimizer="rmsprop")), torch.optim.RMSprop)
    assert make_optimizer(model, TrainConfig()).defaults["nesterov"]


def test_weight_ema_moves_towards_weights():
    model = torch.nn.Linear(2, 1)
    ema = WeightEma(model, decay=0.5)
    with torch.no_grad():
        model.weight.add_(2.0)
    before = ema.model.weight.clone()
    ema.update(model)
    assert torch.allclose(ema.model.weight, before + 1.0) and not math.isnan(float(ema.model.weight.sum()))


def test_weight_ema_state_is_the_plain_module_state_and_a_loaded_one_keeps_averaging():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    old_checkpoint = {k: v + 1.0 for k, v in model.state_dict().items()}   # as written before: the EMA module's
    ema = WeightEma(model, decay=0.75)
    ema.load_state_dict(old_checkpoint)
    assert set(ema.state_dict()) == set(model.state_dict())
    with torch.no_grad():
        model[1].running_mean.add_(5.0)
    ema.update(model)   # averaged into the loaded weights, not a copy of the model's
    expected = 0.75 * old_checkpoint["0.weight"] + 0.25 * model[0].weight
    assert torch.allclose(ema.model[0].weight, expected)
    assert torch.equal(ema.model[1].running_mean, model[1].running_mean)   # buffers copied
    assert not any(p.requires_grad for p in ema.model.parameters())
