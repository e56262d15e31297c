"""``mobilenas latency build|validate|predict|compare|show``: latency lookup tables for any hardware.

Progress bars (tqdm) and printing live here; the ``latency`` package reports progress through
callbacks. Errors become one line on stderr and exit code 2 (see :mod:`mobilenas.cli`).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from latency.build import BuildConfig, TableBuilder
from latency.drift import DriftReport
from latency.keys import space_keys
from latency.lazy import LAZY_MAX_PASSES, LazyPredictor
from latency.measurers import Measurer
from latency.platforms import Platform, file_table, table_key
from latency.predictor import LatencyPredictor
from latency.registry import measurer_from_recorded
from latency.table import VALIDATION_FILE, load_table, read_manifest
from latency.validation import ValidationConfig, sample_specs, score_predictors, validate, write_report
from mobilenas.cli_doctor import add_doctor
from mobilenas.cli_fit import add_fit, add_transfer
from mobilenas.latency_args import Bars as _Bars
from mobilenas.latency_args import add_drift_flags, on_drift_of
from mobilenas.latency_args import lazy_predictor as _lazy_predictor
from mobilenas.measurer_args import (add_measurer_arguments, add_platform_argument, given_options, measurer_from_args,
                                     platform_from_args)
from mobilenas.spec_args import add_spec_arguments, spec_from_args
from storage.statefiles import check_fields, read_json
from search_spaces.encoding import canonical, format_spec
from search_spaces.registry import SPACES, make_space
from search_spaces.mnasnet_space import MnasNetSpace



def _space(name: str, resolution: int, shape: dict | None = None) -> MnasNetSpace:
    """The space ``name`` at ``resolution``; ``shape``: a table's recorded ``input``."""
    shape = shape or {}
    return make_space(name, resolution=resolution, in_channels=int(shape.get("in_channels", 3)),
                      num_classes=int(shape.get("num_classes", 1000)))


def _drift_note(report: DriftReport) -> str | None:
    return None if report.action == "ok" else f"note: {report.describe()}"


def _check_build_options(args: argparse.Namespace) -> None:
    """Options no settings class checks, before anything is measured or written."""
    if args.calibration_specs < 1:
        raise ValueError(f"--calibration-specs = {args.calibration_specs} is not allowed; expected an integer >= 1 "
                         "(6 or more to choose the calibration by leave-one-out error)")
    if args.seed < 0:
        raise ValueError(f"--seed = {args.seed} is not allowed; expected an integer >= 0")


def _loo_text(calibration: dict) -> str:
    loo = calibration["loo"].get("+".join(calibration["features"])) if isinstance(calibration.get("loo"), dict) else None
    if loo is None:
        return f"LOO n/a ({calibration['n_specs']} specs: fewer than 6 fit only an overhead)"
    return f"LOO {loo:.2f}%"


def _build_measurer(args: argparse.Namespace) -> tuple[Measurer, Platform | None]:
    """The measurer of ``--platform`` (measurer options then refused) or of the options."""
    platform = platform_from_args(args)
    if platform is None:
        return measurer_from_args(args), None
    given = given_options(args)
    if given:
        raise ValueError(f"--platform {platform.name} fixes every measurer setting; drop {', '.join(given)} "
                         "(or save another platform with mobilenas platform add)")
    return platform.make_measurer(), platform


