"""How far this machine's timing can be trusted, measured in seconds.

Two figures decide what a latency in milliseconds is worth here (see :mod:`latency.paired`):
``swing``, the max/min of one model's wall-clock window medians taken a moment apart (absolute
speed, as a user waits for it),
and ``paired_spread``, the max/min of the same paired ratio repeated on the measurer's own clock
(what every table, search and NetAdapt decision rests on). Beside them, what the system tells where it can be
read: load average, CPU frequency governor, turbo boost, time stolen by the hypervisor. The
advice follows pyperf's ``system tune``: quiet the machine, pin the clock, pin the cores.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from latency.endtoend import cached_model, spec_input_shape
from latency.measurers import Measurer, OrtMeasurer, OrtSettings
from latency.paired import block_runner, paired_ratios, summarise
from search_spaces.reference import reference_spec
from search_spaces.spec import ArchSpec
from storage.settings import check_settings, setting

QUIET_SWING = 1.10
STEADY_PAIRED = 1.10


@dataclass(frozen=True)
class DoctorConfig:
    """``windows`` windows of ``runs`` runs, ``gap_s`` apart; ``probes`` paired probes of
    ``pairs`` pairs; models at ``resolution`` (``in_channels``, ``num_classes``)."""

    windows: int = setting(20, low=2)
    runs: int = setting(30, low=1)
    gap_s: float = setting(0.25, kind=float, low=0, high=10)
    probes: int = setting(10, low=2)
    pairs: int = setting(24, low=1)
    resolution: int = setting(224, low=8)
    in_channels: int = setting(3, low=1)
    num_classes: int = setting(1000, low=2)

    def __post_init__(self) -> None:
        check_settings(self, "doctor.{name}")


QUICK = DoctorConfig(windows=6, runs=20, gap_s=0.05, probes=4, pairs=20, resolution=32, in_channels=1, num_classes=10)
"""A few seconds' check recorded in table and run manifests."""


def quick_doctor(measurer: Measurer, like: ArchSpec) -> dict:
    """:data:`QUICK` at ``like``'s input shape through ``measurer``, as a manifest records it."""
    config = replace(QUICK, resolution=like.resolution, in_channels=like.in_channels, num_classes=like.num_classes)
    if getattr(measurer, "runner", None) is None:  # a device: every block is a call (push, run, read), keep it short
        config = replace(config, windows=3, probes=2, pairs=3, gap_s=0.0)
    report = run_doctor(config, measurer)
    return {k: v for k, v in report.to_dict().items() if k not in ("window_medians_ms", "paired_ratios")}


@dataclass(frozen=True)
class DoctorReport:
    swing: float
    paired_spread: float
    window_medians_ms: list[float]
    paired_ratios: list[float]
    paired_halfwidth: float
    verdict: str
    advice: list[str]
    system: dict[str, object] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _steal_ticks() -> int | None:
    line = (_read("/proc/stat") or "").splitlines()[:1]
    fields = line[0].split() if line else []
    return int(fields[8]) if len(fields) > 8 else None


def system_state() -> dict[str, object]:
    """Load average, governor, boost and core count, where this system lets them be read."""
    no_turbo = _read("/sys/devices/system/cpu/intel_pstate/no_turbo")
    boost = _read("/sys/devices/system/cpu/cpufreq/boost")
    return {"load_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None, "cpus": os.cpu_count(),
            "governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
            "turbo": None if no_turbo is None and boost is None else (boost == "1" if boost is not None else no_turbo == "0")}


class OnWallClock:
    """A measurer whose runners time on the wall clock (what a user waits for), whatever the
    clock of its settings; measurers without runners (devices) are used as they are."""

    def __init__(self, measurer: Measurer) -> None:
        self.measurer, self.name = measurer, measurer.name
        if getattr(measurer, "runner", None) is None:
            self.runner = None

    def settings_dict(self) -> dict[str, object]:
        return {**self.measurer.settings_dict(), "clock": "wall"}

    def measure(self, model: object, input_shape: tuple[int, ...]) -> np.ndarray:
        return self.measurer.measure(model, input_shape)

    def runner(self, model: object, input_shape: tuple[int, ...]) -> object:
        runner = self.measurer.runner(model, input_shape)
        if hasattr(runner, "clock"):
            runner.clock = "wall"
        return runner


