"""The accuracy-latency Pareto front of a search's trials (MnasNet Figure 1/section 3: the
soft-constraint reward aims at Pareto-optimal models around the target latency)."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from storage.statefiles import write_text_atomic
from storage.status import SCORED, words_for

PARETO_CSV = "pareto.csv"
PARETO_PNG = "pareto.png"
SCORED_WORDS = words_for(SCORED)
"""Finished and pruned trials, in today's words and those of earlier versions' trials.csv."""


def pareto_front(trials: pd.DataFrame) -> pd.DataFrame:
    """Trials not dominated by another (lower-or-equal latency and higher-or-equal top-1,
    one strictly), sorted by latency; only scored rows (finished or pruned) with finite values."""
    scored = trials[trials["status"].isin(SCORED_WORDS)]
    scored = scored[scored["top1"].map(math.isfinite) & scored["latency_ms"].map(math.isfinite)]
    ordered = scored.sort_values(["latency_ms", "top1"], ascending=[True, False], kind="stable")
    keep, best_top1 = [], -math.inf
    for index, row in ordered.iterrows():
        if row["top1"] > best_top1:
            keep.append(index)
            best_top1 = row["top1"]
    return ordered.loc[keep].reset_index(drop=True)


def write_pareto(folder: str | Path, trials: pd.DataFrame, *, target_ms: float, best_trial: int | None) -> pd.DataFrame:
    """Write ``pareto.csv`` (atomically) and ``pareto.png`` (all trials, the front, the target
    latency as a vertical line, the best-reward trial circled); returns the front."""
    folder = Path(folder)
    front = pareto_front(trials)
    write_text_atomic(folder / PARETO_CSV, front.to_csv(index=False))
    _plot(folder / PARETO_PNG, trials, front, target_ms=target_ms, best_trial=best_trial)
    return front


def _plot(path: Path, trials: pd.DataFrame, front: pd.DataFrame, *, target_ms: float, best_trial: int | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    scored = trials[trials["status"].isin(SCORED_WORDS)]
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=110)
    ax.scatter(scored["latency_ms"], 100 * scored["top1"], s=14, alpha=0.55, label=f"trials ({len(scored)})")
    if len(front):
        ax.step(front["latency_ms"], 100 * front["top1"], where="post", color="tab:green", label="Pareto front")
    ax.axvline(target_ms, color="tab:red", linestyle="--", label=f"target {target_ms:g} ms")
    best = scored[scored["trial"] == best_trial] if best_trial is not None else scored.iloc[0:0]
    if len(best):
        ax.scatter(best["latency_ms"], 100 * best["top1"], s=120, facecolors="none", edgecolors="black",
                   label="best reward")
    ax.set_xlabel("predicted latency (ms)")
    ax.set_ylabel("proxy validation top-1 (%)")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    temp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(temp)
    plt.close(fig)
    temp.replace(path)
