"""Where a space's models sit against MobileNetV3-Small's latency: random models of each space
at the demo's input (1x32x32, 10 classes), each paired with MobileNetV3-Small end to end (ONNX
Runtime CPU, 1 thread, pairs added until each ratio is known to +/- 3%).

    .venv/bin/python -m latency.noise -- .venv/bin/python benchmarks/bench_space_skeleton.py \
        --out results/reference/space_skeleton.json

A search aimed at Small's latency can only find what its space holds near that latency; on a
CPU runtime at small inputs a model's latency is mostly its operator count (depth).
"""
from __future__ import annotations

import argparse
import statistics
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from latency.endtoend import measure_specs_ms
from latency.fingerprint import device_fingerprint
from search_spaces.encoding import format_spec
from search_spaces.reference import mobilenetv3_small
from search_spaces.registry import make_space
from storage.runfolder import machine_info, package_versions
from storage.statefiles import write_json

PRECISION = 0.03
SPACES = ("mnasnet-small-mbconv", "mnasnet-v3small-mbconv")


def space_rows(name: str, n: int, rng: np.random.Generator) -> list[dict]:
    """``n`` random models of space ``name``, each paired with MobileNetV3-Small."""
    space = make_space(name, resolution=32, num_classes=10, in_channels=1)
    specs = [space.sample(rng) for _ in range(n)]
    figures = measure_specs_ms(specs, reference=mobilenetv3_small(resolution=32, num_classes=10, in_channels=1),
                               precision=PRECISION)
    return [{"space": name, "spec": format_spec(s), "blocks": len(s.blocks), "ratio_to_small": f["ratio"],
             "ratio_low": f["ratio_low"], "ratio_high": f["ratio_high"]} for s, f in zip(specs, figures)]


def summary_of(rows: list[dict]) -> dict:
    ratios, blocks = [r["ratio_to_small"] for r in rows], [r["blocks"] for r in rows]
    return {"n": len(rows), "median_ratio": statistics.median(ratios), "min_ratio": min(ratios),
            "max_ratio": max(ratios), "share_at_or_under_small": sum(r <= 1.0 for r in ratios) / len(ratios),
            "min_blocks": min(blocks), "max_blocks": max(blocks)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spaces", nargs="+", default=list(SPACES))
    p.add_argument("-n", type=int, default=12, help="random models per space")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    rng = np.random.default_rng(args.seed)
    rows = [row for name in args.spaces for row in space_rows(name, args.n, rng)]
    summary = {name: summary_of([r for r in rows if r["space"] == name]) for name in args.spaces}
    for name, s in summary.items():
        print(f"{name}: {s['n']} models, {s['min_blocks']}-{s['max_blocks']} blocks, x Small's latency: median "
              f"{s['median_ratio']:.2f}, {s['min_ratio']:.2f} to {s['max_ratio']:.2f}, "
              f"{100 * s['share_at_or_under_small']:.0f}% at or under")
    write_json(args.out, {"what": __doc__.splitlines()[0], "seed": args.seed, "precision": PRECISION,
                          "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"),
                          "machine": machine_info(), "fingerprint": device_fingerprint(),
                          "packages": package_versions(), "summary": summary, "rows": rows})


if __name__ == "__main__":
    main()