def measure_swing(measurer: Measurer, model: object, shape: tuple[int, ...], config: DoctorConfig) -> list[float]:
    """One model's wall-clock median over each of ``config.windows`` windows, ``gap_s`` apart (ms)."""
    run = block_runner(OnWallClock(measurer), model, shape)
    medians = []
    for _ in range(config.windows):
        medians.append(float(np.median(run(config.runs))))
        time.sleep(config.gap_s)
    return medians


def verdict_and_advice(swing: float, spread: float, system: dict[str, object], steal_share: float | None
                       ) -> tuple[str, list[str]]:
    """``quiet``, ``noisy`` (paired figures hold, milliseconds do not) or ``unsteady``."""
    advice = []
    if (system.get("load_1min") or 0) > 0.5 * (system.get("cpus") or 1):
        advice.append("close other jobs: the load average is high for this core count")
    if system.get("governor") not in (None, "performance"):
        advice.append(f"set the CPU governor to performance (now {system['governor']}), e.g. `pyperf system tune`")
    if system.get("turbo"):
        advice.append("disable turbo boost for a fixed clock")
    if steal_share is not None and steal_share > 0.02:
        advice.append(f"the hypervisor took {steal_share:.0%} of CPU time: a dedicated VM or host steadies it")
    if swing >= QUIET_SWING:
        advice.append("pin the measurement to one core (taskset) and keep other processes off it")
    verdict = "quiet" if swing < QUIET_SWING else "noisy" if spread < STEADY_PAIRED else "unsteady"
    return verdict, advice


def run_doctor(config: DoctorConfig = DoctorConfig(), measurer: Measurer | None = None) -> DoctorReport:
    """Measure this machine's timing stability (see the module docstring)."""
    start, steal_before = time.perf_counter(), _steal_ticks()
    measurer = measurer or OrtMeasurer(OrtSettings())
    small = reference_spec("mobilenetv3-small", resolution=config.resolution, num_classes=config.num_classes,
                           in_channels=config.in_channels)
    large = reference_spec("mobilenetv3-large", resolution=config.resolution, num_classes=config.num_classes,
                           in_channels=config.in_channels)
    small_model, large_model = cached_model(measurer, small), cached_model(measurer, large)
    medians = measure_swing(measurer, small_model, spec_input_shape(small), config)
    run_small = block_runner(measurer, small_model, spec_input_shape(small))
    run_large = block_runner(measurer, large_model, spec_input_shape(large))
    probes = [summarise(*paired_ratios(run_large, run_small, pairs=config.pairs)) for _ in range(config.probes)]
    ratios = [p.ratio for p in probes]
    seconds = time.perf_counter() - start
    steal_after = _steal_ticks()
    ticks = (os.sysconf("SC_CLK_TCK") * seconds * (os.cpu_count() or 1)) if hasattr(os, "sysconf") else None
    steal = None if steal_before is None or steal_after is None or not ticks else (steal_after - steal_before) / ticks
    system = {**system_state(), "steal_share": steal}
    swing, spread = max(medians) / min(medians), max(ratios) / min(ratios)
    verdict, advice = verdict_and_advice(swing, spread, system, steal)
    return DoctorReport(swing, spread, medians, ratios, float(np.median([p.relative_halfwidth for p in probes])),
                        verdict, advice, system, seconds)


def describe(report: DoctorReport) -> str:
    """Two sentences on what a millisecond figure is worth here."""
    what = {"quiet": "this machine holds still: milliseconds repeat",
            "noisy": "this machine's speed moves, paired ratios hold: trust ratios and table units, not raw milliseconds",
            "unsteady": "even paired ratios move here: figures are rough; quiet the machine before building tables"}
    return (f"{report.verdict}: the same model's window medians swing {report.swing:.2f}x (max/min), repeated paired "
            f"ratios {report.paired_spread:.3f}x; {what[report.verdict]}")
