"""``mobilenas latency doctor`` (and ``platform doctor``): how far this machine's timing can be
trusted (latency.doctor), optionally through a named platform's measurer."""
from __future__ import annotations

import argparse
import json

from latency.doctor import DoctorConfig, describe, run_doctor
from latency.measurers import Measurer
from mobilenas.measurer_args import add_platform_argument, platform_from_args


def doctor(args: argparse.Namespace, measurer: Measurer | None) -> int:
    """Run the doctor with ``args``' windows, probes and resolution through ``measurer`` (None:
    ONNX Runtime CPU) and print its report (one JSON object with ``--json``)."""
    config = DoctorConfig(windows=args.windows, probes=args.probes, resolution=args.resolution)
    report = run_doctor(config, measurer)
    if args.json:
        print(json.dumps(report.to_dict()))
        return 0
    print(describe(report))
    print(f"window medians (MobileNetV3-Small r{args.resolution}): {min(report.window_medians_ms):.4f} to "
          f"{max(report.window_medians_ms):.4f} ms over {len(report.window_medians_ms)} windows")
    print(f"paired ratio MobileNetV3-Large/Small: {min(report.paired_ratios):.3f} to {max(report.paired_ratios):.3f} "
          f"over {len(report.paired_ratios)} probes (median interval +/-{report.paired_halfwidth:.1%})")
    print("system: " + ", ".join(f"{k}={v if v is not None else 'unreadable'}" for k, v in report.system.items()))
    for line in report.advice:
        print(f"advice: {line}")
    print(f"({report.seconds:.1f} s)")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    platform = platform_from_args(args)
    return doctor(args, None if platform is None else platform.make_measurer())


def add_doctor_arguments(p: argparse.ArgumentParser) -> None:
    """--windows, --probes, --resolution and --json."""
    p.add_argument("--windows", type=int, default=DoctorConfig.windows, help="timing windows of one model")
    p.add_argument("--probes", type=int, default=DoctorConfig.probes, help="repeated paired probes")
    p.add_argument("--resolution", type=int, default=DoctorConfig.resolution, help="input side of the probe models")
    p.add_argument("--json", action="store_true",
                   help="print one object (swing, paired_spread, verdict, advice, system, ...)")


def add_doctor(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="measure this machine's timing stability and say what would steady it")
    add_doctor_arguments(p)
    add_platform_argument(p, "the probes")
    p.set_defaults(handler=cmd_doctor)
