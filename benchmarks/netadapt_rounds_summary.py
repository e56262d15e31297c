"""Summarise pipeline runs made with ``--table`` at a table holding a learned predictor: per run,
NetAdapt's rounds and round check, which predictor priced each NetAdapt model, and how the
predictions sat against NetAdapt's own measurements. Writes one JSON.

DIR holds ``table/`` (fitted: ``mobilenas latency fit DIR/table --seed 0 --json > DIR/fit.json``)
and ``runs/`` (``python -m latency.noise -- mobilenas run --budget small --target-like
mobilenetv3-small --evaluator supernet --seed N --table DIR/table --out DIR/runs``, N = 0, 1, 2)::

    .venv/bin/python benchmarks/netadapt_rounds_summary.py DIR OUT.json "what" "date"
"""
from __future__ import annotations

import glob
import json
import sys

import numpy as np
import pandas as pd

from latency.lazy import LazyPredictor
from search_spaces.encoding import spec_from_dict


def run_row(seed: int, run: str, predictor: LazyPredictor) -> dict:
    """One pipeline run's figures (see the module docstring)."""
    netadapt = sorted(glob.glob(run + 'netadapt/*/'))
    chosen = [predictor.explain(spec_from_dict(json.load(open(f))), measure_missing=False).predictor
              for f in sorted(glob.glob(netadapt[0] + 'models/iter-*.json'))]
    history = pd.read_csv(netadapt[0] + 'history.csv')
    history = history[history.measured_ms.notna()]
    err = np.log((history.predicted_ms / history.measured_ms).to_numpy())
    manifest = json.load(open(run + 'manifest.json'))
    stages = manifest["stages"]
    rounds = stages["netadapt"]["result"]["latency_rounds"]
    refs = stages["references"]["result"]["models"]
    return {"seed": seed, "netadapt_rounds": len(rounds),
            "round_check": [round(rounds[-1][k], 4) for k in ("ratio", "ratio_low", "ratio_high")],
            "steps_priced_by": chosen, "measured_rows": int(len(err)),
            "median_pred_vs_measured_pct": round(100 * float(np.median(err)), 2),
            "std_pred_vs_measured_pct": round(100 * float(np.std(err)), 2),
            "final_top1": stages["final"]["result"]["top1"], "small_top1": refs[0]["top1"] if refs else None,
            "resumed": manifest["resumes"]}


def main() -> None:
    base, out_path, what, date = sys.argv[1:5]
    predictor = LazyPredictor(f'{base}/table', trusted=True)
    fit = json.load(open(f'{base}/fit.json'))
    rows = [run_row(seed, run, predictor) for seed, run in enumerate(sorted(glob.glob(f'{base}/runs/*/')))]
    doc = {"what": what, "date_utc": date, "machine": "2-core Intel Xeon VM",
           "fit": {k: fit[k] for k in ("model_type", "n", "total_s", "stopped")},
           "training_range_calibrated_ms": json.load(open(f'{base}/table/predictor.json'))["range"]["bounds"]["calibrated_ms"],
           "runs": rows}
    json.dump(doc, open(out_path, 'w'), indent=1)
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