def cmd_build(args: argparse.Namespace) -> int:
    _check_build_options(args)
    measurer, platform = _build_measurer(args)
    label = platform.name if platform is not None else measurer.name
    out = Path(args.out or f"results/runs/latency-{args.space}-r{'-'.join(map(str, args.resolution))}-{label}")
    shape = {"in_channels": args.in_channels, "num_classes": args.classes}
    spaces = [_space(args.space, r, shape) for r in args.resolution]
    calibration = [s for i, space in enumerate(spaces) for s in sample_specs(space, args.calibration_specs, args.seed + i)]
    reference = sample_specs(spaces[0], 1, args.seed + 10_000)[0]
    passes = args.max_passes if args.max_passes is not None else (LAZY_MAX_PASSES if args.lazy else BuildConfig.max_passes)
    config = BuildConfig(batch_keys=args.batch_keys, calibration_rounds=args.calibration_rounds, max_passes=passes)
    builder = TableBuilder(out, measurer, reference, space=args.space, config=config, progress=_Bars(not args.quiet),
                           force=args.force, space_input=(args.in_channels, args.classes))
    if not args.lazy:
        for space in spaces:
            builder.measure_keys(space_keys(space))
    builder.measure_calibration(calibration)
    table = builder.finish()
    print(f"table {out}: {len(table)} entries; calibration: "
          + ", ".join(f"r{r} {c['features']} {_loo_text(c)}" for r, c in table.manifest["calibration"].items()))
    if platform is not None:
        for resolution in args.resolution:
            print(file_table(platform, table_key(args.space, resolution, args.in_channels, args.classes), out))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    if args.rescore:
        return _rescore(args)
    if args.n < 1:
        raise ValueError(f"-n = {args.n} is not allowed; expected at least 1 spec to validate")
    lazy = _lazy_predictor(args)
    table = lazy.table
    measurer = measurer_from_recorded(table.manifest["measurer"])
    excluded = set(parse_csv_specs(Path(args.table))) | set(parse_csv_specs(Path(args.table), "measurements.csv"))
    resolutions = sorted(int(r) for r in table.manifest["calibration"]) if args.resolution is None else [args.resolution]
    if not resolutions:
        raise ValueError(f"table {args.table} has no calibration; run `mobilenas latency build` to completion first")
    specs = [s for i, r in enumerate(resolutions)
             for s in sample_specs(_space(table.manifest["space"], r, table.manifest.get("input")), args.n,
                                   args.seed + 1000 * i, excluded)]
    if args.measure_missing:
        lazy.ensure(specs)
    config = ValidationConfig(n=args.n, seed=args.seed, pairs=args.pairs, passes=args.passes)
    report, frame = validate(LatencyPredictor(lazy.table), measurer, specs, config, progress=_Bars(not args.quiet))
    report["drift"] = lazy.drift.to_dict()
    report["predictors"] = score_predictors(lazy.predictors(), specs, frame)
    path = write_report(Path(args.table), report, frame)
    print(f"{path}: {_figures(report)}")
    for name, figures in report["predictors"].items():
        print(f"  {name:<10} {_figures(figures)}")
    floor = report["noise_floor"].get("measured")
    if floor:
        print(f"  noise floor (pass 2 vs pass 1): {_figures(floor)}")
    return 0


VALIDATION_FIELDS = {"n": int, "within_5pct": float, "within_10pct": float, "mean_abs_err_pct": float,
                     "p90_abs_err_pct": float, "mean_err_pct": float, "spearman": (float, type(None))}
"""What ``latency show`` prints of ``validation.json`` (and of its ``noise_floor.normalised``)."""


def _rescore(args: argparse.Namespace) -> int:
    """``validate --rescore``: the stored measurements against the table's current calibration."""
    from latency.validation import rescore

    table = load_table(args.table, force=args.force)
    report, frame = rescore(Path(args.table), LatencyPredictor(table))
    path = write_report(Path(args.table), report, frame)
    print(f"{path} (rescored, nothing measured): {_figures(report)}")
    return 0


def _figures(metrics: dict) -> str:
    return (f"n={metrics['n']} within 5%: {metrics['within_5pct']:.1%} within 10%: {metrics['within_10pct']:.1%} "
            f"mean |err| {metrics['mean_abs_err_pct']:.2f}% p90 |err| {metrics['p90_abs_err_pct']:.2f}% "
            f"mean err {metrics['mean_err_pct']:+.2f}% Spearman "
            + ("n/a" if metrics["spearman"] is None else f"{metrics['spearman']:.3f}"))


