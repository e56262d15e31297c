"""The drift signature on torch eager, in fresh processes, with and without fixed heap thresholds.

Each of ``--processes`` rounds starts two fresh Python processes, one with glibc's heap
thresholds fixed (``latency.allocator``, what the torch eager runner does) and one without,
in alternating order; each measures the drift signature of a torch eager table ``--signatures``
times (its probes at 224x224, paired with the table's reference), as opening the table would.
Every signature is compared with the one the table recorded at build: the error and whether
the drift check's tolerance would refuse it.

    flock /tmp/mobilenas-bench.lock .venv/bin/python benchmarks/bench_torch_signature.py \\
        --table results/latency/learned-r32-torch-cpu --out results/latency/torch_signature.json
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from latency.drift import DEFAULT_TOLERANCE
from latency.signature import signature_error
from storage.statefiles import write_json

CHILD = """
import json, sys
import latency.allocator as allocator
if sys.argv[2] == "unpinned":
    allocator._pinned = False  # as before: glibc's thresholds move with what the process ran
from latency.registry import measurer_from_recorded
from latency.signature import SIGNATURE_RESOLUTION, measure_signature
from search_spaces.encoding import parse_spec
manifest = json.load(open(sys.argv[1] + "/manifest.json"))
measurer, reference = measurer_from_recorded(manifest["measurer"]), parse_spec(manifest["reference"]["spec"])
for _ in range(int(sys.argv[3])):
    ratios, reference_ms = measure_signature(measurer, reference, resolution=SIGNATURE_RESOLUTION)
    print(json.dumps({"ratios": ratios, "reference_ms": reference_ms}), flush=True)
"""


def signatures(table: Path, mode: str, count: int) -> list[dict]:
    done = subprocess.run([sys.executable, "-c", CHILD, str(table), mode, str(count)], capture_output=True, text=True,
                          check=True)
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def summary(rows: list[dict], recorded: dict[str, float]) -> dict:
    errors = [signature_error(recorded, row["ratios"]) for row in rows]
    probes = {name: [row["ratios"][name] for row in rows] for name in recorded}
    return {"n": len(rows), "ratios": probes,
            "max_over_min": {name: float(max(v) / min(v)) for name, v in probes.items()},
            "error_vs_build_median": float(np.median(errors)), "error_vs_build_max": float(max(errors)),
            "refused_at_tolerance": int(sum(e > DEFAULT_TOLERANCE for e in errors))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, required=True, help="a torch eager latency table folder")
    parser.add_argument("--processes", type=int, default=4, help="fresh processes of each kind")
    parser.add_argument("--signatures", type=int, default=3, help="signatures per process")
    parser.add_argument("--out", type=Path, default=Path("results/latency/torch_signature.json"))
    args = parser.parse_args()
    recorded = json.loads((args.table / "manifest.json").read_text())["signature"]["ratios"]
    rows: dict[str, list[dict]] = {"pinned": [], "unpinned": []}
    for index in range(args.processes):
        for mode in (("pinned", "unpinned") if index % 2 == 0 else ("unpinned", "pinned")):
            found = signatures(args.table, mode, args.signatures)
            rows[mode].extend(found)
            print(mode, [{k: round(v, 3) for k, v in row["ratios"].items()} for row in found], flush=True)
    result = {"what": __doc__.splitlines()[0], "table": str(args.table), "recorded_at_build": recorded,
              "tolerance": DEFAULT_TOLERANCE, "processes_each": args.processes, "signatures_per_process": args.signatures,
              "now_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "command": "benchmarks/bench_torch_signature.py " + " ".join(sys.argv[1:]),
              **{mode: summary(found, recorded) for mode, found in rows.items()}}
    write_json(args.out, result)
    print(json.dumps({mode: {k: result[mode][k] for k in ("max_over_min", "error_vs_build_median", "refused_at_tolerance")}
                      for mode in rows}, indent=1))


if __name__ == "__main__":
    main()
