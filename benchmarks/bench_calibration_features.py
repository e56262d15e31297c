"""How much of a whole model's latency can any calibration of the additive table explain?

Re-fits the table-to-model calibration on the committed measurements (no new timing): for each
feature set, fitted on the table's calibration specs and scored on its 100 validation specs
(the same measurements ``latency validate`` scored, p10 raw), and, as an upper bound, fitted on
the validation specs themselves (in-sample). Feature sets: the calibration's own candidates,
per-operator counts (SE, h-swish, residual, 5x5, expansion), the table sum split by feature-map
side (one slope per stage), and a cache hinge on weight bytes. If even the in-sample fit stays
far below the targets, the per-layer table lacks the information and no calibration will reach
them. Writes ``results/latency/calibration_features.csv``::

    .venv/bin/python benchmarks/bench_calibration_features.py
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from latency.calibration import CANDIDATES, _design, _fit, spec_features  # noqa: E402
from latency.keys import LayerKey, key_cost, spec_keys  # noqa: E402
from latency.table import LatencyTable, load_table  # noqa: E402
from latency.validation import error_metrics  # noqa: E402
from search_spaces.encoding import parse_spec  # noqa: E402

TABLES = {32: ROOT / "results/latency/mnasnet-r32", 224: ROOT / "results/latency/mnasnet-r224"}
OUT = ROOT / "results/latency/calibration_features.csv"
SIDES = (1, 2, 4, 7, 8, 14, 16, 28, 32, 56, 112)
COUNTS = ("n_se", "n_hs", "n_res", "n_k5", "n_exp")
HINGE_MB = 20.0
"""Weight bytes beyond this share of the 32 MiB L3 are assumed to stream from memory."""


def features(table: LatencyTable, text: str) -> dict[str, float]:
    keys = spec_keys(parse_spec(text))
    out = spec_features(table, keys)
    out.update(_counts(keys))
    for side in SIDES:
        on_side = [k for k in keys if k.input_side == side]
        out[f"side{side}_ms"] = table.keys_sum_ms(on_side) if on_side else 0.0
    weight_mb = sum(key_cost(k)[0] for k in keys) * 4 / 1e6
    out["weights_over_l3_mb"] = max(0.0, weight_mb - HINGE_MB)
    return out


def _counts(keys: list[LayerKey]) -> dict[str, float]:
    return {"n_se": sum(bool(k.se) for k in keys), "n_hs": sum(k.act == "hswish" for k in keys),
            "n_res": sum(bool(k.residual) for k in keys), "n_k5": sum(k.kernel == 5 for k in keys),
            "n_exp": sum(k.exp_channels != k.in_channels for k in keys)}


def feature_sets(resolution: int) -> list[tuple[str, ...]]:
    sides = tuple(f"side{s}_ms" for s in SIDES if s < resolution)
    extra = [("cold_sum_ms", "sum_ms_sq", "n_layers", *COUNTS), ("sum_ms", "n_layers", *COUNTS),
             (*sides, "n_layers"), (*sides, "sum_ms_sq", "n_layers"),
             ("cold_sum_ms", "n_layers", "weights_over_l3_mb"), ("sum_ms", "sum_ms_sq", "n_layers", "weights_over_l3_mb"),
             ("cold_sum_ms", "sum_ms_sq", "n_layers", "act_m")]
    return [*CANDIDATES, *extra]


def score(fit_on: list[dict], y_fit: np.ndarray, test_on: list[dict], y_test: np.ndarray,
          names: tuple[str, ...]) -> dict[str, float]:
    coef = _fit(_design(fit_on, names), y_fit)
    return error_metrics(_design(test_on, names) @ coef, y_test)


def rows_for(resolution: int, folder: Path) -> list[dict]:
    table = load_table(folder)
    calibration, validation = pd.read_csv(folder / "calibration.csv"), pd.read_csv(folder / "validation.csv")
    f_cal = [features(table, s) for s in calibration["spec"]]
    f_val = [features(table, s) for s in validation["spec"]]
    y_cal, y_val = calibration["measured_ms"].to_numpy(float), validation["measured_ms"].to_numpy(float)
    chosen = "+".join(table.calibration(resolution)["features"])
    rows = []
    for names in feature_sets(resolution):
        held_out = score(f_cal, y_cal, f_val, y_val, names)
        in_sample = score(f_val, y_val, f_val, y_val, names)
        rows.append({"resolution": resolution, "features": "+".join(names), "chosen_by_build": "+".join(names) == chosen,
                     "within_10pct": held_out["within_10pct"], "within_5pct": held_out["within_5pct"],
                     "spearman": held_out["spearman"], "in_sample_within_10pct": in_sample["within_10pct"],
                     "in_sample_within_5pct": in_sample["within_5pct"]})
    return rows


def main() -> None:
    frame = pd.DataFrame([row for r, folder in TABLES.items() for row in rows_for(r, folder)])
    frame.to_csv(OUT, index=False, float_format="%.3f")
    with pd.option_context("display.width", 200, "display.max_colwidth", 70, "display.max_rows", 200):
        print(frame.sort_values(["resolution", "within_10pct"], ascending=[True, False]).to_string(index=False))
    for resolution, group in frame.groupby("resolution"):
        best = {col: group.loc[group[col].idxmax()] for col in ("in_sample_within_10pct", "in_sample_within_5pct")}
        print(f"r{resolution}: best held-out {group['within_10pct'].max():.0%} within 10% / "
              f"{group['within_5pct'].max():.0%} within 5% (targets 99% / 90%); best in-sample "
              + "; ".join(f"{row[col]:.0%} {col[10:]} ({row['features']})" for col, row in best.items()))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
