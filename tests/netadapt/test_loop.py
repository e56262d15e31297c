"""The NetAdapt loop in-process: reaches the target, commits every iteration, resumes exactly."""
from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from netadapt.evaluation import FinetuneJob, SequentialEvaluator
from netadapt.floor import floor_spec
from netadapt.loop import NetAdapt, NetAdaptConfig, UnreachableTarget
from netadapt.proposals import nearest_asks
from netadapt.proposals import propose_reductions
from netadapt.selection import Scored, choose, score
from netadapt.state import LoopStore
from search_spaces.builder import build_model
from tests.netadapt.loop_helpers import digits8, loop_spec, toy_predict_ms  # noqa: F401 (fixture)
from training.evaluate import Budget


def _weights(spec, seed=0):
    torch.manual_seed(seed)
    return {k: v.clone() for k, v in build_model(spec).state_dict().items()}


def _loop(folder, data, *, target_fraction=0.8, stop_after=None, select="ratio", long_epochs=0, seed=0,
          predict=toy_predict_ms):
    spec = loop_spec()
    config = NetAdaptConfig(target_ms=target_fraction * predict(spec), delta_fraction=0.05, short_steps=2,
                            long_epochs=long_epochs, select=select, seed=seed)
    events = []
    stop = (lambda: sum(e.phase == "iteration" for e in events) >= stop_after) if stop_after else None
    loop = NetAdapt(config, data, predict, SequentialEvaluator(data, FinetuneJob(Budget(steps=2))),
                    LoopStore(folder), measure_ms=lambda s, w: 2 * toy_predict_ms(s), on_event=events.append,
                    should_stop=stop)
    return loop, spec, events


def _start_and_run(folder, data, **kwargs):
    loop, spec, events = _loop(folder, data, **kwargs)
    loop.start(spec, _weights(spec), top1=0.1, top1_stderr=0.02)
    return loop.run(), events


def test_loop_reaches_target_one_chosen_row_per_iteration(tmp_path, digits8):
    result, events = _start_and_run(tmp_path, digits8)
    history = LoopStore(tmp_path).history.read()
    target = 0.8 * toy_predict_ms(loop_spec())
    assert result.state.phase == "done" and result.state.predicted_ms <= target < history["predicted_ms"].iloc[0]
    chosen = history[history["chosen"]]
    assert list(chosen["iteration"]) == list(range(result.state.iteration + 1))
    assert chosen["predicted_ms"].is_monotonic_decreasing
    assert math.isclose(chosen["predicted_ms"].iloc[-1], toy_predict_ms(result.spec))
    assert (chosen["measured_ms"] == 2 * chosen["predicted_ms"]).all()
    assert history.loc[~history["chosen"], "measured_ms"].isna().all()
    assert [e.phase for e in events][-1] == "done" and any(e.best_label for e in events)


def test_stop_then_resume_equals_uninterrupted_run(tmp_path, digits8):
    whole, _ = _start_and_run(tmp_path / "whole", digits8)
    first, _ = _start_and_run(tmp_path / "split", digits8, stop_after=1)
    assert first.stopped and first.state.iteration == 1
    resumed, _, _ = _loop(tmp_path / "split", digits8)
    second = resumed.run()
    assert second.spec == whole.spec and second.state.iteration == whole.state.iteration
    a, b = (LoopStore(tmp_path / n).history.read() for n in ("whole", "split"))
    assert a.equals(b)
    assert all(torch.equal(whole.weights[k], second.weights[k]) for k in whole.weights)


def test_commit_without_state_is_not_seen_and_history_rows_are_restored(tmp_path, digits8):
    loop, spec, _ = _loop(tmp_path, digits8)
    state = loop.start(spec, _weights(spec), top1=0.1, top1_stderr=0.02)
    store = LoopStore(tmp_path)
    _, new_spec, new_weights = loop.iterate(state, spec, _weights(spec))
    # a kill after the next iteration's model files but before its state.json: rewind state
    store.update(state)
    (tmp_path / "history.csv").write_text((tmp_path / "history.csv").read_text().splitlines(True)[0] + "0,sta")
    loaded, loaded_spec, _ = store.load()
    assert loaded.iteration == 0 and loaded_spec == spec
    frame = store.history.read()
    assert list(frame["label"]) == ["start"], "the torn row is cut and the committed row re-appended"


