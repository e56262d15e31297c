"""What the ``latency`` sub-commands share: progress bars and opening a table as the user asked."""
from __future__ import annotations

import argparse

from latency.lazy import LazyPredictor


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


def lazy_predictor(args: argparse.Namespace) -> LazyPredictor:
    """The table opened through the drift probe with the user's --rescale/--force/--drift-tolerance."""
    on_drift = "rescale" if args.rescale else "force" if args.force else "error"
    return LazyPredictor(args.table, tolerance=args.drift_tolerance, on_drift=on_drift,
                         progress=Bars(not getattr(args, "quiet", True)))


