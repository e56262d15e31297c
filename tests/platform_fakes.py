"""A saved platform whose measurer is faked (tests.fast_tables.FakeTorchMeasurer: torch-cpu
settings, timings a function of the parameter count), so that jobs run with ``--platform``
build, reopen and drift-check their tables in a second or two without timing anything."""
from __future__ import annotations

import pytest

from latency.platforms import Platform, save_platform
from tests.fast_tables import FakeTorchMeasurer

FAKE_SETTINGS = {"threads": 1, "batch": 1, "warmup": 0, "repeats": 3}
"""The settings FakeTorchMeasurer records (``TorchSettings`` fields)."""


def use_fake_measurer(monkeypatch: pytest.MonkeyPatch, name: str = "fake-torch") -> Platform:
    """Save platform ``name`` (torch-cpu, :data:`FAKE_SETTINGS`) and fake every measurer made
    for it or re-created from a table it measured."""
    import latency.drift
    import latency.lazy
    import latency.registry
    import pipeline.stages

    platform = Platform(name, "torch-cpu", dict(FAKE_SETTINGS), "torch-cpu settings, timings faked")
    save_platform(platform)
    make, from_recorded = Platform.make_measurer, latency.drift.measurer_from_recorded

    def fake_make(self: Platform):
        return FakeTorchMeasurer() if self.record() == platform.record() else make(self)

    def fake_from_recorded(recorded: dict):
        ours = recorded.get("measurer") == "torch-cpu" and all(recorded.get(k) == v for k, v in FAKE_SETTINGS.items())
        return FakeTorchMeasurer() if ours else from_recorded(recorded)

    monkeypatch.setattr(Platform, "make_measurer", fake_make)
    for module in (latency.drift, latency.lazy, latency.registry, pipeline.stages):
        monkeypatch.setattr(module, "measurer_from_recorded", fake_from_recorded)
    return platform


def small_lazy_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lazy tables of jobs (search, NetAdapt) calibrated on one sampled spec, one round."""
    import functools

    from latency.lazy import ensure_table

    small = functools.partial(ensure_table, calibration_specs=1, calibration_rounds=1)
    for where in ("nas.pricing.ensure_table", "netadapt.job.ensure_table"):
        monkeypatch.setattr(where, small)
