"""The pipeline's budgets: what each stage is given, per evaluator."""
from __future__ import annotations

import pytest

from pipeline.config import BUDGETS, PipelineConfig


@pytest.mark.parametrize("budget", sorted(BUDGETS))
@pytest.mark.parametrize("evaluator", ["proxy", "supernet"])
def test_the_search_aims_at_the_budgets_factor_for_its_evaluator(budget, evaluator):
    space = "mnasnet-small-mbconv" if evaluator == "supernet" else "mnasnet-small"
    config = PipelineConfig(data="mnist-rot-back-image", target_ms=1.0, budget=budget, evaluator=evaluator, space=space)
    stage = BUDGETS[budget]
    wanted = stage.supernet_target_factor if evaluator == "supernet" else stage.search_target_factor
    assert config.search_target_factor == wanted


def test_the_small_supernet_search_aims_at_the_target_itself():
    small = BUDGETS["small"]
    assert small.supernet_target_factor == 1.0 and small.search_target_factor == 1.25
