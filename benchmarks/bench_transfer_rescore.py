"""Predictor transfer maps scored again on committed measurements, without measuring and
without the source table: the maps that weigh only what a spec says (``additive``,
``operators``), with and without the operator counts.

Each CSV of ``bench_predictor_transfer.py`` holds, per spec, the source predictor's figure and
two passes on each target platform (50 pool specs, 100 held out); the source table itself may
be gone (another host's), so the ``layers`` map, which reads the table's time per layer kind,
is left out here. For each count, ``--draws`` random draws from the pool fit
:func:`latency.transfer.choose_transfer` (leave-one-out choice among scale, log-linear,
additive and, with the counts, operators), scored on the held-out specs, median over the draws.

``--cross-host`` scores the nearest platform instead (LitePred's choice of source): the same
runtime measured on the other host, for the pairs of CSVs that hold the same specs (each sample
was measured on both hosts). The source is then the other host's *measured* figure, so the
figures bound what a predictor of that runtime fitted there could carry over.

``--source-table TABLE --target NAME`` makes that end to end: TABLE's best predictor (a table
of this machine; the layers it lacks are measured here first) prices each CSV's specs, and the
CSV's measurements of platform NAME (another host's) are the target.

Every mode writes its JSON and, beside it, a PNG of the curves (within 10% / 5% against the
number of measurements on the target).

    .venv/bin/python benchmarks/bench_transfer_rescore.py
    .venv/bin/python benchmarks/bench_transfer_rescore.py --cross-host --out results/latency/predictor_transfer_cross_host.json
    flock /tmp/mobilenas-bench.lock .venv/bin/python benchmarks/bench_transfer_rescore.py \
        --source-table results/latency/learned-r32-torch-cpu --target torch-cpu \
        --csvs results/latency/predictor_transfer_intel.csv results/latency/predictor_transfer_intel_confirm.csv \
        --out results/latency/predictor_transfer_torch_source.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from bench_predictor_transfer import curve
from latency.features import table_free_features
from latency.operator_counts import OPERATOR_PREFIX, operator_counts
from search_spaces.encoding import parse_spec
from storage.statefiles import write_json

RESULTS = Path("results/latency")
DEFAULT_CSVS = ("predictor_transfer.csv", "predictor_transfer_confirm.csv", "predictor_transfer_intel.csv")
HOST_PAIRS = (("predictor_transfer.csv", "predictor_transfer_intel.csv"),
              ("predictor_transfer_confirm.csv", "predictor_transfer_intel_confirm.csv"))
"""(AMD EPYC, Intel Xeon) measurements of the same 150 specs, sample seeds 0 and 1."""
TARGETS = ("ort-cpu-int8", "torch-cpu")
TARGET_WITHIN_10PCT = 0.95
"""The transfer target: held-out share within 10% from at most 50 measurements."""


def spec_frame(specs: pd.Series) -> pd.DataFrame:
    """Table-free features and operator counts, one row per spec string."""
    rows = [{**table_free_features(spec), **operator_counts(spec)} for spec in map(parse_spec, specs)]
    return pd.DataFrame(rows).fillna(0.0)


def rescore(csv: Path, counts: list[int], draws: int, seed: int) -> dict[str, dict]:
    frame = pd.read_csv(csv)
    pool = int((frame["split"] == "pool").sum())
    features = spec_frame(frame["spec"])
    without = features[[c for c in features.columns if not c.startswith(OPERATOR_PREFIX)]]
    found = {}
    for target in TARGETS:
        if f"{target}_pass1" not in frame:
            continue
        measured = geometric_mean(frame, target)
        source = frame["source_ms"].to_numpy()
        found[target] = {"with_operators": curve(source, measured, features, pool, counts, draws, seed),
                         "without_operators": curve(source, measured, without, pool, counts, draws, seed)}
    return found


def geometric_mean(frame: pd.DataFrame, target: str) -> np.ndarray:
    return np.sqrt(frame[f"{target}_pass1"] * frame[f"{target}_pass2"]).to_numpy()


def rescore_cross_host(first: Path, second: Path, counts: list[int], draws: int, seed: int) -> dict[str, dict]:
    """Each runtime carried from one host's measurements to the other's, both ways, same specs
    and the same pool/held-out split."""
    a = pd.read_csv(first)
    b = pd.read_csv(second).set_index("spec").loc[a["spec"]].reset_index()
    pool = int((a["split"] == "pool").sum())
    features = spec_frame(a["spec"])
    found = {}
    for target in TARGETS:
        for name, (source, measured) in {f"{second.stem} -> {first.stem}": (b, a),
                                         f"{first.stem} -> {second.stem}": (a, b)}.items():
            found[f"{target}: {name}"] = {"with_operators": curve(geometric_mean(source, target), geometric_mean(
                measured, target), features, pool, counts, draws, seed)}
    return found


def rescore_from_table(lazy, csv: Path, target: str, counts: list[int], draws: int, seed: int) -> dict[str, dict]:
    """The CSV's ``target`` measurements mapped from ``lazy``'s predictions of the same specs."""
    frame = pd.read_csv(csv)
    pool = int((frame["split"] == "pool").sum())
    specs = [parse_spec(text) for text in frame["spec"]]
    source = np.asarray(lazy.predict_many(specs), dtype=float)
    fitted = set(pd.read_csv(lazy.folder / "measurements.csv")["spec"]) if (lazy.folder / "measurements.csv").is_file() else set()
    return {target: {"with_operators": curve(source, geometric_mean(frame, target), spec_frame(frame["spec"]), pool, counts,
                                             draws, seed),
                     "specs_among_the_source_fitted": int(sum(text in fitted for text in frame["spec"]))}}


def plot(results: dict, out: Path) -> None:
    """Held-out share within 10% (solid) and 5% (dashed) against the measurements on the target,
    one colour per CSV and platform, the target's 95% as a line."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 3.9), dpi=110)
    for csv, targets in results["files"].items():
        for target, curves in targets.items():
            for label, rows in ((k, v) for k, v in curves.items() if isinstance(v, list)):
                name = f"{Path(csv).stem} {target}" + ("" if label == "with_operators" else f" ({label})")
                line, = ax.plot([r["n"] for r in rows], [r["within_10pct"] for r in rows], "o-", label=f"{name}: 10%")
                ax.plot([r["n"] for r in rows], [r["within_5pct"] for r in rows], "s--", color=line.get_color())
    ax.axhline(TARGET_WITHIN_10PCT, color="k", lw=0.8, label="target (95% within 10%)")
    ax.set_xlabel("measurements on the target platform")
    ax.set_ylabel("held-out share within 10% (solid) / 5% (dashed)")
    ax.set_ylim(0, 1.02)
    source = results.get("source_table", {}).get("folder", "the committed measurements")
    ax.set_title(f"predictor transfer, source: {source}", fontsize=8)
    ax.legend(fontsize=5.5, loc="lower right")
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"))
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csvs", nargs="+", default=[str(RESULTS / name) for name in DEFAULT_CSVS])
    parser.add_argument("--counts", type=int, nargs="+", default=[20, 30, 50])
    parser.add_argument("--draws", type=int, default=9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "predictor_transfer_rescore.json")
    parser.add_argument("--cross-host", action="store_true", help="score the same runtime carried between hosts")
    parser.add_argument("--source-table", type=Path, help="a table of this machine whose predictor is the source")
    parser.add_argument("--target", choices=TARGETS, help="with --source-table: the CSVs' platform it is carried to")
    parser.add_argument("--drift-tolerance", type=float, default=5.0,
                        help="with --source-table: its signature tolerance (as bench_learned_predictor.py: on a shared "
                             "machine a signature recorded under load can read far off)")
    args = parser.parse_args()
    if args.source_table is not None and args.target is None:
        parser.error("--source-table needs --target")
    results = {"what": __doc__.splitlines()[0], "counts": args.counts, "draws": args.draws, "seed": args.seed,
               "command": "benchmarks/bench_transfer_rescore.py " + " ".join(f"--{k} {v}" for k, v in vars(args).items()),
               "files": {}}
    if args.source_table is not None:
        from latency.lazy import LazyPredictor

        lazy = LazyPredictor(args.source_table, tolerance=args.drift_tolerance)
        results["source_table"] = {"folder": str(args.source_table), "created_utc": lazy.table.manifest.get("created_utc"),
                                   "measurer": lazy.table.manifest["measurer"], "fingerprint": lazy.table.manifest["fingerprint"]}
        jobs = {Path(csv).name: (lambda csv=csv: rescore_from_table(lazy, Path(csv), args.target, args.counts, args.draws,
                                                                    args.seed)) for csv in args.csvs}
    elif args.cross_host:
        jobs = {f"{a} / {b}": (lambda a=a, b=b: rescore_cross_host(RESULTS / a, RESULTS / b, args.counts, args.draws,
                                                                   args.seed)) for a, b in HOST_PAIRS}
    else:
        jobs = {Path(csv).name: (lambda csv=csv: rescore(Path(csv), args.counts, args.draws, args.seed)) for csv in args.csvs}
    for csv, job in jobs.items():
        results["files"][csv] = job()
        for target, curves in results["files"][csv].items():
            for label, rows in ((k, v) for k, v in curves.items() if isinstance(v, list)):
                figures = ", ".join(f"n={r['n']}: {r['within_10pct']:.0%}/{r['within_5pct']:.0%}" for r in rows)
                print(f"{csv:34s} {target:13s} {label:18s} {figures}", flush=True)
    write_json(args.out, results)
    plot(results, args.out)


if __name__ == "__main__":
    main()
