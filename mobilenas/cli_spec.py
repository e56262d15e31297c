"""Commands on specs: ``show``, ``export`` and ``space sample``."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from mobilenas.spec_args import add_spec_arguments, spec_from_args
from search_spaces.registry import SPACES, make_space
from search_spaces.counting import spec_cost
from search_spaces.encoding import format_spec, spec_to_dict, spec_to_json
from search_spaces.paper_table import render_markdown
from search_spaces.spec import ArchSpec
from search_spaces.timm_arch import to_arch_def

EXPORT_FORMATS = ("json", "onnx", "timm", "table")


def register(subparsers: argparse._SubParsersAction) -> None:
    show = subparsers.add_parser("show", help="print a spec as the paper's table with params and MAdds",
                                 description="Print SPEC as the MobileNetV3 paper's table (input, operator, exp size, "
                                             "#out, SE, NL, s) with parameters and multiply-adds (conv + linear).")
    add_spec_arguments(show)
    show.add_argument("--json", action="store_true", help="print one JSON object (arch, params, madds, spec)")
    show.set_defaults(handler=run_show)

    export = subparsers.add_parser("export", help="write a spec as JSON, ONNX, timm arch_def or a Markdown table",
                                   description="Export SPEC to PATH in the chosen format.")
    add_spec_arguments(export)
    export.add_argument("--format", choices=EXPORT_FORMATS, required=True, help="output format")
    export.add_argument("-o", "--output", required=True, type=Path, help="output file")
    export.set_defaults(handler=run_export)

    space = subparsers.add_parser("space", help="work with a search space", description="Search-space tools.")
    space_commands = space.add_subparsers(dest="space_command", metavar="ACTION", required=True)
    sample = space_commands.add_parser("sample", help="print sampled specs as JSON lines",
                                       description="Sample specs uniformly per decision; one JSON object a line.")
    sample.add_argument("--space", default="mnasnet", choices=sorted(SPACES), help="search space")
    sample.add_argument("--seed", type=int, required=True, help="random seed")
    sample.add_argument("-n", type=int, default=1, help="number of specs")
    sample.add_argument("--resolution", type=int, default=224, help="input side in pixels")
    sample.add_argument("--classes", type=int, default=1000, help="number of classes")
    sample.add_argument("--in-channels", type=int, default=3, help="input channels")
    sample.set_defaults(handler=run_space_sample)
    info = space_commands.add_parser("info", help="print the decisions and size of a space")
    info.add_argument("--space", default="mnasnet", choices=sorted(SPACES), help="search space")
    info.set_defaults(handler=run_space_info)


def spec_summary(spec: ArchSpec) -> dict:
    """The JSON summary ``show --json`` prints."""
    cost = spec_cost(spec)
    return {"arch": format_spec(spec), "params": cost.params, "madds": cost.madds,
            "resolution": spec.resolution, "num_classes": spec.num_classes, "spec": spec_to_dict(spec)}


def run_show(args: argparse.Namespace) -> int:
    spec = spec_from_args(args)
    if args.json:
        print(json.dumps(spec_summary(spec)))
        return 0
    cost = spec_cost(spec)
    print(render_markdown(spec))
    print(f"params: {cost.params:,}   MAdds (conv + linear): {cost.madds / 1e6:.2f} M")
    print(f"arch: {format_spec(spec)}")
    return 0


def write_export(spec: ArchSpec, fmt: str, path: Path) -> None:
    """Write ``spec`` to ``path`` in format ``fmt`` (one of :data:`EXPORT_FORMATS`)."""
    if not path.parent.is_dir():
        raise FileNotFoundError(f"output folder {str(path.parent)!r} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"-o {str(path)!r} is a folder; expected the path of the file to write")
    try:
        _write(spec, fmt, path)
    except OSError as exc:
        if exc.filename or exc.errno is None:
            raise
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror}") from None


def _write(spec: ArchSpec, fmt: str, path: Path) -> None:
    if fmt == "json":
        path.write_text(spec_to_json(spec) + "\n")
    elif fmt == "timm":
        path.write_text(json.dumps(to_arch_def(spec), indent=1) + "\n")
    elif fmt == "table":
        path.write_text(render_markdown(spec))
    elif fmt == "onnx":
        from search_spaces.onnx_export import export_spec_onnx  # torch import only when needed
        export_spec_onnx(spec, path)
    else:
        raise ValueError(f"unknown export format {fmt!r}; expected one of {EXPORT_FORMATS}")


def run_export(args: argparse.Namespace) -> int:
    spec = spec_from_args(args)
    write_export(spec, args.format, args.output)
    print(f"wrote {args.output} ({args.format})")
    return 0


def run_space_sample(args: argparse.Namespace) -> int:
    if args.n < 1:
        raise ValueError(f"-n = {args.n} is not allowed; expected at least 1")
    space = make_space(args.space, resolution=args.resolution, num_classes=args.classes, in_channels=args.in_channels)
    rng = np.random.default_rng(args.seed)
    for _ in range(args.n):
        indices = space.sample_indices(rng)
        spec = space.decode(indices)
        print(json.dumps({"indices": list(indices), **spec_summary(spec)}))
    return 0


def run_space_info(args: argparse.Namespace) -> int:
    space = make_space(args.space)
    names = sorted({d.name for d in space.decisions}, key=[d.name for d in space.decisions].index)
    per_stage = {d.name: list(d.choices) for d in space.decisions if d.stage == 0}
    print(f"space {args.space}: {len(space.stages)} stages x {len(names)} decisions = {len(space.decisions)} decisions")
    for name in names:
        print(f"  {name}: {per_stage[name]}")
    print(f"distinct architectures: {space.size():,} (~{float(space.size()):.2e})")
    return 0
