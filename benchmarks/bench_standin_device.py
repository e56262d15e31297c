"""A platform behind a device command, end to end, through the local stand-in device.

    nice -n 19 .venv/bin/python benchmarks/bench_standin_device.py [--work DIR] [--out results/platforms/standin.json]

Builds a lazy 32x32 table (mnasnet space, 1 input channel, 10 classes, 8 calibration specs,
2 rounds) with ``mobilenas latency build --measurer command`` and the stand-in
(:mod:`latency.standin`, 3 runs per call) as a real user would: a subprocess. First straight
through (wall and CPU time, rows, device calls); then into a second folder the same build
interrupted four times over: garbage output (``inference: nan ms``), a device disconnect, a
SIGKILL, then resumed to the end. After each interruption it checks the exit code, that stderr
is one line, and that every complete row written before is still there byte for byte; at the
end, that the resumed table holds exactly the keys of the straight one (none lost, none twice).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pandas as pd  # noqa: E402

from latency.fingerprint import device_fingerprint  # noqa: E402
from latency.keys import KEY_COLUMNS  # noqa: E402

SEED = 0
TEMPLATE = f"{sys.executable} -m latency.standin {{model}} --runs 3"
CSV_FILES = ("entries.csv", "reference.csv", "calibration.csv")


def build_command(folder: Path) -> list[str]:
    return [sys.executable, "-m", "mobilenas.cli", "latency", "build", "--space", "mnasnet", "--resolution", "32",
            "--in-channels", "1", "--classes", "10", "--lazy", "--measurer", "command", "--command", TEMPLATE,
            "--device-id", "standin-0 (local ONNX Runtime, basic graph optimisation, 1 thread)",
            "--calibration-specs", "8", "--calibration-rounds", "2", "--seed", str(SEED), "--quiet", "--out", str(folder)]


def calls(state: Path) -> int:
    return int(state.read_text()) if state.exists() else 0


def rows(folder: Path, name: str = "entries.csv") -> int:
    path = folder / name
    return max(0, len(path.read_bytes().splitlines()) - 1) if path.exists() else 0


def complete(folder: Path) -> dict[str, bytes]:
    """Each CSV up to its last newline: what must survive any interruption."""
    out = {}
    for name in CSV_FILES:
        data = (folder / name).read_bytes() if (folder / name).exists() else b""
        out[name] = data[: data.rfind(b"\n") + 1]
    return out


def kept(before: dict[str, bytes], folder: Path) -> bool:
    now = complete(folder)
    return all(now[name].startswith(data) for name, data in before.items())


def run(folder: Path, state: Path, fault: str | None = None, kill_at_rows: int | None = None) -> dict:
    """One ``latency build`` run: exit code, stderr lines, wall and CPU seconds, device calls."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "MOBILENAS_STANDIN_STATE": str(state)}
    env.pop("MOBILENAS_STANDIN_FAULT", None)
    if fault:
        kind, offset = fault.split("@")
        env["MOBILENAS_STANDIN_FAULT"] = f"{kind}@{calls(state) + int(offset)}"
    first_call, usage, start = calls(state), resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    process = subprocess.Popen(build_command(folder), cwd=REPO, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    if kill_at_rows is not None:
        while process.poll() is None and rows(folder) < kill_at_rows:
            time.sleep(0.5)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
    stdout, stderr = process.communicate()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (usage.ru_utime + usage.ru_stime)
    return {"exit_code": process.returncode, "stderr_lines": len(stderr.strip().splitlines()),
            "stderr": stderr.strip(), "stdout": stdout.strip(), "wall_s": round(time.perf_counter() - start, 1),
            "cpu_s": round(cpu, 1), "device_calls": calls(state) - first_call, "entries": rows(folder),
            "calibration_rows": rows(folder, "calibration.csv")}


def straight(work: Path) -> dict:
    folder, state = work / "straight", work / "straight.calls"
    result = run(folder, state)
    result["seconds_per_call"] = round(result["wall_s"] / max(1, result["device_calls"]), 3)
    print(f"straight build: {result['wall_s']} s wall, {result['cpu_s']} s CPU, {result['device_calls']} device calls, "
          f"{result['entries']} layers, {result['calibration_rows']} calibration models (exit {result['exit_code']})")
    return result


def interrupted(work: Path) -> dict:
    """Garbage, disconnect, SIGKILL, resume: the same folder, every earlier row checked after each."""
    folder, state = work / "interrupted", work / "interrupted.calls"
    steps = {}
    plan = (("garbage", "nan@15", None), ("disconnect", "disconnect@30", None), ("sigkill", None, 20), ("resume", None, None))
    for name, fault, extra_rows in plan:
        before = complete(folder) if folder.exists() else {n: b"" for n in CSV_FILES}
        rows_before = rows(folder)
        step = run(folder, state, fault, None if extra_rows is None else rows_before + extra_rows)
        step.update(rows_before=rows_before, earlier_rows_kept=kept(before, folder))
        steps[name] = step
        print(f"{name}: exit {step['exit_code']}, {step['stderr_lines']} stderr line(s), layers {rows_before} -> "
              f"{step['entries']}, earlier rows kept: {step['earlier_rows_kept']}, {step['device_calls']} calls, "
              f"{step['wall_s']} s" + (f"\n  {step['stderr']}" if step["stderr"] else ""))
    final, reference = (pd.read_csv(f / "entries.csv") for f in (folder, work / "straight"))
    keys = [list(map(tuple, frame[list(KEY_COLUMNS)].astype(str).to_numpy())) for frame in (final, reference)]
    steps["summary"] = {"final_entries": len(final), "straight_entries": len(reference),
                        "duplicate_keys": len(keys[0]) - len(set(keys[0])), "same_keys_as_straight": set(keys[0]) == set(keys[1]),
                        "total_wall_s": round(sum(s["wall_s"] for s in steps.values()), 1),
                        "total_device_calls": sum(s["device_calls"] for s in steps.values())}
    print(f"resumed table: {steps['summary']}")
    return steps


def header() -> dict:
    import numpy
    import onnxruntime
    import torch

    return {"command": " ".join([Path(sys.executable).name, *sys.argv]), "build_command": build_command(Path("OUT")),
            "seed": SEED, "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "versions": {"python": platform.python_version(), "onnxruntime": onnxruntime.__version__,
                         "numpy": numpy.__version__, "torch": torch.__version__},
            "host_fingerprint": device_fingerprint(), "load_average_start": list(os.getloadavg())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/mobilenas-bench-standin"))
    parser.add_argument("--out", type=Path, default=REPO / "results" / "platforms" / "standin.json")
    args = parser.parse_args()
    if args.work.exists() and any(args.work.iterdir()):
        raise SystemExit(f"--work {args.work} is not empty; give an empty or new folder")
    args.work.mkdir(parents=True, exist_ok=True)
    report = {"header": header()}
    report["straight"] = straight(args.work)
    report["interrupted"] = interrupted(args.work)
    report["header"]["load_average_end"] = list(os.getloadavg())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