def parse_csv_specs(folder: Path, name: str = "calibration.csv") -> list[str]:
    """Canonical strings of the specs in the table's ``name`` (calibration, or the learned
    predictor's measurements): validation samples other specs."""
    path = folder / name
    if not path.exists():
        return []
    import pandas as pd

    return [canonical(s) for s in pd.read_csv(path)["spec"].astype(str)]


def cmd_predict(args: argparse.Namespace) -> int:
    spec = spec_from_args(args)
    lazy = _lazy_predictor(args)
    explained = lazy.explain(spec, measure_missing=args.measure_missing)
    on_platform = None if args.transfer is None else _on_platform(args.transfer, lazy, spec)
    if args.json:
        print(json.dumps({"latency_ms": explained.latency_ms, "predictor": explained.predictor, "sum_ms": explained.sum_ms,
                          "latency_ms_now": explained.latency_ms * lazy.drift.ratio, "speed_factor": lazy.drift.ratio,
                          "layers": int(explained.features["n_layers"]), "table": str(args.table),
                          "spec": format_spec(spec), "drift": lazy.drift.to_dict(),
                          **({} if on_platform is None else {"transfer": on_platform})}))
    else:
        print(f"{explained.latency_ms:.4f} ms at the table's speed ({explained.predictor}; table sum "
              f"{explained.sum_ms:.4f} ms over {int(explained.features['n_layers'])} layers); "
              f"{explained.latency_ms * lazy.drift.ratio:.4f} ms at this machine's speed now ({lazy.drift.ratio:.2f}x)")
        note = _drift_note(lazy.drift)
        if note:
            print(note)
        if on_platform is not None:
            print(f"on {on_platform['platform']}: {on_platform['ratio']:.3f}x MobileNetV3-Small there, about "
                  f"{on_platform['latency_ms']:.4f} ms ({on_platform['method']} transfer from "
                  f"{on_platform['n']} measurements)")
    return 0


def _on_platform(folder: str, lazy: LazyPredictor, spec) -> dict:
    """The transfer in ``folder`` applied to ``spec`` (``latency predict --transfer``)."""
    from latency.transfer_fit import load_transfer, predict_on_platform

    document = load_transfer(folder, lazy)
    figures = predict_on_platform(document, lazy, [spec])[0]
    return {**figures, "platform": document["platform"]["name"], "method": document["transfer"]["method"],
            "n": document["n"], "folder": str(folder)}


