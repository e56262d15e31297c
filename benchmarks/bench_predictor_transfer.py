"""A latency predictor carried to another platform from a few measurements there: the curve of
held-out accuracy against the number of measurements.

The source is a 32x32 table of ONNX Runtime float, 1 thread, with its learned predictor
(``bench_learned_predictor.py`` builds it under ``--tables``). For each target platform
(built-in platforms of ``latency.platforms``), ``pool + heldout`` specs of the MnasNet space,
disjoint from every spec the source was fitted or calibrated on, are measured on the target
(2 passes of paired blocks against MobileNetV3-Small on that platform, geometric mean; pass 2
against pass 1 is the target's noise floor). For ``n`` in ``--counts``, ``--draws`` random
draws of ``n`` specs from the pool fit :func:`latency.transfer.choose_transfer`, scored on
the held-out specs (median over the draws), with every method, without the ``layers`` map and
with the one-number maps alone. Writes ``results/latency/predictor_transfer.json``,
``.png`` and the per-spec figures in ``.csv``.

    .venv/bin/python benchmarks/bench_predictor_transfer.py --targets ort-cpu-2t ort-cpu-int8
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from latency.endtoend import measure_specs, prepared_model
from latency.lazy import LazyPredictor
from latency.learning import table_specs
from latency.platforms import builtin_platforms
from latency.transfer import ADDITIVE_FEATURES, choose_transfer, transfer_features
from latency.validation import error_metrics, sample_specs
from search_spaces.encoding import format_spec
from search_spaces.mnasnet_space import MnasNetSpace
from search_spaces.reference import reference_spec
from storage.statefiles import write_json

TARGET = {"within_10pct": 0.95, "max_measurements": 50}


def measure_target(platform_name: str, specs: list, pairs: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Two passes of each spec's paired ratio to MobileNetV3-Small on the platform; seconds."""
    measurer = builtin_platforms()[platform_name].make_measurer()
    reference = reference_spec("mobilenetv3-small", resolution=32, in_channels=1, num_classes=10)
    start = time.perf_counter()
    models = [prepared_model(measurer, s) for s in specs]
    passes = [np.array([r.ratio for r in measure_specs(measurer, specs, reference, pairs=pairs, models=models)])
              for _ in range(2)]
    return passes[0], passes[1], time.perf_counter() - start


def _rows(features: pd.DataFrame | np.ndarray | None, index) -> pd.DataFrame | np.ndarray | None:
    if isinstance(features, pd.DataFrame):
        return features.iloc[index].reset_index(drop=True)
    return None if features is None else features[index]


