"""Validation of a latency table: predicted vs measured end-to-end latency of sampled specs.

An estimator is not trusted until validated: share within +/-5% and +/-10%, mean and
90th-percentile absolute error, Spearman and Kendall rank correlation, a scatter plot, as
nn-Meter (MobiSys 2021) and LitePred (NSDI 2024) report them. Every spec is measured alike:
``passes`` independent passes over all specs, each a paired ratio to the table's reference
(:mod:`latency.endtoend`) in the table's units, no spec measured again because it disagrees
with the prediction. The figure of a spec is the geometric mean of its passes; the *noise
floor* is the first pass against the second (test-retest), which bounds what any predictor can
score.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from scipy.stats import kendalltau, spearmanr

from latency.endtoend import measure_specs, prepared_model
from latency.measurers import Measurer
from latency.predictor import LatencyPredictor
from latency.table import VALIDATION_FILE, write_json
from search_spaces.encoding import format_spec, parse_spec
from search_spaces.spec import ArchSpec
from storage.settings import check_settings, setting

log = logging.getLogger(__name__)
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ValidationConfig:
    """``passes`` independent passes over every spec, ``pairs`` run-by-run pairs with the
    reference per spec and pass (>= 2 passes give the test-retest noise floor)."""

    n: int = setting(100, low=1)
    seed: int = 1
    pairs: int = setting(24, low=1)
    passes: int = setting(2, low=1)

    def __post_init__(self) -> None:
        check_settings(self, "validation.{name}")


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation (scipy; NaN when either side is constant or shorter than 2)."""
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def kendall(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's tau-b (scipy), the rank agreement NAS papers report."""
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(kendalltau(a, b).statistic)


def error_metrics(predicted: Sequence[float], measured: Sequence[float]) -> dict[str, float]:
    """n, within_5pct/within_10pct (fractions), mean/p90/max abs error %, mean signed error %, Spearman."""
    p, m = np.asarray(predicted, float), np.asarray(measured, float)
    err = (p / m - 1.0) * 100
    return {"n": int(len(m)), "within_5pct": float(np.mean(np.abs(err) <= 5)), "within_10pct": float(np.mean(np.abs(err) <= 10)),
            "mean_abs_err_pct": float(np.mean(np.abs(err))), "p90_abs_err_pct": float(np.percentile(np.abs(err), 90)),
            "max_abs_err_pct": float(np.max(np.abs(err))), "mean_err_pct": float(np.mean(err)),
            "spearman": spearman(p, m), "kendall": kendall(p, m)}


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
    """Predict and measure ``specs`` (every spec alike); returns the report and a per-spec frame."""
    progress = progress or (lambda phase, done, total: None)
    table = predictor.table
    ref_spec = parse_spec(table.manifest["reference"]["spec"])
    predicted = [predictor.predict_ms(s) for s in specs]  # raises on a missing key before measuring anything
    models = [prepared_model(measurer, spec) for spec in specs]
    passes = []
    for index in range(config.passes):
        passes.append(measure_specs(measurer, specs, ref_spec, pairs=config.pairs, models=models))
        progress("passes", index + 1, config.passes)
    baseline = table.reference_baseline_ms or float(np.median([r.reference_ms for r in passes[0]]))
    per_pass = [[r.in_units_of(baseline) for r in results] for results in passes]
    measured = np.exp(np.mean(np.log(per_pass), axis=0)).tolist()
    halfwidths = [float(np.median([r.relative_halfwidth for r in results])) for results in passes]
    report = error_metrics(predicted, measured)
    report.update({
        "measured_as": "paired ratio to the table's reference x its baseline, geometric mean of the passes",
        "per_pass": [error_metrics(predicted, values) for values in per_pass],
        "noise_floor": noise_floor(per_pass), "seed": config.seed, "pairs_per_pass": config.pairs,
        "passes": config.passes, "median_interval_halfwidth": float(np.median(halfwidths)),
        "reference_spec": table.manifest["reference"]["spec"], "reference_baseline_ms": baseline,
        "reference_now_ms": float(np.median([r.reference_ms for results in passes for r in results])),
        "measurer": measurer.settings_dict()})
    frame = pd.DataFrame({"spec": [format_spec(s) for s in specs], "resolution": [s.resolution for s in specs],
                          "predicted_ms": predicted, "measured_ms": measured})
    for index, values in enumerate(per_pass):
        frame[f"pass{index + 1}_ms"] = values
    frame["err_pct"] = (frame["predicted_ms"] / frame["measured_ms"] - 1) * 100
    return report, frame


def rescore(folder: Path, predictor: LatencyPredictor, name: str = VALIDATION_FILE) -> tuple[dict, pd.DataFrame]:
    """Predictions of an earlier validation's specs recomputed with ``predictor`` (e.g. after
    the calibration was refitted) against the same stored measurements; nothing is measured,
    and the measurement-only figures (noise floor) are kept."""
    path = Path(folder) / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: run `mobilenas latency validate {folder}` first")
    report = json.loads(path.read_text())
    frame = pd.read_csv(path.with_suffix(".csv"))
    frame["predicted_ms"] = [predictor.predict_ms(parse_spec(spec)) for spec in frame["spec"]]
    frame["err_pct"] = (frame["predicted_ms"] / frame["measured_ms"] - 1) * 100
    predicted = frame["predicted_ms"].tolist()
    report.update(error_metrics(predicted, frame["measured_ms"]))
    report.update({"per_pass": [error_metrics(predicted, frame[f"pass{p + 1}_ms"]) for p in range(int(report["passes"]))],
                   "rescored_with": {r: c["features"] for r, c in predictor.table.manifest["calibration"].items()}})
    return report, frame


def score_predictors(predictors: dict[str, object], specs: Sequence[ArchSpec], frame: pd.DataFrame) -> dict[str, dict]:
    """Every predictor (``name -> predict_named(specs)``, :mod:`latency.predictors`) scored on the
    same measured specs of a validation ``frame``, each beside the noise floor of those passes;
    ``answered_by`` counts which predictor gave the figures (a learned one falls back to the
    calibrated table outside its range). Adds a ``<name>_ms`` column per predictor to ``frame``."""
    passes = [frame[c].tolist() for c in frame.columns if c.startswith("pass") and c.endswith("_ms")]
    floor = noise_floor(passes)
    scores = {}
    for name, predictor in predictors.items():
        named = predictor.predict_named(specs)
        values = [v for v, _ in named]
        frame[f"{name}_ms"] = values
        used = pd.Series([n for _, n in named]).value_counts().to_dict()
        scores[name] = {**error_metrics(values, frame["measured_ms"]), "answered_by": {str(k): int(v) for k, v in used.items()},
                        "per_pass": [error_metrics(values, p) for p in passes], "noise_floor": floor}
    return scores


def noise_floor(per_pass: Sequence[Sequence[float]]) -> dict:
    """Test-retest agreement of the first two passes: the share of specs whose second
    measurement is within 5%/10% of the first, errors, rank correlations."""
    if len(per_pass) < 2:
        return {}
    return {"measured": error_metrics(per_pass[1], per_pass[0]),
            "what": "pass 2 vs pass 1 of the same specs, each a paired ratio to the reference"}


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
