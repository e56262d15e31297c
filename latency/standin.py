"""A local stand-in for a phone behind a device command (:mod:`latency.command`).

    python -m latency.standin MODEL.onnx --runs N [--warmup W] [--threads T]
                              [--opt-level basic|extended|all] [--int8]

In its own process it loads the ONNX model in ONNX Runtime with a runtime configuration other
than the host tables' (basic graph optimisation, thread spinning off; int8 dynamic quantization
with ``--int8``), runs it ``N`` times after ``W`` warm-up runs and prints one line per run as a
phone benchmark tool does (``inference: 0.4123 ms``), exit code 0. It is what ``adb shell
benchmark_model ...`` is to a table build (see ``latency/DEVICES.md``), on this machine.

Faults, for tests and benchmarks (``--fault`` or ``$MOBILENAS_STANDIN_FAULT``; invocations are
counted in the file ``--state`` / ``$MOBILENAS_STANDIN_STATE`` when given): ``KIND@K`` behaves
from the K-th invocation on (1-based; default 1). Kinds: ``disconnect`` (prints ``error: device 'SERIAL' not
found`` on stderr and exits 1, as adb does), ``text`` (lines with no timing), ``nan``
(``inference: nan ms``), ``negative`` (a negative time). Start-up imports only numpy and
ONNX Runtime (and the quantizer under ``--int8``).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

FAULT_ENV = "MOBILENAS_STANDIN_FAULT"
STATE_ENV = "MOBILENAS_STANDIN_STATE"
FAULT_KINDS = ("disconnect", "text", "nan", "negative")
OPT_LEVELS = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}


def parse_fault(text: str | None) -> tuple[str, int] | None:
    """``KIND@K`` (or ``KIND``, K = 1) -> ``(kind, K)``; None for no fault."""
    if not text:
        return None
    kind, _, after = text.partition("@")
    if kind not in FAULT_KINDS or (after and not after.isdigit()) or (after and int(after) < 1):
        raise ValueError(f"fault {text!r} is not allowed; expected KIND or KIND@K with KIND one of {FAULT_KINDS} "
                         "and K an integer >= 1")
    return kind, int(after or 1)


def count_invocation(state: Path | None) -> int:
    """This invocation's 1-based number, counted in ``state`` (1 without a state file)."""
    if state is None:
        return 1
    try:
        count = int(state.read_text().strip() or 0) + 1
    except FileNotFoundError:
        count = 1
    state.write_text(f"{count}\n")
    return count


def session(model: Path, threads: int, opt_level: str, int8: bool) -> ort.InferenceSession:
    """The model in ONNX Runtime CPU with the stand-in's configuration."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = OPT_LEVELS[opt_level]
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    if not int8:
        return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)  # its pre-processing advice is not a device's output

    with tempfile.TemporaryDirectory(prefix="standin-int8-") as folder:
        quantized = Path(folder) / "model.int8.onnx"
        quantize_dynamic(str(model), str(quantized), weight_type=QuantType.QUInt8)
        return ort.InferenceSession(str(quantized), options, providers=["CPUExecutionProvider"])


def time_runs(sess: ort.InferenceSession, runs: int, warmup: int) -> list[float]:
    """Milliseconds of ``runs`` runs on a random input after ``warmup`` runs."""
    inp = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
    feed = {inp.name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
    for _ in range(warmup):
        sess.run(None, feed)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        sess.run(None, feed)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def garbage_lines(kind: str, runs: int) -> list[str]:
    """What a broken device prints instead of ``runs`` timings."""
    if kind == "text":
        return ["benchmark: model loaded", "benchmark: STATUS_UNKNOWN"]
    value = "nan" if kind == "nan" else "-0.4123"
    return [f"inference: {value} ms"] * runs


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m latency.standin", description=__doc__.split("\n\n")[1])
    p.add_argument("model", type=Path, help="ONNX model file")
    p.add_argument("--runs", type=int, default=3, help="timed runs, one output line each")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs first")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads")
    p.add_argument("--opt-level", choices=tuple(OPT_LEVELS), default="basic", help="graph optimisation level")
    p.add_argument("--int8", action="store_true", help="int8 dynamic quantization of the model first")
    p.add_argument("--serial", default="standin-0", help="device name in error messages")
    p.add_argument("--fault", default=os.environ.get(FAULT_ENV), help=f"KIND@K (default ${FAULT_ENV})")
    p.add_argument("--state", type=Path, default=os.environ.get(STATE_ENV) or None,
                   help=f"invocation counter file for --fault (default ${STATE_ENV})")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.runs < 1 or args.warmup < 0 or args.threads < 1:
        print(f"error: --runs {args.runs}, --warmup {args.warmup}, --threads {args.threads}: expected runs >= 1, "
              "warmup >= 0, threads >= 1", file=sys.stderr)
        return 2
    try:
        fault = parse_fault(args.fault)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    count = count_invocation(args.state)
    if fault and count >= fault[1] and fault[0] == "disconnect":
        print(f"error: device '{args.serial}' not found", file=sys.stderr)
        return 1
    if not args.model.is_file():
        print(f"error: model file {str(args.model)!r} does not exist", file=sys.stderr)
        return 2
    times = time_runs(session(args.model, args.threads, args.opt_level, args.int8), args.runs, args.warmup)
    if fault and count >= fault[1]:
        print("\n".join(garbage_lines(fault[0], args.runs)))
        return 0
    print("\n".join(f"inference: {t:.4f} ms" for t in times))
    return 0


if __name__ == "__main__":
    sys.exit(main())
