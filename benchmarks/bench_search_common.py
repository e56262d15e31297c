"""Shared pieces of the search benchmarks: one latency table for all of them, and a resumable
``mobilenas search`` call (a killed benchmark reruns and continues each search with --resume).

Working state lives in ``results/runs/bench-search/`` (git-ignored); figures in ``results/search/``.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WORK = ROOT / "results" / "runs" / "bench-search"
RESULTS = ROOT / "results" / "search"
TABLE = WORK / "table"
DATA = "mnist-rot-back-image"
MOBILENAS = [str(ROOT / ".venv" / "bin" / "mobilenas")]


def ensure_bench_table() -> Path:
    """The lazy latency table every search benchmark prices with (1x32x32 input, 10 classes),
    its calibration refitted from the stored measurements by the current ``latency`` code (the
    first bench run's table was fitted before the calibration's intercept was kept >= 0)."""
    from latency.build import TableBuilder
    from latency.lazy import ensure_table
    from latency.registry import measurer_from_recorded
    from latency.table import read_manifest
    from search_spaces.encoding import parse_spec

    WORK.mkdir(parents=True, exist_ok=True)
    folder, message = ensure_table(TABLE, space="mnasnet", resolution=32, in_channels=1, num_classes=10)
    manifest = read_manifest(folder)
    builder = TableBuilder(folder, measurer_from_recorded(manifest["measurer"]), parse_spec(manifest["reference"]["spec"]),
                           space=manifest["space"], space_input=(1, 10))
    calibration = builder.finish().manifest["calibration"]["32"]
    print(message, "| calibration:", {k: calibration[k] for k in ("features", "coef", "intercept_ms")}, flush=True)
    return folder


def calibration_tag() -> str:
    """A short hash of the table's calibration (caches of predictions depend on it)."""
    import hashlib

    from latency.table import read_manifest

    text = json.dumps(read_manifest(TABLE)["calibration"], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _record(name: str) -> Path:
    return WORK / f"{name}.run.json"


def run_search(name: str, args: list[str]) -> dict:
    """Run ``mobilenas search ARGS --json`` once under ``name``: a finished run is read back, an
    unfinished one resumed. Returns the summary plus the command's wall time(s) and manifest."""
    record = _record(name)
    state = json.loads(record.read_text()) if record.is_file() else {}
    run_dir = state.get("run_dir")
    if run_dir and _finished(Path(run_dir)):
        return _result(Path(run_dir), state)
    command = MOBILENAS + ["search", *args, "--table", str(TABLE), "--out", str(WORK / "runs"), "--json"]
    if run_dir:
        command = MOBILENAS + ["search", "--resume", run_dir, "--json"]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    for line in process.stderr:
        print(f"[{name}] {line}", end="", flush=True)
        if line.startswith("search: run folder "):
            state["run_dir"] = line.split("search: run folder ", 1)[1].strip()
            record.write_text(json.dumps(state))
    out = process.stdout.read()
    if process.wait() != 0:
        raise SystemExit(f"{name}: mobilenas search exited {process.returncode}: {out.strip()[-500:]}")
    state.setdefault("command_wall_s", []).append(round(time.perf_counter() - start, 2))
    record.write_text(json.dumps(state))
    return _result(Path(state["run_dir"]), state)


def _finished(run_dir: Path) -> bool:
    manifest = run_dir / "manifest.json"
    return manifest.is_file() and json.loads(manifest.read_text())["status"] == "finished"


def _result(run_dir: Path, state: dict) -> dict:
    manifest = json.loads((run_dir / "manifest.json").read_text())
    return {**manifest["summary"], "command_wall_s": state.get("command_wall_s", []),
            "sessions": manifest.get("sessions", []), "config": manifest["config"]}


def write_json(path: Path, data: dict) -> None:
    from storage.statefiles import write_text_atomic

    RESULTS.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(data, indent=1) + "\n")


def sampled_latencies(n: int = 30, seed: int = 123) -> list[float]:
    """Predicted latencies (ms, from the bench table) of ``n`` specs sampled uniformly from the
    space at the search's shape; cached in the work folder."""
    cache = WORK / f"sampled_latencies_n{n}_s{seed}_{calibration_tag()}.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    import numpy as np

    from latency.lazy import LazyPredictor
    from search_spaces.mnasnet_space import MnasNetSpace

    space = MnasNetSpace(resolution=32, in_channels=1, num_classes=10)
    rng = np.random.default_rng(seed)
    specs = [space.decode(space.sample_indices(rng)) for _ in range(n)]
    values = LazyPredictor(TABLE).predict_many(specs)
    cache.write_text(json.dumps(values))
    return values


def percentile_targets(quantiles: tuple[int, ...] = (20, 50, 80)) -> dict[int, float]:
    import numpy as np

    values = sampled_latencies()
    return {q: round(float(np.percentile(values, q)), 4) for q in quantiles}
