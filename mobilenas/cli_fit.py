"""``mobilenas latency fit TABLE``: measure whole models where the predictor is least sure and store
a learned latency predictor (``predictor.json``) in the table folder (latency.learning).
``mobilenas latency transfer TABLE --platform NAME --out DIR``: carry the table's predictor to
another platform from a few measurements there (latency.transfer_fit)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from latency.active import SamplingConfig
from latency.fitting import FitConfig
from latency.learning import DEFAULT_PAIRS, fit_table
from latency.learned import MODEL_TYPES


def _configs(args: argparse.Namespace) -> tuple[SamplingConfig, FitConfig]:
    """Settings from the options, checked before the table is opened or anything measured."""
    if args.pairs < 1:
        raise ValueError(f"--pairs = {args.pairs} is not allowed; expected an integer >= 1")
    if args.seed < 0:
        raise ValueError(f"--seed = {args.seed} is not allowed; expected an integer >= 0")
    sampling = SamplingConfig(budget=args.budget, initial=min(args.initial, args.budget), batch=args.batch,
                              pool_factor=args.pool_factor,
                              target_within_5pct=args.target_5pct, target_within_10pct=args.target_10pct,
                              seed=args.seed)
    return sampling, FitConfig(model_types=tuple(args.models), seed=args.seed)


def cmd_fit(args: argparse.Namespace) -> int:
    from mobilenas.latency_args import Bars as _Bars, lazy_predictor as _lazy_predictor

    sampling, fit = _configs(args)
    lazy = _lazy_predictor(args)
    summary = fit_table(args.table, sampling=sampling, fit=fit, pairs=args.pairs, progress=_Bars(not args.quiet),
                        lazy=lazy)
    if args.json:
        print(json.dumps(summary))
        return 0
    cv = summary["cross_validation"]
    if not summary["stored"]:
        print(f"no candidate beat the calibrated table in cross-validation (mean |err| "
              f"{cv[summary['model_type']]['mean_abs_err_pct']:.2f}% vs {cv['calibrated']['mean_abs_err_pct']:.2f}%): "
              f"the best is kept aside in {summary['path']} and predictions stay calibrated; measure again when the "
              "machine is quieter (`mobilenas latency doctor`)")
    print(f"{summary['path']}: {summary['model_type']} fitted on {summary['n']} measured models "
          f"({summary['measured_now']} measured now, and {summary['layers_measured']} layers they needed; stopped: "
          f"{summary['stopped']}; {summary['total_s']:.0f} s)")
    for name, figures in cv.items():
        print(f"  {name:<10} cross-validated within 5%: {figures['within_5pct']:.1%} within 10%: "
              f"{figures['within_10pct']:.1%} mean |err| {figures['mean_abs_err_pct']:.2f}% "
              f"Spearman {figures['spearman']:.3f}")
    print("  (cross-validation on the fitted models, chosen where the predictor was least sure; "
          "`mobilenas latency validate` scores it on held-out specs beside the noise floor)")
    return 0


def add_fit(sub: argparse._SubParsersAction, add_drift_arguments) -> None:
    p = sub.add_parser("fit", help="measure whole models (active sampling) and fit a learned predictor -> predictor.json")
    p.add_argument("table")
    p.add_argument("--budget", type=int, default=SamplingConfig.budget,
                   help="whole models measured in all (those already in measurements.csv count; resumable)")
    p.add_argument("--seed", type=int, default=0, help="seed of the candidate pool, sampling and models")
    p.add_argument("--initial", type=int, default=SamplingConfig.initial, help="uniformly sampled models first")
    p.add_argument("--batch", type=int, default=SamplingConfig.batch, help="models chosen per refit of the forest")
    p.add_argument("--pool-factor", type=int, default=SamplingConfig.pool_factor,
                   help="candidates drawn per budgeted model (their missing layers are measured into the table)")
    p.add_argument("--pairs", type=int, default=DEFAULT_PAIRS, help="run-by-run pairs with the reference per model")
    p.add_argument("--target-5pct", type=float, default=SamplingConfig.target_within_5pct,
                   help="stop early when the out-of-bag share within 5%% reaches this (and the 10%% one its target)")
    p.add_argument("--target-10pct", type=float, default=SamplingConfig.target_within_10pct)
    p.add_argument("--models", nargs="+", choices=MODEL_TYPES, default=list(MODEL_TYPES),
                   help="candidates compared by cross-validation (the best is stored)")
    p.add_argument("--json", action="store_true", help="print one JSON object (path, model_type, n, cross_validation, ...)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_drift_arguments(p)
    p.set_defaults(handler=cmd_fit)


def cmd_transfer(args: argparse.Namespace) -> int:
    from latency.platforms import get_platform
    from latency.transfer_fit import fit_transfer_to
    from mobilenas.latency_args import lazy_predictor as _lazy_predictor

    if args.measurements < 1:
        raise ValueError(f"--measurements = {args.measurements} is not allowed; expected an integer >= 1")
    if args.seed < 0:
        raise ValueError(f"--seed = {args.seed} is not allowed; expected an integer >= 0")
    platform = get_platform(args.platform)
    lazy = _lazy_predictor(args)
    document = fit_transfer_to(lazy, platform, args.out, measurements=args.measurements, seed=args.seed,
                               say=(lambda text: None) if args.quiet or args.json else print)
    transfer = document["transfer"]
    if args.json:
        print(json.dumps({"out": str(args.out), "platform": platform.name, "n": document["n"],
                          "method": transfer["method"], "loo_abs_err_pct": transfer["loo_abs_err_pct"],
                          "reference_ms": document["reference_ms"]}))
        return 0
    print(f"{args.out}/transfer.json: {transfer['method']} map from {args.table}'s predictor to {platform.name}, "
          f"fitted on {document['n']} measured models (leave-one-out mean |err| {transfer['loo_abs_err_pct']:.1f}%); "
          f"predict with: mobilenas latency predict {args.table} SPEC --transfer {args.out}")
    return 0


def add_transfer(sub: argparse._SubParsersAction, add_drift_arguments) -> None:
    p = sub.add_parser("transfer", help="carry TABLE's predictor to another platform from a few measurements there")
    p.add_argument("table", help="the source table (its best predictor prices the specs)")
    p.add_argument("--platform", required=True, metavar="NAME", help="the target platform (mobilenas platform list)")
    p.add_argument("--out", required=True, type=Path, help="folder for transfer.json and measurements.csv (resumable)")
    p.add_argument("--measurements", type=int, default=30, help="models measured on the target (default 30)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampled models")
    p.add_argument("--json", action="store_true", help="print one JSON object (out, platform, n, method, ...)")
    p.add_argument("--quiet", action="store_true", help="no line per measured model")
    add_drift_arguments(p)
    p.set_defaults(handler=cmd_transfer)