def cmd_compare(args: argparse.Namespace) -> int:
    from latency.compare import compare, ratio_summary, table_label
    from search_spaces.reference import REFERENCE_SPECS, reference_spec

    a, b = (LazyPredictor(t, tolerance=args.drift_tolerance, on_drift=on_drift_of(args)) for t in (args.table_a, args.table_b))
    common = sorted(set(a.table.manifest["calibration"]) & set(b.table.manifest["calibration"]), key=int)
    if not common:
        raise ValueError(f"tables {args.table_a} and {args.table_b} share no calibrated resolution")
    resolution = int(common[0]) if args.resolution is None else args.resolution
    shape = a.table.manifest.get("input", {})
    kwargs = {"resolution": resolution, "in_channels": int(shape.get("in_channels", 3)),
              "num_classes": int(shape.get("num_classes", 1000))}
    specs = {name: reference_spec(name, **kwargs) for name in REFERENCE_SPECS}
    sampled = sample_specs(_space(a.table.manifest["space"], resolution, shape), args.specs, args.seed)
    specs.update({f"sample-{i}": spec for i, spec in enumerate(sampled)})
    rows = compare(a, b, specs, measure_missing=args.measure_missing)
    summary = ratio_summary([row for row in rows if row.name.startswith("sample-")])
    if args.json:
        print(json.dumps({"a": str(args.table_a), "b": str(args.table_b), "resolution": resolution,
                          "a_measurer": table_label(a), "b_measurer": table_label(b),
                          "rows": [row.to_dict() for row in rows], "sample_ratio": summary}))
        return 0
    print(f"A = {args.table_a} [{table_label(a)}]\nB = {args.table_b} [{table_label(b)}]\nresolution {resolution}")
    print(f"{'model':<20} {'A ms':>9} {'B ms':>9} {'B/A':>6}")
    for row in rows:
        cells = [f"{v:9.3f}" if v is not None else f"{'missing':>9}" for v in (row.a_ms, row.b_ms)]
        print(f"{row.name:<20} {cells[0]} {cells[1]} {row.ratio:6.2f}" if row.ratio is not None
              else f"{row.name:<20} {cells[0]} {cells[1]} {'-':>6}")
    if summary:
        print(f"sampled specs: B/A median {summary['median']:.2f} (min {summary['min']:.2f}, max {summary['max']:.2f}, "
              f"n={summary['n']})")
    if any(row.ratio is None for row in rows):
        print("missing: layers not in a table; --measure-missing measures them on this machine")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    manifest = read_manifest(Path(args.table))
    table = load_table(args.table, force=True)
    print(f"table {args.table}: space {manifest.get('space')}, {len(table)} entries, created {manifest.get('created_utc')}")
    print("device: " + ", ".join(f"{k}={v}" for k, v in manifest.get("fingerprint", {}).items()))
    print("measurer: " + ", ".join(f"{k}={v}" for k, v in manifest.get("measurer", {}).items()))
    print(f"reference: baseline {manifest.get('reference', {}).get('baseline_ms')} ms (the table's unit)")
    signature = manifest.get("signature", {}).get("ratios")
    print("signature: " + (", ".join(f"{k} {v:.3f}x" for k, v in signature.items()) if signature
                           else "none (built before paired timing)"))
    for resolution, calib in sorted(manifest.get("calibration", {}).items(), key=lambda kv: int(kv[0])):
        terms = " + ".join(f"{c:.4g}*{n}" for n, c in zip(calib["features"], calib["coef"]))
        print(f"calibration r{resolution}: {terms} + {calib['intercept_ms']:.4g} ms ({calib['n_specs']} specs)")
    timings = manifest.get("build_timings")
    if timings:
        print("build: " + ", ".join(f"{k}={v}" for k, v in timings.items()))
    _show_learned(Path(args.table), manifest)
    validation = Path(args.table) / VALIDATION_FILE
    if validation.exists():
        report = read_json(validation, fields=VALIDATION_FIELDS, what="validation report")
        print(f"validation: {_figures(report)}")
        floor = report.get("noise_floor", {}).get("measured") if isinstance(report.get("noise_floor"), dict) else None
        if floor:
            check_fields(floor, VALIDATION_FIELDS, f"{validation}: noise_floor.normalised")
            print(f"noise floor (test-retest): {_figures(floor)}")
    return 0


def _show_learned(folder: Path, manifest: dict) -> None:
    """A line on the table's learned predictor, if it holds one (or why it is refused)."""
    from latency.learned import describe, load_model
    from storage.statefiles import StateFileError

    try:
        model = load_model(folder, manifest)
    except StateFileError as exc:
        print(f"learned predictor: refused ({exc})")
        return
    print(f"learned predictor: {describe(model.document)}" if model else "learned predictor: none (`latency fit` makes one)")


