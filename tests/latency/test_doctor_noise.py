"""latency doctor (timing stability figures, verdict, advice) and the load injector."""
from __future__ import annotations

import json
import sys

import pytest

from latency.doctor import DoctorConfig, describe, run_doctor, verdict_and_advice
from latency.noise import LoadInjector, NoiseSettings, main as noise_main
from tests.latency.fakes import FakeMeasurer

TINY = DoctorConfig(windows=3, runs=2, gap_s=0.0, probes=3, pairs=2, resolution=32, in_channels=1, num_classes=10)


def test_doctor_reports_swing_paired_spread_and_a_verdict_through_any_measurer():
    report = run_doctor(TINY, FakeMeasurer())
    assert len(report.window_medians_ms) == 3 and len(report.paired_ratios) == 3
    assert report.swing == pytest.approx(max(report.window_medians_ms) / min(report.window_medians_ms))
    assert report.paired_spread == pytest.approx(1.0)  # a deterministic measurer repeats exactly
    assert report.verdict == "quiet" and "load_1min" in report.system
    assert json.loads(json.dumps(report.to_dict()))["verdict"] == "quiet" and "quiet" in describe(report)


@pytest.mark.parametrize("swing, spread, verdict", [(1.02, 1.01, "quiet"), (1.7, 1.04, "noisy"), (1.7, 1.3, "unsteady")])
def test_verdict_tells_a_quiet_a_noisy_and_an_unsteady_machine(swing, spread, verdict):
    got, advice = verdict_and_advice(swing, spread, {"load_1min": 3.0, "cpus": 2, "governor": "powersave"}, 0.1)
    assert got == verdict
    assert any("close other jobs" in a for a in advice) and any("governor" in a for a in advice)
    assert any("hypervisor" in a for a in advice)


def test_doctor_settings_are_checked():
    with pytest.raises(ValueError, match="doctor.windows = 1"):
        DoctorConfig(windows=1)


def test_injector_runs_a_command_and_returns_its_exit_code():
    code = noise_main(["--cores", "1", "--busy-ms", "1", "2", "--idle-ms", "1", "2", "--",
                       sys.executable, "-c", "import sys; sys.exit(3)"])
    assert code == 3


def test_injector_starts_one_worker_per_core_and_stops_them():
    with LoadInjector(NoiseSettings(cores=2, busy_ms=(1, 2), idle_ms=(1, 2))) as injector:
        assert len(injector._processes) == 2 and all(p.is_alive() for p in injector._processes)
    assert not any(p.is_alive() for p in injector._processes)
    with pytest.raises(ValueError, match="noise.busy_ms"):
        NoiseSettings(busy_ms=(5, 1))
