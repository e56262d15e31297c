"""NetAdapt's start: the best searched model by reward whose floor (every width at NetAdapt's
granularity floor) is predicted at or under FLOOR_HEADROOM x the target."""
from dataclasses import asdict

import pytest

from netadapt.floor import floor_spec
from nas.trial_log import TrialLog, TrialRecord
from netadapt.loop import NetAdaptConfig
from pipeline.netadapt_start import FLOOR_HEADROOM, ranked_specs, start_spec
from search_spaces.encoding import format_spec, parse_spec
from search_spaces.resolve import resolve_spec

CONFIG = NetAdaptConfig(target_ms=1.0, include_stem=True, include_head=True)


def _spec(name, width):
    return format_spec(resolve_spec(name, width=width, resolution=32, num_classes=10, in_channels=1))


SPECS = [_spec("mobilenetv3-small", 1.0), _spec("mobilenetv3-large", 0.5), _spec("mnasnet-a1", 1.0)]
"""Three architectures whose floors differ (widths alone would share one floor)."""


def _log(folder, specs, rewards, statuses):
    """A search's trials.csv (``ok``: the word earlier versions wrote for finished)."""
    log = TrialLog(folder)
    for i, (spec, reward, status) in enumerate(zip(specs, rewards, statuses)):
        log.log.append([{**asdict(TrialRecord(i, f"t{i}", f"p{i}", spec, "", 1.0, reward, 0.01, reward, "finished", 2,
                                              1.0)), "status": status}])


def test_trials_are_ranked_by_reward_with_the_pick_first(tmp_path):
    _log(tmp_path, [SPECS[1], SPECS[2], SPECS[0], SPECS[1]], [0.2, 0.5, 0.4, 0.1], ["finished", "ok", "finished", "finished"])
    assert ranked_specs(str(tmp_path), SPECS[0]) == [SPECS[0], SPECS[2], SPECS[1]]
    assert ranked_specs(str(tmp_path / "nowhere"), SPECS[0]) == [SPECS[0]]
    assert ranked_specs(None, SPECS[0]) == [SPECS[0]]


def test_pruned_and_failed_trials_are_not_starts(tmp_path):
    _log(tmp_path, SPECS, [0.1, 0.9, 0.8], ["finished", "failed", "pruned"])
    assert ranked_specs(str(tmp_path), SPECS[0]) == [SPECS[0]]


def _floors(floor_of):
    """A predictor reading each spec's floor as ``floor_of[spec]`` (the start itself at 10x)."""
    floors = {format_spec(floor_spec(resolve(s), CONFIG.proposal_config())): v for s, v in floor_of.items()}
    return lambda spec: floors.get(format_spec(spec), 10.0)


def resolve(text):
    return parse_spec(text)


def test_the_pick_is_kept_when_its_floor_leaves_headroom():
    spec, shares = start_spec(SPECS[0], SPECS, 2.0, _floors({SPECS[0]: 0.8, SPECS[1]: 0.1}), CONFIG)
    assert spec == SPECS[0] and shares == [pytest.approx(0.4)]


def test_a_pick_whose_floor_is_near_the_target_gives_way_to_the_next_reachable_one():
    floors = {SPECS[0]: 0.91, SPECS[1]: 0.87, SPECS[2]: 0.84}
    spec, shares = start_spec(SPECS[0], SPECS, 1.0, _floors(floors), CONFIG)
    assert spec == SPECS[2] and shares == pytest.approx([0.91, 0.87, 0.84])
    assert shares[-1] <= FLOOR_HEADROOM < shares[1]


def test_without_a_reachable_trial_the_pick_stays_and_netadapt_says_why():
    spec, shares = start_spec(SPECS[0], SPECS, 1.0, _floors({s: 0.95 for s in SPECS}), CONFIG)
    assert spec == SPECS[0] and len(shares) == 3


def test_the_start_weights_are_sliced_again_for_another_start(tmp_path, monkeypatch):
    from types import SimpleNamespace

    import torch

    from pipeline import supernet_stage

    sliced = []

    class FakeEvaluator:
        @classmethod
        def from_run(cls, *args, **kwargs):
            return cls()

        def subnet_weights(self, spec):
            sliced.append(format_spec(spec))
            return {"w": torch.full((1,), float(len(sliced)))}

    monkeypatch.setattr(supernet_stage, "SupernetEvaluator", FakeEvaluator)
    monkeypatch.setattr(supernet_stage, "load_dataset", lambda *a, **k: None)
    monkeypatch.setattr(supernet_stage, "uses_supernet", lambda run: True)
    run = SimpleNamespace(path=tmp_path, config=SimpleNamespace(data="digits", space="s", seed=0, threads=1),
                          result=lambda name: {"run_dir": "supernet"})
    for spec in (SPECS[0], SPECS[0], SPECS[1]):
        supernet_stage.supernet_start(run, spec)
    assert sliced == [SPECS[0], SPECS[1]]  # reused for the same start, sliced again for another
    assert (tmp_path / supernet_stage.START_SPEC).read_text().strip() == SPECS[1]
    (tmp_path / supernet_stage.START_SPEC).unlink()  # an earlier version wrote no spec beside them
    supernet_stage.supernet_start(run, SPECS[1])
    assert sliced == [SPECS[0], SPECS[1], SPECS[1]]