def test_target_below_floor_is_unreachable(tmp_path, digits8):
    spec = loop_spec()
    floor_ms = toy_predict_ms(floor_spec(spec, NetAdaptConfig(target_ms=1.0).proposal_config()))
    loop, _, _ = _loop(tmp_path, digits8, target_fraction=0.99 * floor_ms / toy_predict_ms(spec))
    loop.config = NetAdaptConfig(target_ms=0.99 * floor_ms, delta_fraction=0.5, short_steps=1, long_epochs=0)
    loop.start(spec, _weights(spec), top1=0.1, top1_stderr=0.02)
    with pytest.raises(UnreachableTarget, match="granularity floor"):
        loop.run()


def test_near_the_floor_only_proposals_predicted_faster_are_tried(tmp_path, digits8):
    def predict(spec):  # width 8 runs slower than 16 here, as below a runtime's vector block
        return toy_predict_ms(spec) + 0.01 * sum(b.out_channels == 8 or b.exp_channels == 8 for b in spec.blocks)

    loop, spec, _ = _loop(tmp_path, digits8, predict=predict)
    loop.config = NetAdaptConfig(target_ms=0.01, delta_fraction=0.9, short_steps=1)  # no proposal meets the cut
    state = loop.start(spec, _weights(spec), top1=0.1, top1_stderr=0.02)
    every = propose_reductions(spec, predict, 0.9 * state.l0_ms, loop.config.proposal_config())
    assert not any(p.meets_cut for p in every) and any(p.cut_ms <= 0 for p in every)
    pool = loop.proposals(state, spec)
    assert pool and all(p.cut_ms > 0 for p in pool)


def test_ratio_selection_prefers_accuracy_per_millisecond():
    candidates = [Scored(0, 0.90, 0.80), Scored(1, 0.70, 0.78), Scored(2, 0.95, float("nan"))]
    best, scores = choose(candidates, ref_top1=0.82, ref_ms=1.0, select="ratio")
    assert best == 1 and scores[0] == pytest.approx(-0.2) and scores[1] == pytest.approx(-0.1333, abs=1e-4)
    assert math.isnan(scores[2])
    assert choose(candidates, ref_top1=0.82, ref_ms=1.0, select="accuracy")[0] == 0
    assert score(0.5, 1.0, ref_top1=0.4, ref_ms=1.0, select="ratio") > 1e6  # no saving: tiny denominator
    slower = [Scored(0, 1.01, 0.99), Scored(1, 0.95, 0.70)]
    assert choose(slower, ref_top1=0.8, ref_ms=1.0, select="accuracy")[0] == 1, "never a slower proposal"


def test_accuracy_changes_within_the_tolerance_count_as_none_and_the_larger_cut_wins():
    # one point of noise: +0.5 point over 0.02 ms would win the plain ratio; -0.8 point over 0.30 ms is as good
    candidates = [Scored(0, 0.98, 0.825), Scored(1, 0.70, 0.812), Scored(2, 0.85, 0.79)]
    assert choose(candidates, ref_top1=0.82, ref_ms=1.0, select="ratio")[0] == 0
    best, scores = choose(candidates, ref_top1=0.82, ref_ms=1.0, select="ratio", tolerance=0.01)
    assert best == 1 and scores[:2] == [0.0, 0.0] and scores[2] == pytest.approx(-0.02 / 0.15)
    # beyond the tolerance a change counts by what exceeds it
    assert score(0.85, 0.9, ref_top1=0.82, ref_ms=1.0, select="ratio", tolerance=0.01) == pytest.approx(0.2)
    assert score(0.85, 0.9, ref_top1=0.82, ref_ms=1.0, select="accuracy", tolerance=0.01) == 0.85


