"""Benchmark: build the reference latency tables of this machine and validate them.

For each resolution: ``mobilenas latency build --space mnasnet --resolution R`` into
``results/latency/mnasnet-rR`` (resumable: rerun after a kill and it continues), then
``mobilenas latency validate ... -n N`` (100 random specs of the default space, disjoint from
the calibration specs; every spec measured alike in two independent passes, whose test-retest
agreement is the noise floor). ``--inject build`` runs the load injector (``latency.noise``)
during the build only, ``--inject validate`` during the validation only. Writes ``results/latency/summary.json`` with every figure next
to its target and the noise floor. ``--int8`` adds the int8 (QDQ) table at 32x32 and
``compare-r32-float-int8.json`` (``mobilenas latency compare``). Run it under the shared
benchmark lock::

    flock /tmp/mobilenas-bench.lock .venv/bin/python benchmarks/bench_latency_table.py [--int8]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from pathlib import Path

from latency.noise import LoadInjector
from mobilenas.cli import main as cli

TARGETS = {"within_10pct": 0.99, "within_5pct": 0.90, "spearman": 0.98, "float_build_minutes_total": 15.0,
           "int8_r32_within_10pct": 0.95}


def run(argv: list[str]) -> None:
    print("$ mobilenas " + " ".join(argv), flush=True)
    code = cli(argv)
    if code != 0:
        sys.exit(f"command failed with exit code {code}: mobilenas {' '.join(argv)}")


def injected(phase: str, args: argparse.Namespace) -> contextlib.AbstractContextManager:
    """The load injector (``latency.noise``) around ``phase`` (build or validate) when ``--inject`` names it."""
    return LoadInjector(seed=0) if args.inject in (phase, "both") else contextlib.nullcontext()


def build_and_validate(table: Path, resolution: int, args: argparse.Namespace, extra: list[str]) -> dict:
    """Build (resumable) and validate one table; returns its summary entry."""
    start = time.perf_counter()
    with injected("build", args):
        run(["-v", "latency", "build", "--space", "mnasnet", "--resolution", str(resolution), "--out", str(table),
             "--calibration-specs", str(args.calibration_specs), "--quiet", *extra,
             *(["--max-passes", str(args.max_passes)] if args.max_passes is not None else [])])
    manifest = json.loads((table / "manifest.json").read_text())
    entry = {"entries": manifest["entries"], "build_timings_s": manifest.get("build_timings"),
             "this_invocation_build_s": round(time.perf_counter() - start, 1), "measurer": manifest["measurer"],
             "calibration": manifest["calibration"][str(resolution)], "injector": args.inject,
             "max_passes": manifest["build"].get("max_passes")}
    if args.rescore:  # the build above only refitted the calibration: score the stored measurements
        run(["latency", "validate", str(table), "--rescore"])
        entry["validation"] = json.loads((table / "validation.json").read_text())
    elif not args.skip_validate:
        with injected("validate", args):
            run(["-v", "latency", "validate", str(table), "-n", str(args.n), "--pairs", str(args.pairs), "--quiet",
                 "--drift-tolerance", str(args.drift_tolerance)])
        entry["validation"] = json.loads((table / "validation.json").read_text())
    return entry


def compare_tables(a: Path, b: Path, out: Path, args: argparse.Namespace) -> None:
    """``mobilenas latency compare A B --json`` saved to ``out`` (reference models measured lazily)."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        run(["latency", "compare", str(a), str(b), "--specs", "20", "--measure-missing", "--json",
             "--drift-tolerance", str(args.drift_tolerance)])
    printed = buffer.getvalue().splitlines()[-1]  # after the "$ mobilenas ..." line run() prints
    out.write_text(json.dumps(json.loads(printed), indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[32, 224])
    parser.add_argument("--out", default="results/latency")
    parser.add_argument("-n", type=int, default=100, help="validation specs per resolution")
    parser.add_argument("--calibration-specs", type=int, default=60)
    parser.add_argument("--pairs", type=int, default=24, help="validation pairs per spec and pass (2 passes)")
    parser.add_argument("--drift-tolerance", type=float, default=0.5)
    parser.add_argument("--int8", action="store_true", help="also the int8 (QDQ) table at 32x32 and compare it with float")
    parser.add_argument("--max-passes", type=int, default=None,
                        help="passes over a noisy layer (latency build --max-passes; default the build's)")
    parser.add_argument("--skip-validate", action="store_true")
    parser.add_argument("--inject", choices=("none", "build", "validate", "both"), default="none",
                        help="run the load injector (latency.noise) during the build, the validation or both")
    parser.add_argument("--rescore", action="store_true",
                        help="on finished tables: refit the calibrations and rescore the stored validations (measures nothing)")
    args = parser.parse_args()
    out = Path(args.out)
    summary_path = out / "summary.json"
    summary: dict[str, object] = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    summary.update({"targets": TARGETS})
    tables = summary.setdefault("tables", {})
    jobs = [(f"r{r}", out / f"mnasnet-r{r}", r, []) for r in args.resolutions]
    if args.int8:
        jobs.append(("r32-int8", out / "mnasnet-r32-int8", 32, ["--measurer", "ort-cpu-int8", "--quant-format", "qdq"]))
    for name, table, resolution, extra in jobs:
        tables[name] = build_and_validate(table, resolution, args, extra)
        summary_path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    if args.int8:
        compare_tables(out / "mnasnet-r32", out / "mnasnet-r32-int8", out / "compare-r32-float-int8.json", args)
    total = sum(sum(v for k, v in (tables[f"r{r}"]["build_timings_s"] or {}).items() if k.endswith("_s"))
                for r in (32, 224) if f"r{r}" in tables)
    summary["float_build_minutes_total"] = round(total / 60, 2)
    summary_path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "tables"}, indent=2))


if __name__ == "__main__":
    main()