def _add_build(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build", help="measure a latency table for a search space (resumable)")
    p.add_argument("--space", required=True, help=f"search space ({', '.join(SPACES)})")
    p.add_argument("--resolution", type=int, nargs="+", required=True, help="input side(s) in pixels")
    add_platform_argument(p, "the table")
    add_measurer_arguments(p)
    p.add_argument("--out", default=None, help="table folder (default results/runs/latency-SPACE-rR-PLATFORM_OR_MEASURER)")
    p.add_argument("--seed", type=int, default=0, help="seed of the calibration and reference specs")
    p.add_argument("--in-channels", type=int, default=3, help="input channels of the deployed model (stem keys)")
    p.add_argument("--classes", type=int, default=1000, help="classes of the deployed model (head keys)")
    p.add_argument("--batch-keys", type=int, default=25, help="keys measured between two reference measurements")
    p.add_argument("--calibration-specs", type=int, default=60, help="whole models measured per resolution to calibrate")
    p.add_argument("--calibration-rounds", type=int, default=BuildConfig.calibration_rounds,
                   help="passes over the calibration specs, each in fresh sessions (they share the pairs)")
    p.add_argument("--lazy", action="store_true", help="measure only the layers of the calibration specs")
    p.add_argument("--max-passes", type=int, default=None,
                   help=f"passes over a layer whose pairs spread over {100 * BuildConfig.max_spread:.0f}%%, pooled (default "
                        f"{BuildConfig.max_passes}, {LAZY_MAX_PASSES} with --lazy); recorded, a resumed table keeps its own")
    p.add_argument("--force", action="store_true", help="resume a table measured elsewhere / with other settings")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler=cmd_build)


def _add_drift_arguments(p: argparse.ArgumentParser) -> None:
    add_drift_flags(p, tolerance=True)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``latency`` and its sub-commands."""
    group = subparsers.add_parser("latency", help="latency lookup tables: build, validate, predict, compare, show")
    sub = group.add_subparsers(dest="latency_command", metavar="SUBCOMMAND", required=True)
    _add_build(sub)
    p = sub.add_parser("validate", help="predicted vs measured latency of sampled specs -> validation.json")
    p.add_argument("table")
    p.add_argument("-n", type=int, default=100, help="specs per resolution")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--pairs", type=int, default=24, help="pairs of 10-run blocks with the reference per spec and pass")
    p.add_argument("--passes", type=int, default=2, help="independent passes (2: the test-retest noise floor)")
    p.add_argument("--resolution", type=int, default=None, help="only this resolution (default: every calibrated one)")
    p.add_argument("--measure-missing", action="store_true", help="measure layers the table lacks (lazy tables)")
    p.add_argument("--rescore", action="store_true",
                   help="measure nothing: score the stored validation measurements with the current calibration")
    _add_drift_arguments(p)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=cmd_validate)
    p = sub.add_parser("predict", help="predicted latency of a spec")
    p.add_argument("table")
    add_spec_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object with latency_ms")
    p.add_argument("--measure-missing", action="store_true",
                   help="measure the spec's layers the table lacks (on this machine) and add them to the table")
    p.add_argument("--transfer", default=None, metavar="DIR",
                   help="also the latency on the platform of this `latency transfer` folder (fitted from this table)")
    _add_drift_arguments(p)
    p.set_defaults(handler=cmd_predict)
    p = sub.add_parser("compare", help="two tables side by side (e.g. float vs int8): reference models and sampled specs")
    p.add_argument("table_a")
    p.add_argument("table_b")
    p.add_argument("--resolution", type=int, default=None, help="default: the smallest resolution both tables calibrate")
    p.add_argument("--specs", type=int, default=10, help="specs sampled from the space")
    p.add_argument("--seed", type=int, default=2)
    p.add_argument("--measure-missing", action="store_true", help="measure layers a table lacks (reference models)")
    p.add_argument("--json", action="store_true")
    _add_drift_arguments(p)
    p.set_defaults(handler=cmd_compare)
    p = sub.add_parser("show", help="summary of a table: device, settings, calibration, validation")
    p.add_argument("table")
    p.set_defaults(handler=cmd_show)
    add_doctor(sub)
    add_fit(sub, _add_drift_arguments)
    add_transfer(sub, _add_drift_arguments)
