"""Benchmark: torch CPU training speed by OpenMP wait policy, thread count and memory layout, on a busy machine.

Each configuration trains MobileNetV3-Small (1x28x28, 10 classes, batch 128, SGD) for a few
steps in a fresh process (the OpenMP runtime reads ``OMP_WAIT_POLICY`` once, when torch loads
it): the wait policy unset (libgomp spins a while at every barrier) or ``PASSIVE`` (waiting
threads sleep), 1 or 2 torch threads, contiguous or channels-last tensors. Configurations
alternate round by round, so a slow minute falls on all of them. With the load injector on
(``latency.noise``) unless ``--quiet-machine``. Figures: median training step (ms) and
evaluation batch (ms) over the rounds, with min and max. Writes ``results/training/omp_wait.json``::

    .venv/bin/python benchmarks/bench_omp_wait.py [--rounds 3] [--quiet-machine]
"""
from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from latency.noise import LoadInjector
from storage.statefiles import write_json

CHILD = r"""
import json, sys, time, torch
threads, channels_last, steps = int(sys.argv[1]), sys.argv[2] == "1", int(sys.argv[3])
torch.set_num_threads(threads)
from search_spaces.builder import build_model
from search_spaces.reference import reference_spec
torch.manual_seed(0)
model = build_model(reference_spec("mobilenetv3-small", resolution=28, num_classes=10, in_channels=1))
x, y = torch.randn(128, 1, 28, 28), torch.randint(0, 10, (128,))
if channels_last:
    model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
times = []
for i in range(steps + 2):
    start = time.perf_counter()
    opt.zero_grad(); torch.nn.functional.cross_entropy(model(x), y).backward(); opt.step()
    times.append(time.perf_counter() - start)
model.eval()
with torch.no_grad():
    evals = []
    for _ in range(5):
        start = time.perf_counter(); model(x); evals.append(time.perf_counter() - start)
print(json.dumps({"step_ms": 1000 * sorted(times[2:])[len(times[2:]) // 2], "eval_ms": 1000 * sorted(evals)[2]}))
"""
CONFIGS = [{"policy": p, "threads": t, "channels_last": c}
           for p, t, c in itertools.product(("unset", "PASSIVE"), (1, 2), (False, True))]


def one(config: dict, steps: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if config["policy"] != "unset":
        env["OMP_WAIT_POLICY"] = config["policy"]
    out = subprocess.run([sys.executable, "-c", CHILD, str(config["threads"]), str(int(config["channels_last"])),
                          str(steps)], env=env, capture_output=True, text=True, check=True, timeout=1200)
    return json.loads(out.stdout.strip().splitlines()[-1])


def summary(values: list[float]) -> dict:
    return {"median": float(np.median(values)), "min": float(np.min(values)), "max": float(np.max(values))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--quiet-machine", action="store_true")
    parser.add_argument("--json", default="results/training/omp_wait.json")
    args = parser.parse_args()
    samples: list[list[dict]] = [[] for _ in CONFIGS]
    with contextlib.nullcontext() if args.quiet_machine else LoadInjector(seed=0):
        for round_ in range(args.rounds):
            order = range(len(CONFIGS)) if round_ % 2 == 0 else reversed(range(len(CONFIGS)))
            for index in order:
                samples[index].append(one(CONFIGS[index], args.steps))
            print(f"round {round_ + 1} of {args.rounds} done", flush=True)
    rows = [{**config, "step_ms": summary([s["step_ms"] for s in got]), "eval_ms": summary([s["eval_ms"] for s in got])}
            for config, got in zip(CONFIGS, samples)]
    write_json(Path(args.json), {"injector": not args.quiet_machine, "rounds": args.rounds, "steps": args.steps,
                                 "load_average_at_end": os.getloadavg(), "rows": rows})
    for row in rows:
        print(f"{row['policy']:>7} threads {row['threads']} channels_last {row['channels_last']!s:5}: "
              f"step {row['step_ms']['median']:7.0f} ms [{row['step_ms']['min']:.0f}, {row['step_ms']['max']:.0f}], "
              f"eval {row['eval_ms']['median']:6.0f} ms")


if __name__ == "__main__":
    main()
