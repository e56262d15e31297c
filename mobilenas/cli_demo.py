"""``mobilenas demo``: the main job on the embedded default data, for a first look.

Shows the reference models, exports MobileNetV3-Small adapted to the embedded MNIST data
(1x32x32, 10 classes) in every format, samples a few specs of the search space, then trains
the adapted model briefly with ``mobilenas train`` (test top-1, params, MAdds, ONNX Runtime
latency, run folder). The global search and NetAdapt add their steps here as they land.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from mobilenas.cli_spec import EXPORT_FORMATS, spec_summary, write_export
from search_spaces.registry import make_space
from search_spaces.paper_table import render_markdown
from search_spaces.reference import REFERENCE_SPECS, reference_spec

DEMO_SHAPE = {"resolution": 32, "num_classes": 10, "in_channels": 1}


def register(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser("demo", help="run the main job on the embedded default data",
                                 description="Show the reference models, export MobileNetV3-Small adapted to the embedded "
                                             "MNIST data, and sample the search space.")
    demo.add_argument("--out", type=Path, default=None, help="run folder (default: results/runs/demo-<time>)")
    demo.add_argument("--seed", type=int, default=0, help="random seed")
    demo.add_argument("--data", default="mnist5k", help="data set for the training step (default: embedded mnist5k)")
    demo.add_argument("--epochs", type=int, default=3, help="epochs of the training step (0 skips it; default 3)")
    demo.set_defaults(handler=run_demo)


def _show_references() -> None:
    print("Reference models at 224x224, 1000 classes (params, conv+linear MAdds):")
    for name in REFERENCE_SPECS:
        summary = spec_summary(reference_spec(name))
        print(f"  {name:18s} {summary['params']:>10,d} params  {summary['madds'] / 1e6:7.2f} M MAdds")


def _check_options(args: argparse.Namespace) -> None:
    """Before any work: a bad value after minutes of exporting and sampling is a bug."""
    if args.epochs < 0:
        raise ValueError(f"--epochs = {args.epochs} is not allowed; expected an integer >= 0 (0 skips training)")
    if args.seed < 0:
        raise ValueError(f"--seed = {args.seed} is not allowed; expected an integer >= 0")
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise NotADirectoryError(f"--out {str(args.out)!r} is a file; expected a folder for the demo's outputs")
    if args.epochs > 0:
        from training.datasets import parse_name

        parse_name(args.data)


def run_demo(args: argparse.Namespace) -> int:
    _check_options(args)
    out = args.out or Path("results/runs") / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    _show_references()
    spec = reference_spec("mobilenetv3-small", **DEMO_SHAPE)
    print("\nMobileNetV3-Small adapted to the embedded MNIST data (1x32x32, 10 classes):\n")
    print(render_markdown(spec))
    for fmt in EXPORT_FORMATS:
        path = out / f"mobilenetv3-small.{'md' if fmt == 'table' else fmt}"
        write_export(spec, fmt, path)
        print(f"  exported {fmt:5s} -> {path}")
    space = make_space("mnasnet", **DEMO_SHAPE)
    rng = np.random.default_rng(args.seed)
    samples = [spec_summary(space.sample(rng)) for _ in range(3)]
    (out / "space_samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    print(f"\nSearch space 'mnasnet': {space.size():.3e} distinct architectures; 3 samples (seed {args.seed}):")
    for s in samples:
        print(f"  {s['params']:>9,d} params {s['madds'] / 1e6:6.2f} M MAdds  {s['arch'][:90]}...")
    if args.epochs > 0:
        _train_step(args, out)
    print(f"\nrun folder: {out}")
    return 0


def _train_step(args: argparse.Namespace, out: Path) -> None:
    """Train the adapted MobileNetV3-Small through the ``train`` command itself."""
    from mobilenas.cli import build_parser

    print(f"\nTraining MobileNetV3-Small on {args.data} for {args.epochs} epochs (full recipe: 50 epochs, "
          "see results/training/):")
    train_args = build_parser().parse_args(["train", "mobilenetv3-small", "--data", args.data, "--epochs",
                                            str(args.epochs), "--seed", str(args.seed), "--out", str(out)])
    train_args.handler(train_args)
