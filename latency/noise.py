"""A load injector: a quiet machine made to behave like a noisy one.

Users' machines do not hold still (turbo and thermal limits, neighbours on a VM): an idle cloud
VM swung 1.7x from one second to the next. To test and benchmark against that on a quiet
machine, one process per core alternates busy and idle periods of random length (a few hundred
milliseconds each, seeded), so the machine's speed for any other process jumps between full
and shared at random moments, as on that VM.

Use it around a command::

    python -m latency.noise -- make demo
    python -m latency.noise --cores 2 --busy-ms 100 600 --idle-ms 100 600 --seed 3 -- make test

or as a context manager in a benchmark: ``with LoadInjector(seed=0): ...``.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np

from storage.settings import check_settings, setting


@dataclass(frozen=True)
class NoiseSettings:
    """``cores`` worker processes; busy and idle periods drawn uniformly from the ranges (ms)."""

    cores: int = setting(os.cpu_count() or 1, low=1)
    busy_ms: tuple[float, float] = (100.0, 500.0)
    idle_ms: tuple[float, float] = (100.0, 500.0)
    seed: int = 0

    def __post_init__(self) -> None:
        check_settings(self, "noise.{name}")
        for name in ("busy_ms", "idle_ms"):
            low, high = getattr(self, name)
            if not 0 <= low <= high:
                raise ValueError(f"noise.{name} = {(low, high)!r} is not allowed; expected 0 <= low <= high")


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    x = 1.0
    while time.perf_counter() < end:
        for _ in range(1000):
            x = x * 1.0000001 + 1e-9


def _worker(settings: NoiseSettings, index: int, stop: "mp.synchronize.Event", parent: int) -> None:
    rng = np.random.default_rng([settings.seed, index])
    while not stop.is_set() and os.getppid() == parent:  # a killed parent leaves no busy orphans
        _spin(rng.uniform(*settings.busy_ms) / 1000)
        stop.wait(rng.uniform(*settings.idle_ms) / 1000)


class LoadInjector:
    """Context manager starting :class:`NoiseSettings` ``cores`` busy/idle processes."""

    def __init__(self, settings: NoiseSettings | None = None, **fields: object) -> None:
        self.settings = settings or NoiseSettings(**fields)
        self._stop = mp.get_context("spawn").Event()
        self._processes: list[mp.Process] = []

    def __enter__(self) -> "LoadInjector":
        context = mp.get_context("spawn")
        self._processes = [context.Process(target=_worker, args=(self.settings, i, self._stop, os.getpid()), daemon=True)
                           for i in range(self.settings.cores)]
        for process in self._processes:
            process.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for process in self._processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()


def main(argv: list[str] | None = None) -> int:
    """Run a command under the injector; its exit code is returned."""
    parser = argparse.ArgumentParser(prog="python -m latency.noise", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cores", type=int, default=NoiseSettings.cores)
    parser.add_argument("--busy-ms", type=float, nargs=2, default=NoiseSettings.busy_ms)
    parser.add_argument("--idle-ms", type=float, nargs=2, default=NoiseSettings.idle_ms)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ... (default: run until interrupted)")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    settings = NoiseSettings(args.cores, tuple(args.busy_ms), tuple(args.idle_ms), args.seed)
    with LoadInjector(settings):
        if not command:
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                return 0
        return subprocess.call(command)


if __name__ == "__main__":
    sys.exit(main())