def curve(source: np.ndarray, target: np.ndarray, features: pd.DataFrame | np.ndarray | None, pool: int,
          counts: list[int], draws: int, seed: int) -> list[dict]:
    """Held-out accuracy of the transfer fitted on ``n`` pool specs, median over ``draws``
    (``features`` None: the one-number maps only; an array of the counts: no ``layers`` map)."""
    rng = np.random.default_rng(seed)
    held_source, held_target = source[pool:], target[pool:]
    held_features = _rows(features, slice(pool, None))
    rows = []
    for n in counts:
        scores, methods = [], []
        for _ in range(draws):
            pick = rng.choice(pool, size=n, replace=False)
            fitted = choose_transfer(source[pick], target[pick], _rows(features, pick))
            scores.append(error_metrics(fitted.predict(held_source, held_features), held_target))
            methods.append(fitted.method)
        rows.append({"n": n, **{k: float(np.median([s[k] for s in scores]))
                                for k in ("within_10pct", "within_5pct", "mean_abs_err_pct", "spearman")},
                     "within_10pct_range": [min(s["within_10pct"] for s in scores), max(s["within_10pct"] for s in scores)],
                     "methods": {m: methods.count(m) for m in sorted(set(methods))}})
    return rows


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 3.8), dpi=110)
    for name, result in results["targets"].items():
        rows = result["curve"]
        line, = ax.plot([r["n"] for r in rows], [r["within_10pct"] for r in rows], "o-", label=f"{name}: within 10%")
        ax.plot([r["n"] for r in rows], [r["within_5pct"] for r in rows], "s--", color=line.get_color(),
                label=f"{name}: within 5%")
        ax.axhline(result["noise_floor"]["within_10pct"], color=line.get_color(), lw=0.6, ls=":")
    ax.axhline(TARGET["within_10pct"], color="k", lw=0.8, label="target (within 10%)")
    ax.set_xlabel("measurements on the target platform")
    ax.set_ylabel("held-out share")
    ax.set_ylim(0, 1.02)
    ax.set_title("learned predictor (ORT float, 1 thread, 32x32) carried over\n(dotted: target's noise floor, within 10%)",
                 fontsize=8)
    ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"))
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="results/runs/learned-r32", help="source table with its predictor.json")
    parser.add_argument("--targets", nargs="+", default=["ort-cpu-2t", "ort-cpu-int8"])
    parser.add_argument("--pool", type=int, default=50)
    parser.add_argument("--heldout", type=int, default=100)
    parser.add_argument("--counts", type=int, nargs="+", default=[3, 5, 10, 20, 30, 50])
    parser.add_argument("--draws", type=int, default=9)
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--drift-tolerance", type=float, default=5.0)
    parser.add_argument("--out", default="results/latency/predictor_transfer.json")
    parser.add_argument("--reuse", action="store_true",
                        help="take a target's figures from the CSV of an earlier run with the same specs (no measuring)")
    args = parser.parse_args()
    lazy = LazyPredictor(args.source, tolerance=args.drift_tolerance)
    predictor = lazy.learned_predictor()
    if predictor is None:
        raise SystemExit(f"{args.source} holds no learned predictor: run benchmarks/bench_learned_predictor.py first")
    space = MnasNetSpace(resolution=32, in_channels=1, num_classes=10)
    specs = sample_specs(space, args.pool + args.heldout, seed=1000 + args.seed, exclude=table_specs(Path(args.source)))
    lazy.ensure(specs)
    source = np.array([value for value, _ in lazy.learned_predictor().predict_named(specs)])
    results = {"what": __doc__.splitlines()[0], "command": "benchmarks/bench_predictor_transfer.py " + " ".join(
        f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in vars(args).items()),
        "source": {"table": args.source, "predictor": "learned", "platform": "ort-cpu-1t"},
        "target": TARGET, "pool": args.pool, "heldout": args.heldout, "draws": args.draws, "targets": {}}
    features = transfer_features(lazy.table, specs)
    csv = Path(args.out).with_suffix(".csv")
    frame = pd.DataFrame({"spec": [format_spec(s) for s in specs], "source_ms": source,
                          "split": ["pool"] * args.pool + ["heldout"] * args.heldout})
    kept = pd.read_csv(csv) if args.reuse and csv.is_file() else None
    earlier = json.loads(Path(args.out).read_text()).get("targets", {}) if kept is not None and Path(args.out).is_file() else {}
    for name in args.targets:
        if kept is not None and f"{name}_pass1" in kept and list(kept["spec"]) == list(frame["spec"]):
            first, second, seconds = kept[f"{name}_pass1"].to_numpy(), kept[f"{name}_pass2"].to_numpy(), float("nan")
        else:
            first, second, seconds = measure_target(name, specs, args.pairs)
        frame[f"{name}_pass1"], frame[f"{name}_pass2"] = first, second
        frame.to_csv(csv, index=False)
        measured = np.sqrt(first * second)
        rows = curve(source, measured, features, args.pool, args.counts, args.draws, args.seed)
        best_within = [r for r in rows if r["n"] <= TARGET["max_measurements"]]
        results["targets"][name] = {
            "curve": rows, "curve_one_number_maps": curve(source, measured, None, args.pool, args.counts, args.draws,
                                                          args.seed),
            "curve_without_layers": curve(source, measured, features[list(ADDITIVE_FEATURES)].to_numpy(), args.pool,
                                          args.counts, args.draws, args.seed),
            "noise_floor": error_metrics(second[args.pool:], first[args.pool:]),
            "source_vs_target_spearman": error_metrics(source[args.pool:], measured[args.pool:])["spearman"],
            # figures reused: the seconds of the run that measured them, when its JSON is at --out
            "measure_s": round(seconds, 1) if np.isfinite(seconds) else earlier.get(name, {}).get("measure_s"),
            "seconds_per_measurement": round(seconds / (2 * len(specs)), 3) if np.isfinite(seconds)
            else earlier.get(name, {}).get("seconds_per_measurement"),
            "met": bool(best_within and max(r["within_10pct"] for r in best_within) >= TARGET["within_10pct"])}
        print(json.dumps({name: {k: v for k, v in results["targets"][name].items() if k != "curve"}}, indent=1), flush=True)
        for row in rows:
            print(f"  n={row['n']:3d}: {row['within_10pct']:.0%} / {row['within_5pct']:.0%} within 10% / 5%, "
                  f"Spearman {row['spearman']:.3f}, methods {row['methods']}", flush=True)
        write_json(Path(args.out), results)
    plot(results, Path(args.out))


if __name__ == "__main__":
    main()
