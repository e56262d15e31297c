"""Evaluation API of search and NetAdapt: proxy training and fine-tuning."""
from __future__ import annotations

import math

import pytest
import torch

from training.evaluate import PROXY_CONFIG, Budget, finetune, proxy_evaluate


def test_proxy_evaluate_on_validation_is_reproducible(spec16, digits16):
    budget = Budget(steps=15, train_subset=500)
    a = proxy_evaluate(spec16, digits16, budget, seed=0, threads=1, device="cpu")
    b = proxy_evaluate(spec16, digits16, budget, seed=0, threads=1, device="cpu")
    assert a.status == "finished" and a.steps == 15 and 0.0 <= a.top1 <= 1.0 and a.wall_s > 0
    assert (a.top1, a.loss) == (b.top1, b.loss)


def test_proxy_reports_divergence_instead_of_raising(spec16, digits16):
    result = proxy_evaluate(spec16, digits16, Budget(steps=10), device="cpu",
                            config=PROXY_CONFIG.replace(lr=1e6, warmup_epochs=0.0))
    assert result.status == "diverged" and math.isnan(result.top1) and "diverged" in result.message


def test_finetune_starts_from_given_weights_and_returns_new_ones(spec16, digits16):
    budget = Budget(epochs=2)
    base, weights = finetune(spec16, _trained_weights(spec16, digits16), digits16, budget, device="cpu")
    assert base.status == "finished" and base.top1 > 0.3
    assert all(v.device.type == "cpu" for v in weights.values())
    again, _ = finetune(spec16, weights, digits16, Budget(steps=1), device="cpu")
    assert again.top1 >= base.top1 - 0.1  # starts where the first fine-tune ended


def _trained_weights(spec, data) -> dict[str, torch.Tensor]:
    result, weights = finetune(spec, _fresh_weights(spec), data, Budget(epochs=3), device="cpu",
                               config=PROXY_CONFIG.replace(lr=0.2, batch_size=32))
    assert weights is not None
    return weights


def _fresh_weights(spec) -> dict[str, torch.Tensor]:
    from search_spaces.builder import build_model

    torch.manual_seed(0)
    return build_model(spec).state_dict()


@pytest.mark.parametrize("kwargs", [{}, {"epochs": 1, "steps": 1}, {"epochs": 0}, {"steps": 1, "train_subset": 0}])
def test_budget_validation(kwargs):
    with pytest.raises(ValueError, match="budget"):
        Budget(**kwargs)


def test_adapt_spec_takes_shape_from_data(digits16):
    from search_spaces.reference import reference_spec
    from training.evaluate import adapt_spec

    spec = adapt_spec(reference_spec("mobilenetv3-small"), digits16)
    assert (spec.in_channels, spec.resolution, spec.num_classes) == (1, 16, 10)


def test_proxy_reports_binomial_stderr_on_the_validation_split(spec16, digits16):
    result = proxy_evaluate(spec16, digits16, Budget(steps=5), device="cpu")
    n = len(digits16.y_val)
    assert result.n_val == n
    assert result.top1_stderr == pytest.approx(math.sqrt(result.top1 * (1 - result.top1) / n))


def test_binomial_stderr_values():
    from training.evaluate import binomial_stderr

    assert binomial_stderr(0.8, 1600) == pytest.approx(0.01)
    assert binomial_stderr(1.0, 10) == 0.0
    assert math.isnan(binomial_stderr(math.nan, 10))
    with pytest.raises(ValueError, match="validation images"):
        binomial_stderr(0.5, 0)
