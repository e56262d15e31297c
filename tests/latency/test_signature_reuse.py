"""Openings of a table by one process reuse a recent drift probe (latency.drift.SIGNATURE_REUSE_S)."""
from __future__ import annotations

import pytest

import latency.drift as drift
from latency.drift import open_table
from tests.latency.fakes import copy_table


@pytest.fixture
def counted(monkeypatch):
    """``measure_signature`` counted, measuring as it does."""
    calls = []
    real = drift.measure_signature

    def measure(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(drift, "measure_signature", measure)
    return calls


def test_a_second_opening_within_the_window_reuses_the_probe_and_says_how_old(probed_table, tmp_path, counted):
    folder = copy_table(probed_table, tmp_path / "t")
    _, first = open_table(folder, tolerance=9.0)
    _, second = open_table(folder, tolerance=9.0)
    assert len(counted) == 1 and first.probed_s_ago == 0 and second.probed_s_ago > 0
    assert second.signature == first.signature and second.measured_ms == first.measured_ms
    assert "probed" in second.describe() and "probed" not in first.describe()


def test_reuse_zero_or_an_expired_probe_measures_again(probed_table, tmp_path, counted):
    folder = copy_table(probed_table, tmp_path / "t")
    open_table(folder, tolerance=9.0)
    assert open_table(folder, tolerance=9.0, reuse_s=0)[1].probed_s_ago == 0 and len(counted) == 2
    for key, (taken, ratios, reference_ms) in list(drift._recent_signatures.items()):  # age the kept probe
        drift._recent_signatures[key] = (taken - drift.SIGNATURE_REUSE_S - 1, ratios, reference_ms)
    assert open_table(folder, tolerance=9.0)[1].probed_s_ago == 0 and len(counted) == 3


def test_a_kept_probe_beyond_the_tolerance_is_measured_again_before_refusing(probed_table, tmp_path, counted):
    folder = copy_table(probed_table, tmp_path / "t",
                        lambda m: m["signature"]["ratios"].update({k: 3 * v for k, v in m["signature"]["ratios"].items()}))
    with pytest.raises(drift.DriftError):
        open_table(folder, tolerance=0.25)
    measured = len(counted)
    with pytest.raises(drift.DriftError):
        open_table(folder, tolerance=0.25)
    assert len(counted) == measured + drift.SIGNATURE_ATTEMPTS - 1  # the kept probe, then fresh attempts
