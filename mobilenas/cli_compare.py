"""``mobilenas compare RUN_DIR|SPEC ...``: accuracy, measured latency, params and MAdds side by
side. Latencies are measured here and now, each paired with the same reference model (MobileNetV3-Small),
so that they compare; the
accuracies are what each run recorded (test top-1, or the search's proxy validation top-1)."""
from __future__ import annotations

import argparse
import datetime
import math
from pathlib import Path
from typing import Any

import pandas as pd

from search_spaces.encoding import parse_spec
from search_spaces.spec import ArchSpec
from storage.runfolder import DEFAULT_OUT, RunFolder
from storage.statefiles import StateFileError, read_json, write_text_atomic

# job -> (where the results live in the manifest, spec key, accuracy key, what the accuracy is)
RUN_RESULTS = {
    "run": ("results", "final_spec", "top1", "test"),
    "train": ("results", "arch", "top1", "test"),
    "netadapt": ("results", "final_spec", "final_top1", "test"),
    "search": ("summary", "best_spec", "best_top1", "proxy validation"),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("compare", help="accuracy, measured latency, params and MAdds side by side",
                              description="Compare finished runs (train, search, netadapt, run) and specs. Latency is "
                                          "measured now on this machine (ONNX Runtime CPU, batch 1, 1 thread), in "
                                          "passes, each paired in blocks with MobileNetV3-Small (latency_vs_reference).")
    p.add_argument("items", nargs="+", metavar="RUN_DIR|SPEC")
    p.add_argument("--data", default=None, help="adapt plain SPECs to this data set's input shape and classes")
    p.add_argument("--rounds", type=int, default=2, help="paired measurement passes (default 2)")
    p.add_argument("--csv", type=Path, default=None, help=f"CSV to write (default {DEFAULT_OUT}/compare-<time>.csv)")
    p.set_defaults(handler=run_compare)


def from_run(path: Path) -> dict[str, Any]:
    """Name, spec and recorded accuracy of a finished run folder."""
    manifest = read_json(path / "manifest.json", fields={"job": str}, what="run manifest")
    job = manifest["job"]
    if job not in RUN_RESULTS:
        raise StateFileError(f"{path / 'manifest.json'}: job {job!r} has no comparable result; "
                             f"expected one of {sorted(RUN_RESULTS)}")
    RunFolder.open(path, job=job)
    section, spec_key, top1_key, kind = RUN_RESULTS[job]
    results = manifest.get(section)
    if not isinstance(results, dict) or not isinstance(results.get(spec_key), str):
        raise ValueError(f"{path} is a {job} run without a finished result (manifest field {section!r}.{spec_key!r})")
    top1 = results.get(top1_key)
    return {"item": str(path), "job": job, "arch": results[spec_key],
            "top1": float(top1) if isinstance(top1, (int, float)) else math.nan, "top1_kind": kind}


def from_spec(text: str, data: str | None) -> dict[str, Any]:
    from mobilenas.spec_args import resolve_spec

    if data is None:
        spec = resolve_spec(text)
    else:
        from training.datasets import default_resolution, load_dataset

        loaded = load_dataset(data, resolution=default_resolution(data), split_seed=0)
        spec = resolve_spec(text, resolution=loaded.resolution, num_classes=loaded.num_classes,
                            in_channels=loaded.in_channels)
    from search_spaces.encoding import format_spec

    return {"item": text, "job": "spec", "arch": format_spec(spec), "top1": math.nan, "top1_kind": "-"}


def compare_frame(rows: list[dict[str, Any]], rounds: int) -> pd.DataFrame:
    from pipeline.measure import measure_side_by_side
    from search_spaces.counting import spec_cost

    specs: list[ArchSpec] = [parse_spec(r["arch"]) for r in rows]
    latency = measure_side_by_side(specs, rounds=rounds)
    table = []
    for row, spec, lat in zip(rows, specs, latency):
        cost = spec_cost(spec)
        table.append({"item": row["item"], "job": row["job"], "top1": row["top1"], "top1_kind": row["top1_kind"],
                      "latency_ms": lat["latency_ms"], "latency_min_ms": lat["latency_min_ms"],
                      "latency_max_ms": lat["latency_max_ms"], "latency_vs_reference": lat["ratio"],
                      "params": cost.params, "madds_m": cost.madds / 1e6,
                      "input": f"{spec.in_channels}x{spec.resolution}x{spec.resolution}", "arch": row["arch"]})
    return pd.DataFrame(table)


def run_compare(args: argparse.Namespace) -> int:
    if isinstance(args.rounds, bool) or args.rounds < 1:
        raise ValueError(f"--rounds = {args.rounds!r} is not allowed; expected an integer >= 1")
    csv = args.csv or DEFAULT_OUT / f"compare-{datetime.datetime.now().strftime('%Y%m%dT%H%M%S')}.csv"
    if csv.is_dir():
        raise IsADirectoryError(f"--csv {str(csv)!r} is a folder; expected a file path")
    rows = [from_run(Path(item)) if (Path(item) / "manifest.json").is_file() else from_spec(item, args.data)
            for item in args.items]
    frame = compare_frame(rows, args.rounds)
    csv.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(csv, frame.to_csv(index=False))
    shown = frame.drop(columns=["arch"])
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"written: {csv}")
    return 0
