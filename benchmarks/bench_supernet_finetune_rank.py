"""Ranking by a short fine-tuning from inherited weights, against the supernet's own score and
stand-alone training: what a few steps of training per candidate buy in ranking fidelity, and
at what cost a candidate.

For each spec of ``bench_standalone_runs.py train`` (stand-alone mean of two seeds, 30 epochs)
the supernet's sub-network is extracted with BatchNorm recalibrated (what the ``supernet``
evaluator scores), then fine-tuned for each of ``--steps`` optimizer steps with the fine-tuning
recipe (``training.evaluate.finetune``: SGD, lr 0.01, cosine, batch 64, one thread) and scored
on the validation split. Kendall's tau and Spearman's rho against the stand-alone mean, and the
median wall seconds a candidate (extraction + fine-tuning + evaluation), beside the 2-epoch
proxy's 6.5-7.3 s (``supernet_fidelity_v3small_*.json``).

    python benchmarks/bench_supernet_finetune_rank.py --supernet results/runs/bench-supernet-v3small/<run> \
        --standalone-runs results/search/standalone_runs_v3small_cpu.csv --steps 10 39 78 \
        --out results/search/supernet_finetune_rank_v3small_e8_s0.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench_supernet_fidelity import DATA, correlations, runs_table  # noqa: E402
from nas.supernet_eval import SupernetEvaluator, trained_space  # noqa: E402
from search_spaces.encoding import parse_spec  # noqa: E402
from training.datasets import load_dataset  # noqa: E402
from training.evaluate import Budget, finetune  # noqa: E402


def rank(reference: np.ndarray, values: list[float]) -> dict:
    kendall, spearman = correlations(reference, np.asarray(values))
    return {"kendall": kendall, "spearman": spearman}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--supernet", required=True)
    parser.add_argument("--standalone-runs", type=Path, required=True)
    parser.add_argument("--specs", type=int, default=20)
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 39, 78], help="fine-tuning steps (39 = one epoch)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_dataset(DATA, resolution=32, split_seed=0)
    table = runs_table(args.standalone_runs, args.specs)
    reference = ((table["standalone_seed0"] + table["standalone_seed1"]) / 2).to_numpy()
    evaluator = SupernetEvaluator.from_run(args.supernet, data, space=trained_space(args.supernet))
    rows = {"supernet": [], **{n: [] for n in args.steps}}
    seconds = {"supernet": [], **{n: [] for n in args.steps}}
    for arch in table["arch"]:
        spec = parse_spec(arch)
        tick = time.perf_counter()
        rows["supernet"].append(evaluator.evaluate(spec).top1)
        weights = evaluator.subnet_weights(spec)
        extracted = time.perf_counter() - tick
        seconds["supernet"].append(extracted)
        for n in args.steps:
            tick = time.perf_counter()
            result, _ = finetune(spec, weights, data, Budget(steps=n), seed=0, threads=1, device="cpu")
            rows[n].append(result.top1)
            seconds[n].append(extracted + time.perf_counter() - tick)
    result = {"n_specs": len(table), "supernet": evaluator.describe(),
              "rankers": {str(k): {**rank(reference, v), "s_per_candidate": float(np.median(seconds[k])),
                                   "top1": [round(x, 4) for x in v]} for k, v in rows.items()},
              "threads": 1, "command": "python " + " ".join(sys.argv)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: {f: round(v[f], 3) for f in ("kendall", "spearman", "s_per_candidate")}
                      for k, v in result["rankers"].items()}))


if __name__ == "__main__":
    main()
