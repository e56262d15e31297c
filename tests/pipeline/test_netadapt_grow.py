"""A start measured under its budget is grown before NetAdapt: the least width multiplier estimated
at GROW_AIM x the budget (the start's measured ratio times the table's ratio of predictions), every
stage a block deeper first where no width reaches it, measured, grown again from the searched model
while still under the band, within the supernet's widths."""
import json
from types import SimpleNamespace

import pytest

from pipeline import netadapt_rounds as stage
from pipeline.config import PipelineConfig
from pipeline.netadapt_grow import (GROW_AIM, GROW_BELOW, MAX_GROWTHS, depth_ladder, grow, plan_widening,
                                   short_of_band)
from search_spaces.registry import make_space
from search_spaces.encoding import format_spec, parse_spec
from search_spaces.resolve import resolve_spec
from search_spaces.rewrite import widened
from tests.pipeline.test_netadapt_rounds import FakePipeline, _searched

SMALL = resolve_spec("mobilenetv3-small", resolution=32, num_classes=10, in_channels=1)


def same_depth(spec):
    return []


def no_ceilings(template):
    return None


def channel_ms(spec) -> float:
    """A toy table: a model's time is its widths' sum (widening always costs)."""
    return float(sum(b.out_channels + (b.exp_channels or 0) for b in spec.blocks))


def measured_as(factor: float, start_ratio: float):
    """Measurements that read ``factor`` x what the anchored table estimates."""
    def measure(spec):
        ratio = factor * start_ratio * channel_ms(spec) / channel_ms(SMALL)
        return {"ratio": ratio, "ratio_low": ratio * 0.99, "ratio_high": ratio * 1.01}
    return measure


def test_the_least_multiplier_estimated_at_the_aim_is_chosen_and_measured_once():
    growths = grow(SMALL, {"ratio": 0.8}, channel_ms, measured_as(1.0, 0.8), same_depth, no_ceilings)
    assert len(growths) == 1 and growths[0].estimated_ratio >= GROW_AIM and growths[0].ratio >= GROW_BELOW
    multiplier = growths[0].multiplier
    narrower = widened(SMALL, round(multiplier - 0.05, 2))
    assert 0.8 * channel_ms(narrower) / channel_ms(SMALL) < GROW_AIM  # the one before fell short
    assert parse_spec(growths[0].spec) == widened(SMALL, multiplier)


def test_a_widening_that_measures_short_is_widened_again_anchored_on_its_measurement():
    growths = grow(SMALL, {"ratio": 0.8}, channel_ms, measured_as(0.85, 0.8), same_depth, no_ceilings)
    assert 2 <= len(growths) <= MAX_GROWTHS
    assert [g.multiplier for g in growths] == sorted({g.multiplier for g in growths})  # each wider
    second = growths[1]  # estimated from the first's measurement, not from the start's
    first = parse_spec(growths[0].spec)
    assert second.estimated_ratio == pytest.approx(growths[0].ratio * second.predicted_ms / channel_ms(first))


def test_a_start_at_the_ceilings_or_within_the_band_is_not_widened():
    ceilings = [(b.out_channels, b.exp_channels or 0) for b in SMALL.blocks]
    assert grow(SMALL, {"ratio": 0.8}, channel_ms, measured_as(1.0, 0.8), same_depth, lambda t: ceilings) == []
    assert plan_widening(SMALL, SMALL, 0.8, channel_ms, ceilings) is None
    assert grow(SMALL, {"ratio": GROW_BELOW}, channel_ms, measured_as(1.0, GROW_BELOW), same_depth, no_ceilings) == []


def test_where_no_width_reaches_the_band_the_start_grows_a_block_deeper_where_a_block_costs_least():
    space = make_space("mnasnet-v3small-mbconv", resolution=32, num_classes=10, in_channels=1)
    searched = space.decode(tuple(0 for _ in space.cardinalities))  # the shallowest, narrowest of the space

    def deeper(spec):
        return [space.deepened(spec, 1, stages=(stage,)) for stage in range(len(space.stages))]

    def blocks_ms(spec):  # depth costs most, as at 32x32 on a CPU; later stages' blocks cost more
        return sum(10.0 + i for i, _ in enumerate(spec.blocks)) + channel_ms(spec) / 1000.0

    def measure(spec):
        return {"ratio": 0.6 * blocks_ms(spec) / blocks_ms(searched)}

    def at_the_space(template):  # widths capped at the widest model of the space at the same depth
        return [(b.out_channels, b.exp_channels) for b in widened(template, 3.0).blocks]

    growths = grow(searched, {"ratio": 0.6}, blocks_ms, measure, deeper, at_the_space)
    assert growths and growths[0].deeper_by >= 1 and growths[-1].ratio >= GROW_BELOW
    template = parse_spec(growths[-1].template)
    assert space.encode(template)  # a model of the space: a supernet holds it
    assert len(template.blocks) == len(searched.blocks) + growths[-1].deeper_by
    ladder = depth_ladder(searched, blocks_ms, deeper)
    assert [len(s.blocks) for s in ladder] == list(range(len(searched.blocks), len(searched.blocks) + len(ladder)))
    for shallower, deeper_one in zip(ladder, ladder[1:]):  # each step the cheapest block of the stages
        assert blocks_ms(deeper_one) == min(blocks_ms(o) for o in deeper(shallower) if o != shallower)
    # one block fewer could not reach the band at its widest
    fewer = widened(ladder[growths[0].deeper_by - 1], 3.0, at_the_space(ladder[growths[0].deeper_by - 1]))
    assert 0.6 * blocks_ms(fewer) / blocks_ms(searched) < GROW_BELOW


