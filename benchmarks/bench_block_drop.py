"""What dropping one residual block saves, measured end to end: each residual block of a spec
removed in turn, every variant paired with the spec itself (ONNX Runtime CPU, 1 thread, pairs
added until each ratio is known to +/- 2%), to judge whether NetAdapt proposals that remove a
block would cut faster than its width cuts (1-5% a step at 32x32 on an AMD EPYC).

    .venv/bin/python benchmarks/bench_block_drop.py --spec results/reference/block_drop_start.json \
        --out results/reference/block_drop.json

The committed spec is the start NetAdapt took in a ``make demo`` run (seed 1) on that host.
"""
from __future__ import annotations

import argparse
import json
import statistics
from datetime import datetime, timezone
from pathlib import Path

from latency.endtoend import measure_specs_ms
from latency.fingerprint import device_fingerprint
from search_spaces.encoding import format_spec, spec_from_dict
from search_spaces.spec import ArchSpec
from storage.runfolder import machine_info, package_versions
from storage.statefiles import write_json

PRECISION = 0.02


def without_block(spec: ArchSpec, index: int) -> ArchSpec:
    """``spec`` less block ``index``, a residual block (its input and output widths agree, so
    the blocks around it still fit)."""
    if not spec.blocks[index].skip:
        raise ValueError(f"block {index} has no residual; removing it would change the widths around it")
    return spec.replace(blocks=spec.blocks[:index] + spec.blocks[index + 1:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spec", type=Path, required=True, help="a spec as JSON (search_spaces.encoding)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    spec = spec_from_dict(json.loads(args.spec.read_text()))
    dropped = [i for i, block in enumerate(spec.blocks) if block.skip]
    figures = measure_specs_ms([without_block(spec, i) for i in dropped], reference=spec, precision=PRECISION)
    sides = spec.input_resolutions()
    rows = [{"block": i, "input_side": sides[i], "se": spec.blocks[i].se, "kernel": spec.blocks[i].kernel,
             "exp_channels": spec.blocks[i].exp_channels, "out_channels": spec.blocks[i].out_channels,
             "ratio": f["ratio"], "ratio_low": f["ratio_low"], "ratio_high": f["ratio_high"],
             "saving_pct": 100 * (1 - f["ratio"])} for i, f in zip(dropped, figures)]
    for row in rows:
        print(f"drop block {row['block']:2d} ({row['input_side']}x{row['input_side']}, se {row['se']}): "
              f"{row['ratio']:.3f}x [{row['ratio_low']:.3f}, {row['ratio_high']:.3f}] the whole model")
    savings = [row["saving_pct"] for row in rows]
    summary = {"blocks": len(rows), "median_saving_pct": statistics.median(savings),
               "min_saving_pct": min(savings), "max_saving_pct": max(savings)}
    print(json.dumps(summary))
    write_json(args.out, {"what": __doc__.splitlines()[0], "spec": format_spec(spec), "precision": PRECISION,
                          "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"),
                          "machine": machine_info(), "fingerprint": device_fingerprint(),
                          "packages": package_versions(), "summary": summary, "rows": rows})


if __name__ == "__main__":
    main()
