"""A table's predictors scored again on held-out specs measured before, without measuring.

``bench_learned_predictor.py`` writes, per held-out spec, two measured passes in the table's
units (paired with its reference, so they stay comparable whatever the machine's speed later).
After the table's predictor is refitted (``mobilenas latency fit TABLE --budget N`` with more
whole models), this prices the same specs with every predictor the table holds now and scores
them beside the noise floor of those measurements (pass 2 against pass 1), so the refit is
judged on the specs the first fit was, none of them fitted:

    .venv/bin/python benchmarks/bench_predictor_rescore.py --table results/latency/learned-r32-torch-cpu \\
        --heldout results/latency/learned_predictor_torch-r32.csv --out results/latency/learned_predictor_torch_refit.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from latency.lazy import LazyPredictor  # noqa: E402
from latency.predictors import predict_all  # noqa: E402
from latency.validation import error_metrics, noise_floor  # noqa: E402
from search_spaces.encoding import parse_spec  # noqa: E402
from storage.statefiles import write_json  # noqa: E402


def score(table: Path, heldout: Path, tolerance: float) -> dict:
    lazy = LazyPredictor(table, tolerance=tolerance)
    frame = pd.read_csv(heldout)
    specs = [parse_spec(text) for text in frame["spec"]]
    missing = lazy.missing_keys(specs)
    if missing:
        raise SystemExit(f"{table} lacks {len(missing)} layers of the held-out specs: rescoring measures nothing")
    fitted = set(pd.read_csv(table / "measurements.csv")["spec"]) if (table / "measurements.csv").is_file() else set()
    measured = frame["measured_ms"].to_numpy(float)
    explained = [lazy.explain(spec, measure_missing=False) for spec in specs]
    predictors = {name: error_metrics(values, measured) for name, values in predict_all(lazy.predictors(), specs).items()}
    return {"n": len(frame), "fitted_models": len(fitted), "heldout_among_fitted": int(sum(s in fitted for s in frame["spec"])),
            "best": {**error_metrics([e.latency_ms for e in explained], measured),
                     "answered_by": pd.Series([e.predictor for e in explained]).value_counts().to_dict()},
            "predictors": predictors,
            "model_type": getattr(lazy.learned, "model_type", None),
            "noise_floor": noise_floor([frame["pass1_ms"].to_numpy(float), frame["pass2_ms"].to_numpy(float)])["measured"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, required=True)
    parser.add_argument("--heldout", type=Path, required=True, help="a -rR.csv of bench_learned_predictor.py")
    parser.add_argument("--drift-tolerance", type=float, default=5.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    result = {"what": __doc__.splitlines()[0], "table": str(args.table), "heldout": str(args.heldout),
              **score(args.table, args.heldout, args.drift_tolerance),
              "command": "python " + " ".join(sys.argv)}
    write_json(args.out, result)
    best = result["best"]
    print(json.dumps({"n": result["n"], "fitted_models": result["fitted_models"], "within_10pct": best["within_10pct"],
                      "within_5pct": best["within_5pct"], "spearman": best["spearman"],
                      "noise_floor": {k: result["noise_floor"][k] for k in ("within_10pct", "within_5pct", "spearman")}}))


if __name__ == "__main__":
    main()