def test_widths_stay_within_the_ceilings():
    ceilings = [(b.out_channels + 8, 2 * (b.exp_channels or 0)) for b in SMALL.blocks]
    for growth in grow(SMALL, {"ratio": 0.5}, channel_ms, measured_as(1.0, 0.5), same_depth, lambda t: ceilings):
        for block, (out, exp) in zip(parse_spec(growth.spec).blocks, ceilings):
            assert block.out_channels <= out and (block.exp_channels or 0) <= max(exp, 16)


def test_the_stage_starts_netadapt_from_the_widened_model_and_records_what_it_grew(monkeypatch, tmp_path):
    specs = [format_spec(SMALL), format_spec(resolve_spec("mobilenetv3-large", resolution=32, num_classes=10,
                                                          in_channels=1))]
    p = FakePipeline({"table": {"target_ms": 1.0}}, path=tmp_path,
                     config=PipelineConfig(data="digits", target_ms=1.0, evaluator="proxy"))
    p.results["search"] = _searched(tmp_path / "search", specs, [0.50, 0.45], [1.0, 1.1])
    monkeypatch.setattr(stage, "_predictor", lambda run: SimpleNamespace(predict_ms=channel_ms))
    monkeypatch.setattr(stage, "measured_checks", lambda run, models, seconds: [
        {"final_ms": r, "budget_ms": 1.0, "ratio": r, "ratio_low": r, "ratio_high": r, "pairs": 24}
        for r in (0.8, 1.6)[:len(models)]])
    grown_checks = []

    def check(run, spec, min_seconds=0.0):
        ratio = 0.8 * channel_ms(spec) / channel_ms(SMALL)
        grown_checks.append(format_spec(spec))
        return {"final_ms": ratio, "budget_ms": 1.0, "ratio": ratio, "ratio_low": ratio, "ratio_high": ratio}

    monkeypatch.setattr(stage, "measured_check", check)
    started = []

    def run_round(run, index, spec, weights, target_ms, name):
        started.append((spec, weights))
        return {"final_spec": spec, "predicted_latency_ms": channel_ms(parse_spec(spec)), "run_dir": str(tmp_path)}

    monkeypatch.setattr(stage, "_run_round", run_round)
    monkeypatch.setattr(stage, "_reachable", lambda run, spec, target_ms: True)
    monkeypatch.setattr(stage, "recorded_check", lambda run, index, final: {"final_ms": 0.97, "budget_ms": 1.0,
                                                                           "ratio": 0.97})
    result = stage.stage_netadapt(p)
    choice = json.loads((tmp_path / "netadapt" / stage.CHOICE_FILE).read_text())
    assert choice["searched_spec"] == specs[0] and len(choice["growth"]) == 1
    assert choice["growth"][0]["template"] == specs[0] and choice["growth"][0]["deeper_by"] == 0  # not of the space
    assert started[0] == (choice["spec"], None) and choice["spec"] == grown_checks[0] != specs[0]
    start = json.loads((tmp_path / "netadapt" / stage.START_FILE).read_text())
    assert start["ratio"] == choice["growth"][0]["ratio"] >= GROW_BELOW  # the first round anchors on the widened model
    assert result["grown_from"] == specs[0] and stage.grown_from(p, choice["spec"]) == SMALL
    assert any("grown by 0 block(s) and x" in line for line in p.said)


def test_a_start_whose_interval_reaches_under_the_band_is_grown_and_one_clear_of_it_is_not():
    short = {"ratio": 0.96, "ratio_low": 0.94, "ratio_high": 0.98}
    clear = {"ratio": 0.96, "ratio_low": 0.955, "ratio_high": 0.965}
    assert short_of_band(short) and not short_of_band(clear) and short_of_band({"ratio": 0.94})
    assert grow(SMALL, short, channel_ms, measured_as(1.0, 0.96), same_depth, no_ceilings)
    assert grow(SMALL, clear, channel_ms, measured_as(1.0, 0.96), same_depth, no_ceilings) == []


def test_growth_is_a_setting_off_for_runs_recorded_before_it_and_on_the_command_line():
    from mobilenas.cli import build_parser
    from mobilenas.cli_run import config_from_args

    recorded = PipelineConfig(data="digits", target_ms=1.0).to_dict()
    assert recorded["grow_start"] is True
    del recorded["grow_start"]
    assert PipelineConfig.from_dict(recorded).grow_start is False
    parse = build_parser().parse_args
    assert config_from_args(parse(["run", "--data", "digits", "--target-ms", "1.0"])).grow_start is True
    assert config_from_args(parse(["run", "--data", "digits", "--target-ms", "1.0", "--no-grow"])).grow_start is False


def test_with_growth_off_a_start_under_the_budget_is_kept(tmp_path):
    p = FakePipeline({"table": {"target_ms": 1.0}}, path=tmp_path,
                     config=PipelineConfig(data="digits", target_ms=1.0, evaluator="proxy", grow_start=False))
    assert stage._grown(p, SMALL, {"ratio": 0.7, "ratio_low": 0.69, "ratio_high": 0.71}) == []
