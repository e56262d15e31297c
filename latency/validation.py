"""Validation of a latency table: predicted vs measured end-to-end latency of sampled specs.

An estimator is not trusted until validated (STYLE.md section 4): share within +/-5% and
+/-10%, mean and 90th-percentile absolute error, Spearman rank correlation, a scatter plot,
as nn-Meter (MobiSys 2021) and LitePred (NSDI 2024) report them. Measurements are medians,
normalised by an interleaved reference model (:mod:`latency.endtoend`); specs whose error
exceeds ``outlier_pct`` after the first sweeps are re-measured and their rounds pooled. The
first-pass figures are reported too, so the effect of re-measurement stays visible.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from latency.endtoend import EndToEnd, Reference, measure_specs, prepared_model, remeasure
from latency.measurers import Measurer
from latency.predictor import LatencyPredictor
from latency.table import VALIDATION_FILE, write_json
from search_spaces.encoding import format_spec, parse_spec
from search_spaces.spec import ArchSpec

log = logging.getLogger(__name__)
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ValidationConfig:
    n: int = 100
    seed: int = 1
    rounds: int = 3
    outlier_pct: float = 5.0
    outlier_rounds: int = 4

    def __post_init__(self) -> None:
        for name in ("n", "rounds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"validation.{name} = {value!r} is not allowed; expected an integer >= 1")


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation (average ranks for ties)."""
    ra, rb = pd.Series(a).rank().to_numpy(), pd.Series(b).rank().to_numpy()
    if len(ra) < 2 or ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def error_metrics(predicted: Sequence[float], measured: Sequence[float]) -> dict[str, float]:
    """n, within_5pct/within_10pct (fractions), mean/p90/max abs error %, mean signed error %, Spearman."""
    p, m = np.asarray(predicted, float), np.asarray(measured, float)
    err = (p / m - 1.0) * 100
    return {"n": int(len(m)), "within_5pct": float(np.mean(np.abs(err) <= 5)), "within_10pct": float(np.mean(np.abs(err) <= 10)),
            "mean_abs_err_pct": float(np.mean(np.abs(err))), "p90_abs_err_pct": float(np.percentile(np.abs(err), 90)),
            "max_abs_err_pct": float(np.max(np.abs(err))), "mean_err_pct": float(np.mean(err)),
            "spearman": spearman(p, m)}


def sample_specs(space: object, n: int, seed: int, exclude: set[str] = frozenset()) -> list[ArchSpec]:
    """``n`` distinct specs from ``space.sample`` (seeded), none of them in ``exclude``."""
    rng, specs, seen = np.random.default_rng(seed), [], set(exclude)
    for _ in range(100 * n):
        spec = space.sample(rng)
        if format_spec(spec) not in seen:
            seen.add(format_spec(spec))
            specs.append(spec)
            if len(specs) == n:
                return specs
    raise ValueError(f"could not sample {n} distinct specs from the space")


def validate(predictor: LatencyPredictor, measurer: Measurer, specs: Sequence[ArchSpec], config: ValidationConfig,
             progress: Progress | None = None) -> tuple[dict, pd.DataFrame]:
    """Predict and measure ``specs``; returns the report and a per-spec frame."""
    progress = progress or (lambda phase, done, total: None)
    table = predictor.table
    ref_spec = parse_spec(table.manifest["reference"]["spec"])
    reference = Reference(ref_spec, prepared_model(measurer, ref_spec), [])
    baseline = table.reference_baseline_ms or float(np.median(reference.history_ms or [reference.measure(measurer)]))
    predicted = [predictor.predict_ms(s) for s in specs]  # raises on a missing key before measuring anything
    results = measure_specs(measurer, specs, reference, baseline, rounds=config.rounds,
                            progress=lambda d, t: progress("measure", d, t))
    first = error_metrics(predicted, [r.latency_ms for r in results])
    results = _remeasure_outliers(measurer, specs, predicted, results, reference, baseline, config, progress)
    report = error_metrics(predicted, [r.latency_ms for r in results])
    raw = error_metrics(predicted, [r.raw_ms for r in results])
    report.update({"first_pass": first, "raw_unnormalised": raw, "seed": config.seed, "rounds": config.rounds,
                   "outlier_pct": config.outlier_pct, "remeasured": int(sum(r.rounds > config.rounds for r in results)),
                   "reference_spec": table.manifest["reference"]["spec"], "reference_baseline_ms": baseline,
                   "reference_now_ms": float(np.median(reference.history_ms)), "measurer": measurer.settings_dict()})
    frame = pd.DataFrame({"spec": [format_spec(s) for s in specs], "resolution": [s.resolution for s in specs],
                          "predicted_ms": predicted, "measured_ms": [r.latency_ms for r in results],
                          "raw_ms": [r.raw_ms for r in results], "rounds": [r.rounds for r in results]})
    frame["err_pct"] = (frame["predicted_ms"] / frame["measured_ms"] - 1) * 100
    return report, frame


def _remeasure_outliers(measurer: Measurer, specs: Sequence[ArchSpec], predicted: Sequence[float],
                        results: list[EndToEnd], reference: Reference, baseline: float, config: ValidationConfig,
                        progress: Progress) -> list[EndToEnd]:
    outliers = [i for i, (p, r) in enumerate(zip(predicted, results)) if abs(p / r.latency_ms - 1) * 100 > config.outlier_pct]
    if not outliers or config.outlier_rounds < 1:
        return results
    log.info("re-measuring %d outliers", len(outliers))
    progress("remeasure", 0, len(outliers))
    fresh = remeasure(measurer, [specs[i] for i in outliers], [results[i] for i in outliers], reference, baseline,
                      rounds=config.outlier_rounds)
    results = list(results)
    for i, value in zip(outliers, fresh):
        results[i] = value
    progress("remeasure", len(outliers), len(outliers))
    return results


def write_report(folder: Path, report: dict, frame: pd.DataFrame, name: str = VALIDATION_FILE) -> Path:
    """``validation.json``, ``validation.csv`` and ``validation.png`` in ``folder``."""
    path = Path(folder) / name
    write_json(path, report)
    frame.to_csv(path.with_suffix(".csv"), index=False)
    scatter_plot(frame, report, path.with_suffix(".png"))
    return path


def scatter_plot(frame: pd.DataFrame, report: dict, path: Path) -> None:
    """Predicted-vs-measured scatter with the +/-10% band (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=110)
    lo, hi = frame[["predicted_ms", "measured_ms"]].min().min() * 0.9, frame[["predicted_ms", "measured_ms"]].max().max() * 1.1
    line = np.array([lo, hi])
    ax.plot(line, line, "k-", lw=0.8)
    for factor, style in ((1.05, ":"), (0.95, ":"), (1.10, "--"), (0.90, "--")):
        ax.plot(line, line * factor, "k" + style, lw=0.6)
    ax.scatter(frame["measured_ms"], frame["predicted_ms"], s=10)
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("predicted latency (ms)")
    ax.set_title(f"n={report['n']}  within 5%: {report['within_5pct']:.0%}  10%: {report['within_10pct']:.0%}\n"
                 f"mean |err| {report['mean_abs_err_pct']:.1f}%  Spearman {report['spearman']:.3f}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
