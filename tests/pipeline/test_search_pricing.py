"""The pipeline's search prices candidates by the table, or with ``--price-by measured`` by
measurement paired with the budget's own model (pipeline.stages.search_pricing)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from nas.search import SearchConfig
from pipeline.config import PipelineConfig
from pipeline.stages import search_pricing
from search_spaces.encoding import parse_spec


@dataclass
class FakeRun:
    config: PipelineConfig
    path: Path = Path(".")

    def result(self, name: str) -> dict[str, Any]:
        return {"table": {"target_ms": 0.3}}[name]


def test_a_target_like_run_measures_candidates_against_the_budgets_model():
    run = FakeRun(PipelineConfig(data="digits", target_like="mobilenetv3-small", price_by="measured"))
    pricing = search_pricing(run)
    like = parse_spec(pricing["measure_like"])
    assert pricing["price_by"] == "measured" and pricing["measure_like_ms"] == pytest.approx(0.3)
    assert (like.resolution, like.in_channels, like.num_classes) == (32, 1, 10)  # the data's shape (digits: 8x8, trained at 32x32)
    SearchConfig(target_ms=0.33, **pricing)  # a valid search setting


def test_a_target_ms_run_measures_against_the_tables_reference_and_table_pricing_is_kept():
    measured = FakeRun(PipelineConfig(data="digits", target_ms=0.3, price_by="measured"))
    assert search_pricing(measured) == {"price_by": "measured"}
    table = FakeRun(PipelineConfig(data="digits", target_like="mobilenetv3-small"))
    assert search_pricing(table) == {"price_by": "table"}  # the default


def test_runs_recorded_before_the_setting_keep_pricing_by_the_table():
    recorded = PipelineConfig(data="digits", target_ms=1.0, price_by="measured").to_dict()
    del recorded["price_by"]
    assert PipelineConfig.from_dict(recorded).price_by == "table"
    with pytest.raises(ValueError, match="--price-by 'guessed'"):
        PipelineConfig(data="digits", target_ms=1.0, price_by="guessed")


@pytest.mark.parametrize("flag, expected", [([], "table"), (["--price-by", "measured"], "measured")])
def test_run_command_passes_the_pricing(flag, expected):
    from mobilenas.cli import build_parser
    from mobilenas.cli_run import config_from_args

    args = build_parser().parse_args(["run", "--data", "digits", "--target-ms", "1.0", *flag])
    assert config_from_args(args).price_by == expected
