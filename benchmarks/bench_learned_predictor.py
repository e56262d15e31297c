"""Learned latency predictor vs the calibrated table, on held-out specs measured alike.

Per resolution (32x32 with 1 input channel and 10 classes as the demo uses; 224x224 with 3 and
1000): a lazy table (``latency.lazy.ensure_table``, reused when present), then
``latency.learning.fit_table`` (active sampling of whole models into ``measurements.csv``,
GBT / random forest / MLP compared by cross-validation, the best stored in ``predictor.json``),
then ``n`` held-out specs, disjoint from every fitted and calibration spec, measured like
``mobilenas latency validate`` (2 passes x ``pairs`` run-by-run pairs with the table's
reference, geometric mean; pass 2 vs pass 1 is the noise floor). Every predictor the table
holds is scored on them, and each model type refitted on all measurements is scored too.

    flock /tmp/mobilenas-bench.lock .venv/bin/python benchmarks/bench_learned_predictor.py \\
        --resolution 32 224 --budget 200 --heldout 100

writes ``results/latency/learned_predictor.json``, ``learned_predictor.png`` and the per-spec
``learned_predictor-rR.csv``. ``--platform NAME`` measures everything on that platform (table,
fitted and held-out models; ``mobilenas platform list``), its tables named after it.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from latency.active import SamplingConfig, read_measurements
from latency.features import FEATURE_NAMES, feature_matrix
from latency.fitting import FitConfig, make_estimator
from latency.lazy import LazyPredictor, ensure_table
from latency.learned import MODEL_TYPES, LearnedModel, dump_estimator, model_from_dict, residual_targets, training_range
from latency.learning import fit_table, table_specs
from latency.platforms import get_platform
from latency.predictor import LatencyPredictor
from latency.registry import measurer_from_recorded
from latency.table import load_table
from latency.validation import ValidationConfig, error_metrics, sample_specs, score_predictors, validate
from search_spaces.encoding import parse_spec
from search_spaces.mnasnet_space import MnasNetSpace
from storage.statefiles import write_json

SHAPES = {32: (1, 10), 224: (3, 1000)}
TARGETS = {32: {"within_10pct": 0.97, "within_5pct": 0.85, "spearman": 0.99},
           224: {"within_10pct": 0.99, "within_5pct": 0.90, "spearman": 0.995}}
FLOOR_CAPPED = {224: ("within_5pct",)}
"""Targets that are the noise floor where that is lower (224x224 within 5%: "or the noise floor")."""
COST_TARGET_S = 15 * 60


def effective_targets(resolution: int, noise_floor: dict | None) -> dict[str, float]:
    """The resolution's targets, those in :data:`FLOOR_CAPPED` lowered to the noise floor's figure."""
    targets = dict(TARGETS[resolution])
    for name in FLOOR_CAPPED.get(resolution, ()):
        if noise_floor and name in noise_floor:
            targets[name] = min(targets[name], float(noise_floor[name]))
    return targets


def refit_each(lazy: LazyPredictor, heldout: list, measured: np.ndarray, seed: int) -> dict:
    """Every model type fitted on all measurements, scored on the held-out specs (no CV)."""
    frame = read_measurements(lazy.folder)
    specs = [parse_spec(s) for s in frame["spec"]]
    x, y_ms = feature_matrix(lazy.table, specs), frame["measured_ms"].to_numpy(dtype=float)
    x_test = feature_matrix(lazy.table, heldout)
    y = residual_targets(y_ms, x[:, 0])
    out = {}
    for model_type in MODEL_TYPES:
        start = time.perf_counter()
        estimator = make_estimator(model_type, FitConfig(seed=seed)).fit(x, y)
        model = LearnedModel({"model_type": model_type, "range": training_range(x)},
                             model_from_dict(model_type, dump_estimator(model_type, estimator, x)))
        out[model_type] = {**error_metrics(model.predict_ms(x_test), measured), "fit_s": time.perf_counter() - start}
    return out


BUDGET_GRID = (30, 40, 50, 60, 70, 80, 90, 100, 120, 150, 200)


def budget_curve(resolution: int, args: argparse.Namespace) -> dict:
    """``--curve``: each model type refitted on the first ``n`` measured models (in the order the
    sampler measured them, so ``n`` is what a run with ``--budget n`` would have fitted on, from a
    pool of this run's size), scored on the stored held-out specs: how many measurements the
    targets need. Measures nothing."""
    import pandas as pd

    folder = Path(args.tables) / f"learned-r{resolution}"
    table = load_table(folder, force=True)  # table units, as the learned model's features (no timing)
    frame = read_measurements(folder)
    heldout = pd.read_csv(csv_path(Path(args.out), resolution))
    x = feature_matrix(table, [parse_spec(s) for s in frame["spec"]])
    x_test = feature_matrix(table, [parse_spec(s) for s in heldout["spec"]])
    y_ms, measured = frame["measured_ms"].to_numpy(dtype=float), heldout["measured_ms"].to_numpy(dtype=float)
    rows = []
    for n in [n for n in BUDGET_GRID if n <= len(frame)]:
        y = residual_targets(y_ms[:n], x[:n, 0])
        for model_type in ("gbt", "rf"):
            estimator = make_estimator(model_type, FitConfig(seed=args.seed)).fit(x[:n], y)
            model = LearnedModel({"model_type": model_type, "range": training_range(x[:n])},
                                 model_from_dict(model_type, dump_estimator(model_type, estimator, x[:n])))
            figures = error_metrics(model.predict_ms(x_test), measured)
            rows.append({"n": n, "model_type": model_type,
                         **{k: figures[k] for k in ("within_10pct", "within_5pct", "spearman", "mean_abs_err_pct")}})
    return {"what": budget_curve.__doc__.split("\n\n")[0].replace("\n", " "), "heldout_n": len(heldout),
            "calibrated": {k: v for k, v in error_metrics(x_test[:, 0], measured).items()
                           if k in ("within_10pct", "within_5pct", "spearman", "mean_abs_err_pct")},
            "rows": rows}


def csv_path(out: Path, resolution: int) -> Path:
    """The per-spec held-out CSV beside ``out`` (``learned_predictor.json`` -> ``learned_predictor-r224.csv``)."""
    return out.with_name(f"{out.stem}-r{resolution}.csv")


def summary_record(result: dict, out: Path) -> dict:
    """What ``summary.json`` keeps of a resolution's result: the learned predictor's held-out
    figures beside the noise floor, and what it cost."""
    learned, floor, seconds = result["heldout"]["learned"], result["noise_floor"] or {}, result["seconds"]
    across = seconds.get("across_sessions", {})
    figures = ("within_10pct", "within_5pct", "spearman")
    return {"source": out.name, "n": learned["n"], **{k: learned[k] for k in figures},
            "noise_floor": {k: floor.get(k) for k in figures}, "targets": result.get("targets_after_noise_floor",
                                                                               result["targets"]),
            "met": result["met"], "model_type": result["stored_model"], "fitted_n": result["fitted_n"],
            "measure_and_fit_s": across.get("cost_to_make_predictor", seconds["cost_to_make_predictor"]),
            "cost_target_s": COST_TARGET_S, "predict_ms_per_spec": result["predict_ms_per_spec"]["learned"]}


def write_summary(path: Path, results: list[dict], out: Path) -> None:
    """Each result's :func:`summary_record` under ``learned_predictor.rR`` of ``path`` (kept otherwise)."""
    summary = json.loads(path.read_text()) if path.exists() else {}
    section = summary.setdefault("learned_predictor", {})
    for result in results:
        section[f"r{result['resolution']}"] = summary_record(result, out)
    path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")


def predict_time_ms(lazy: LazyPredictor, specs: list) -> dict:
    """Median wall time of one prediction (ms), learned (LazyPredictor) and calibrated."""
    calibrated = LatencyPredictor(lazy.table)
    times = {"learned": [], "calibrated": []}
    for spec in specs:
        for name, call in (("learned", lazy.predict_ms), ("calibrated", calibrated.predict_ms)):
            start = time.perf_counter()
            call(spec)
            times[name].append((time.perf_counter() - start) * 1000)
    return {name: float(np.median(values)) for name, values in times.items()}


def run_resolution(resolution: int, args: argparse.Namespace) -> dict:
    in_channels, classes = SHAPES[resolution]
    folder = Path(args.tables) / (f"learned-r{resolution}" + (f"-{args.platform}" if args.platform else ""))
    measurer = get_platform(args.platform).make_measurer() if args.platform else None
    start = time.perf_counter()
    _, message = ensure_table(folder, space="mnasnet", resolution=resolution, in_channels=in_channels,
                              num_classes=classes, measurer=measurer, calibration_specs=args.calibration_specs,
                              calibration_rounds=3, seed=0)
    table_s = time.perf_counter() - start
    print(message, flush=True)
    lazy = LazyPredictor(folder, tolerance=args.drift_tolerance)
    fit = fit_table(folder, sampling=SamplingConfig(budget=args.budget, pool_factor=args.pool_factor, seed=args.seed),
                    fit=FitConfig(seed=args.seed), pairs=args.pairs, lazy=lazy)
    print(f"r{resolution}: fitted {fit['model_type']} on {fit['n']} ({fit['stopped']}, {fit['total_s']:.0f} s)", flush=True)
    space = MnasNetSpace(resolution=resolution, in_channels=in_channels, num_classes=classes)
    fitted = set(read_measurements(folder)["spec"]) | table_specs(folder)
    heldout = sample_specs(space, args.heldout, 50_000 + resolution, fitted)
    start = time.perf_counter()
    lazy.ensure(heldout)
    measurer = measurer_from_recorded(lazy.table.manifest["measurer"])
    report, frame = validate(LatencyPredictor(lazy.table), measurer, heldout,
                             ValidationConfig(n=args.heldout, seed=50_000 + resolution, pairs=args.heldout_pairs or args.pairs,
                                                  passes=2))
    heldout_s = time.perf_counter() - start
    scores = score_predictors(lazy.predictors(), heldout, frame)
    frame.to_csv(csv_path(Path(args.out), resolution), index=False)
    measured = frame["measured_ms"].to_numpy(dtype=float)
    learned, targets = scores["learned"], effective_targets(resolution, report["noise_floor"].get("measured"))
    return {"resolution": resolution, "platform": args.platform or "ort-cpu-1t", "in_channels": in_channels,
            "num_classes": classes, "table": str(folder),
            "targets": TARGETS[resolution], "targets_after_noise_floor": targets,
            "met": {name: bool(learned[name] >= value) for name, value in targets.items()},
            "heldout": {name: {k: v for k, v in s.items() if k not in ("per_pass", "noise_floor")} for name, s in scores.items()},
            "noise_floor": report["noise_floor"].get("measured"),
            "heldout_each_model_type": refit_each(lazy, heldout, measured, args.seed),
            "cross_validation": fit["cross_validation"], "stored_model": fit["model_type"], "fitted_n": fit["n"],
            "sampling": {k: fit[k] for k in ("stopped", "measured_now", "measured_total", "pool", "sampling_s")},
            "seconds": {"table": table_s, "fit_total": fit["total_s"], "sampling": fit["sampling_s"],
                        "of_which_layers": fit["layers_s"], "layers_measured": fit["layers_measured"],
                        "heldout_measure": heldout_s,
                        "cost_to_make_predictor": table_s + fit["total_s"], "cost_target": COST_TARGET_S},
            "predict_ms_per_spec": predict_time_ms(lazy, heldout[:50]),
            "measured_as": report["measured_as"], "pairs": args.pairs,
            "heldout_pairs": args.heldout_pairs or args.pairs, "drift": lazy.drift.to_dict(),
            "median_interval_halfwidth": report["median_interval_halfwidth"]}


def remeasure(resolution: int, args: argparse.Namespace) -> dict:
    """``--remeasure N``: N fitted and N held-out specs measured again now, as the fit measured
    them (one pass of ``pairs``), against their stored figures: how far a spec's paired ratio
    moves between two moments of this machine."""
    from latency.learning import table_measure

    import pandas as pd

    folder = Path(args.tables) / f"learned-r{resolution}"
    lazy = LazyPredictor(folder, tolerance=args.drift_tolerance)
    measure = table_measure(lazy, args.pairs)
    rng = np.random.default_rng(args.seed)
    fitted = read_measurements(folder)
    heldout = pd.read_csv(csv_path(Path(args.out), resolution))
    out = {}
    for name, frame in (("fitted", fitted), ("heldout", heldout)):
        rows = frame.iloc[np.sort(rng.choice(len(frame), size=min(args.remeasure, len(frame)), replace=False))]
        now = np.array([measure(parse_spec(spec))["measured_ms"] for spec in rows["spec"]])
        out[name] = {**error_metrics(now, rows["measured_ms"].to_numpy(dtype=float)),
                     "what": f"now vs stored ({'the fit' if name == 'fitted' else 'held-out, mean of 2 passes'})"}
    return out


def interleaved(resolution: int, args: argparse.Namespace) -> dict:
    """``--interleaved``: the fitted and the held-out specs measured again in one session, shuffled
    together, every spec alike (2 passes x ``pairs / 2`` pairs); the learned model refitted on the
    fitted specs' new figures (in a copy of the table) and every predictor scored on the held-out."""
    import shutil

    import pandas as pd

    from latency.active import MEASUREMENTS_FILE
    from latency.fitting import fit_document
    from latency.learned import PREDICTOR_FILE, load_model, save_model
    from latency.predictors import LearnedPredictor

    source = Path(args.tables) / f"learned-r{resolution}"
    folder = Path(args.tables) / f"learned-r{resolution}-interleaved"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns(MEASUREMENTS_FILE, "predictor*.json"))
    lazy = LazyPredictor(folder, tolerance=args.drift_tolerance)
    fitted = [parse_spec(s) for s in read_measurements(source)["spec"]]
    heldout = [parse_spec(s) for s in pd.read_csv(csv_path(Path(args.out), resolution))["spec"]]
    start = time.perf_counter()
    passes = measure_shuffled(lazy, fitted + heldout, max(1, args.pairs // 2), args.seed)
    measure_s = time.perf_counter() - start
    baseline = float(lazy.table.reference_baseline_ms)
    measured = np.exp(np.mean(np.log(passes), axis=0))
    n = len(fitted)
    from latency.active import MEASUREMENT_COLUMNS
    from storage.statefiles import CsvLog

    CsvLog(folder / MEASUREMENTS_FILE, MEASUREMENT_COLUMNS).rewrite([
        {"spec": spec, "resolution": resolution, "measured_ms": measured[i], "ratio": measured[i] / baseline,
         "ratio_low": min(p[i] for p in passes) / baseline, "ratio_high": max(p[i] for p in passes) / baseline,
         "reference_ms": float("nan"), "pairs": max(1, args.pairs // 2) * 2, "baseline_ms": baseline,
         "source": "interleaved", "uncertainty": float("nan"), "time": time.time()}
        for i, spec in enumerate(read_measurements(source)["spec"])])
    x = feature_matrix(lazy.table, fitted)
    document = fit_document(x, measured[:n], lazy.table.manifest, folder / MEASUREMENTS_FILE, FitConfig(seed=args.seed))
    save_model(folder, document, name=PREDICTOR_FILE)
    model = load_model(folder, lazy.table.manifest)
    frame = pd.DataFrame({"spec": [str(s) for s in range(len(heldout))], "measured_ms": measured[n:],
                          "pass1_ms": passes[0][n:], "pass2_ms": passes[1][n:]})
    predictors = table_predictors_with(lazy, LearnedPredictor(lazy.table, model))
    scores = score_predictors(predictors, heldout, frame)
    return {"fitted_n": n, "heldout_n": len(heldout), "measure_s": measure_s, "pairs_per_pass": max(1, args.pairs // 2),
            "stored_model": document["model_type"], "beats_calibrated_in_cv": document["beats_calibrated"],
            "cross_validation": document["cross_validation"],
            "heldout": {k: {m: v for m, v in s.items() if m not in ("per_pass", "noise_floor")} for k, s in scores.items()},
            "noise_floor_heldout": scores["calibrated"]["noise_floor"].get("measured"),
            "noise_floor_all": error_metrics(passes[1], passes[0])}


def measure_shuffled(lazy: LazyPredictor, specs: list, pairs: int, seed: int) -> list[np.ndarray]:
    """Two passes over ``specs`` in one seeded shuffled order, in the table's units (per pass)."""
    from latency.endtoend import measure_specs, prepared_model

    order = np.random.default_rng(seed).permutation(len(specs))
    measurer = measurer_from_recorded(lazy.table.manifest["measurer"])
    reference = parse_spec(lazy.table.manifest["reference"]["spec"])
    models = [prepared_model(measurer, specs[i]) for i in order]
    passes = []
    for _ in range(2):
        results = measure_specs(measurer, [specs[i] for i in order], reference, pairs=pairs, models=models)
        values = np.empty(len(specs))
        values[order] = [r.in_units_of(float(lazy.table.reference_baseline_ms)) for r in results]
        passes.append(values)
    return passes


def table_predictors_with(lazy: LazyPredictor, learned) -> dict:
    from latency.predictors import table_predictors

    return table_predictors(lazy.table, learned)


def pd_table(rows: list[dict]) -> str:
    import pandas as pd

    return pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}")


def plot(results: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4.6 * len(results), 4.4), dpi=110, squeeze=False)
    for ax, result in zip(axes[0], results):
        import pandas as pd

        frame = pd.read_csv(csv_path(out, result["resolution"]))
        lo, hi = frame["measured_ms"].min() * 0.85, frame["measured_ms"].max() * 1.15
        line = np.array([lo, hi])
        ax.plot(line, line, "k-", lw=0.8)
        for factor, style in ((1.05, ":"), (0.95, ":"), (1.10, "--"), (0.90, "--")):
            ax.plot(line, line * factor, "k" + style, lw=0.6)
        for name, marker in (("calibrated", "x"), ("learned", "o")):
            s = result["heldout"][name]
            ax.scatter(frame["measured_ms"], frame[f"{name}_ms"], s=9, marker=marker,
                       label=f"{name}: {s['within_5pct']:.0%} / {s['within_10pct']:.0%}, rho {s['spearman']:.3f}")
        floor = result["noise_floor"]
        ax.set_title(f"{result.get('platform', 'ort-cpu-1t')}, {result['resolution']}x{result['resolution']}, "
                     f"n={len(frame)} held out\nnoise floor "
                     f"{floor['within_5pct']:.0%} / {floor['within_10pct']:.0%} within 5% / 10%", fontsize=8)
        ax.set_xlabel("measured (ms, table units)")
        ax.set_ylabel("predicted (ms)")
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"))
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, nargs="+", default=[32, 224], choices=sorted(SHAPES))
    parser.add_argument("--budget", type=int, default=200, help="whole models measured to fit, per resolution")
    parser.add_argument("--heldout", type=int, default=100)
    parser.add_argument("--pairs", type=int, default=100, help="run-by-run pairs per model (per pass held out)")
    parser.add_argument("--heldout-pairs", type=int, default=0,
                        help="pairs per pass for the held-out specs (default: --pairs)")
    parser.add_argument("--calibration-specs", type=int, default=60, help="of a table built here (a table present is reused)")
    parser.add_argument("--pool-factor", type=int, default=2, help="candidates per budgeted model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--drift-tolerance", type=float, default=5.0,
                        help="signature tolerance: on this shared machine a signature recorded under load can read 3x off")
    parser.add_argument("--tables", default="results/runs", help="where the lazy tables are built (git-ignored)")
    parser.add_argument("--platform", default=None, help="measure on this platform (default: ONNX Runtime float, 1 thread)")
    parser.add_argument("--out", default="results/latency/learned_predictor.json")
    parser.add_argument("--remeasure", type=int, default=0,
                        help="measure only: N fitted and N held-out specs again now, vs their stored figures")
    parser.add_argument("--interleaved", action="store_true",
                        help="measure only: fitted and held-out specs again in one shuffled session, refit, rescore")
    parser.add_argument("--summary", default="results/latency/summary.json",
                        help="where the learned predictor's figures per resolution are kept ('' for nowhere)")
    parser.add_argument("--summarise", action="store_true",
                        help="measure nothing: copy the --out JSON's figures for --resolution into --summary")
    parser.add_argument("--curve", action="store_true",
                        help="measure nothing: accuracy on the stored held-out specs against the number of measured models fitted")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    out = Path(args.out)
    previous = json.loads(out.read_text()).get("resolutions", []) if out.exists() else []
    if args.interleaved:
        for result in previous:
            if result["resolution"] in args.resolution:
                result["interleaved"] = {"now_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                         **interleaved(result["resolution"], args)}
                print(json.dumps({k: result["interleaved"][k] for k in ("heldout", "noise_floor_heldout")}, indent=1),
                      flush=True)
        write_json(out, {**json.loads(out.read_text()), "resolutions": previous})
        return
    if args.summarise:
        write_summary(Path(args.summary), [r for r in previous if r["resolution"] in args.resolution], out)
        return
    if args.curve:
        for result in previous:
            if result["resolution"] in args.resolution:
                result["budget_curve"] = budget_curve(result["resolution"], args)
                print(pd_table(result["budget_curve"]["rows"]), flush=True)
        write_json(out, {**json.loads(out.read_text()), "resolutions": previous})
        return
    if args.remeasure:
        for result in previous:
            if result["resolution"] in args.resolution:
                result["remeasured"] = {"now_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                        **remeasure(result["resolution"], args)}
                print(json.dumps(result["remeasured"], indent=1), flush=True)
        write_json(out, {**json.loads(out.read_text()), "resolutions": previous})
        return
    results = [r for r in previous if r["resolution"] not in args.resolution]
    for resolution in args.resolution:
        results.append(run_resolution(resolution, args))
        results.sort(key=lambda r: r["resolution"])
        write_json(out, {"what": __doc__.splitlines()[0], "command": "benchmarks/bench_learned_predictor.py "
                         + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()),
                         "features": len(FEATURE_NAMES), "resolutions": results})
        plot(results, out)
        if args.summary:
            write_summary(Path(args.summary), [results[-1]], out)
        print(json.dumps({k: results[-1][k] for k in ("resolution", "met", "noise_floor")}, indent=1), flush=True)


if __name__ == "__main__":
    main()
