"""What the ``latency`` sub-commands share: progress bars and opening a table as the user asked."""
from __future__ import annotations

import argparse

from latency.drift import DEFAULT_TOLERANCE
from latency.lazy import LazyPredictor

DRIFT_FLAGS = ("rescale", "force")  # dests; every command that opens a table takes them, also with --resume


class Bars:
    """One tqdm bar per phase, driven by ``progress(phase, done, total)`` callbacks."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled, self.bars = enabled, {}

    def __call__(self, phase: str, done: int, total: int) -> None:
        if not self.enabled or total == 0:
            return
        from tqdm import tqdm

        bar = self.bars.get(phase)
        if bar is None:
            bar = self.bars[phase] = tqdm(total=total, desc=phase, unit="it", dynamic_ncols=True)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()
            del self.bars[phase]


def add_drift_flags(p: argparse.ArgumentParser, *, tolerance: bool = False) -> argparse._MutuallyExclusiveGroup:
    """``--rescale`` / ``--force`` (and ``--drift-tolerance``): how to open a table whose signature
    says other hardware (:func:`latency.drift.open_table`); a change of speed alone is always
    rescaled without asking. Returns the group, for a command's older spelling of the same choice."""
    group = p.add_mutually_exclusive_group()
    group.add_argument("--rescale", action="store_true",
                       help="a table from other hardware: scale its predictions by the reference model's speed here")
    group.add_argument("--force", action="store_true", help="use a table from other hardware as it is")
    if tolerance:
        p.add_argument("--drift-tolerance", type=float, default=DEFAULT_TOLERANCE,
                       help="largest allowed change of the signature's paired probe ratios before a table counts as "
                            "measured on other hardware (0.15 = 15%%); a change of speed alone is never refused")
    return group


def given_on_drift(args: argparse.Namespace) -> str | None:
    """``rescale`` / ``force`` when the user asked for one, else None (a run's recorded choice stands)."""
    return "rescale" if args.rescale else "force" if args.force else getattr(args, "on_drift", None)


def on_drift_of(args: argparse.Namespace) -> str:
    """The drift policy of a new job: the user's, else ``error`` (other hardware is refused)."""
    return given_on_drift(args) or "error"


def lazy_predictor(args: argparse.Namespace) -> LazyPredictor:
    """The table opened through the drift probe with the user's --rescale/--force/--drift-tolerance."""
    return LazyPredictor(args.table, tolerance=args.drift_tolerance, on_drift=on_drift_of(args),
                         progress=Bars(not getattr(args, "quiet", True)))