def test_the_loop_tolerates_its_setting_times_the_current_models_standard_error(tmp_path, digits8):
    loop, spec, _ = _loop(tmp_path, digits8)
    state = loop.start(spec, _weights(spec), top1=0.1, top1_stderr=0.02)
    assert loop.config.accuracy_tolerance == 1.0 and loop._tolerance(state) == pytest.approx(0.02)
    loop.config = replace(loop.config, accuracy_tolerance=2.5)
    assert loop._tolerance(state) == pytest.approx(0.05)
    assert loop._tolerance(replace(state, top1_stderr=float("nan"))) == 0.0
    recorded = {k: v for k, v in NetAdaptConfig(target_ms=1.0).to_dict().items() if k != "accuracy_tolerance"}
    assert NetAdaptConfig.from_dict(recorded).accuracy_tolerance == 0.0  # a run recorded before the setting


def test_last_step_credits_no_cut_beyond_the_ask():
    # asked for 0.05 ms: proposal 1 cuts 0.30 ms for 2 points, proposal 0 just the ask for 1.5
    candidates = [Scored(0, 0.95, 0.805), Scored(1, 0.70, 0.80)]
    assert choose(candidates, ref_top1=0.82, ref_ms=1.0, select="ratio")[0] == 1, "uncapped, the overshoot wins"
    best, scores = choose(candidates, ref_top1=0.82, ref_ms=1.0, select="ratio", credit_ms=0.05)
    assert best == 0 and scores[1] == pytest.approx(-0.4)
    tied = [Scored(0, 0.70, 0.80), Scored(1, 0.90, 0.80)]
    assert choose(tied, ref_top1=0.82, ref_ms=1.0, select="ratio", credit_ms=0.05)[0] == 1, "a tie: the smaller cut"


def test_loop_credits_only_the_last_step(tmp_path, digits8):
    loop, spec, _ = _loop(tmp_path, digits8)
    state = loop.start(spec, _weights(spec), top1=0.1, top1_stderr=0.02)
    delta = loop.config.delta_fraction * state.l0_ms
    loop.config = replace(loop.config, target_ms=state.predicted_ms - 3 * delta)
    assert loop.ask_ms(state) == pytest.approx(delta) and loop._credit_ms(state) is None
    loop.config = replace(loop.config, target_ms=state.predicted_ms - 0.5 * delta)
    assert loop.ask_ms(state) == pytest.approx(0.5 * delta) and loop._credit_ms(state) == pytest.approx(0.5 * delta)


def test_a_capped_pool_keeps_the_proposals_nearest_a_cut_asked_in_their_order():
    class Cut:
        def __init__(self, cut_ms):
            self.cut_ms = cut_ms

    pool = [Cut(c) for c in (0.50, 0.11, 0.30, 0.09, 0.21, 0.10)]
    kept = nearest_asks(pool, [0.1, 0.2], 3)
    assert [p.cut_ms for p in kept] == [0.11, 0.21, 0.10]  # 0.10 (0.00), 0.11 and 0.21 (0.01); order kept
    assert nearest_asks(pool, [0.1], None) is pool and nearest_asks(pool, [0.1], 6) is pool


def test_the_loop_fine_tunes_at_most_max_proposals_of_a_last_step(tmp_path, digits8):
    loop, spec, _ = _loop(tmp_path, digits8)
    state = loop.start(spec, _weights(spec), top1=0.1, top1_stderr=0.02)
    delta = loop.config.delta_fraction * state.l0_ms
    loop.config = replace(loop.config, target_ms=state.predicted_ms - 0.3 * delta)  # a small cut: many offers
    every = loop.proposals(state, spec)
    assert len(every) > 2
    loop.config = replace(loop.config, max_proposals=2)
    capped = loop.proposals(state, spec)
    ask = loop.ask_ms(state)
    assert capped == nearest_asks(every, [ask], 2) and len(capped) == 2
    assert max(abs(p.cut_ms - ask) for p in capped) <= min(abs(p.cut_ms - ask) for p in every if p not in capped)


@pytest.mark.parametrize("field, value", [("target_ms", 0.0), ("short_steps", 0), ("select", "fastest"),
                                          ("delta_fraction", 1.5), ("granularity", 0), ("long_epochs", -1),
                                          ("max_proposals", 0), ("accuracy_tolerance", -1.0)])
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        NetAdaptConfig(**{"target_ms": 1.0, field: value})
