"""Few-shot supernets (Zhao et al., "Few-shot Neural Architecture Search", ICML 2021) against
one supernet trained as long, ranked against stand-alone training.

Weight sharing scrambles rankings because sub-networks that compute different things share one
weight. Few-shot NAS splits the supernet on a decision: one copy of the trained supernet per
choice, each trained further only on the sub-networks with that choice; a candidate is scored by
the copy of its choice. Here the split decision is the op (MBConv3 or MBConv6, the expansion)
of the first ``--split-stages`` stages, where the feature maps are largest: 2 ** stages copies.

From a finished supernet run (``mobilenas supernet train``), each copy continues for
``--epochs`` of single-path uniform sampling (SPOS) restricted to its part; the control continues
one copy on the whole space for (number of parts) x ``--epochs``, the same steps in all. Both are
scored on the specs of ``bench_standalone_runs.py train`` (Kendall's tau against the stand-alone
mean of two seeds, the evaluator's BatchNorm recalibration on 256 training images).

    python benchmarks/bench_supernet_fewshot.py --supernet results/runs/bench-supernet-v3small/<run> \
        --standalone-runs results/search/standalone_runs_v3small_cpu.csv --split-stages 1 --epochs 8 \
        --out results/search/supernet_fewshot_v3small_e8_s0_split1.json
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench_supernet_fidelity import DATA, correlations, runs_table  # noqa: E402
from nas.supernet_eval import CALIBRATION_IMAGES, SupernetEvaluator, calibration_images, load_supernet_run  # noqa: E402
from nas.supernet_train import SAMPLE_PURPOSE, SupernetConfig, SupernetTrainer  # noqa: E402
from search_spaces.encoding import parse_spec  # noqa: E402
from search_spaces.mnasnet_space import DECISION_NAMES, DECISIONS_PER_STAGE  # noqa: E402
from training.datasets import load_dataset  # noqa: E402
from training.evaluate import adapt_spec  # noqa: E402

OP = DECISION_NAMES.index("op")


class PartTrainer(SupernetTrainer):
    """Continues a trained supernet with uniform single paths whose decisions ``fixed``
    (position -> choice index) are held."""

    def __init__(self, config: SupernetConfig, data, start: dict, fixed: dict[int, int]) -> None:
        super().__init__(config, data)
        self.start, self.fixed = start, fixed

    def _setup(self, device: torch.device) -> None:
        super()._setup(device)
        self.net.load_state_dict(self.start)

    def sample_layouts(self, step: int):
        rng = np.random.default_rng(np.random.SeedSequence([self.config.seed, SAMPLE_PURPOSE, step]))
        indices = list(self.net.space.sample_indices(rng))
        for position, choice in self.fixed.items():
            indices[position] = choice
        return [self.net.layout(self.net.space.canonicalize(indices))]


def continue_training(start: dict, fixed: dict[int, int], config: SupernetConfig, data) -> tuple[object, float]:
    trainer = PartTrainer(config, data, start, fixed)
    tick = time.perf_counter()
    trainer.fit()
    return trainer.net.cpu().eval(), time.perf_counter() - tick


def scores(net, archs: list[str], data, seed: int) -> list[float]:
    evaluator = SupernetEvaluator(net, data, calibration_images(data, CALIBRATION_IMAGES, seed), threads=1)
    return [evaluator.evaluate(parse_spec(arch)).top1 for arch in archs]


def figures(reference: np.ndarray, values: list[float]) -> dict:
    kendall, spearman = correlations(reference, np.asarray(values))
    return {"kendall": kendall, "spearman": spearman, "top1": [round(v, 4) for v in values]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--supernet", required=True, help="a finished mobilenas supernet train run (the start)")
    parser.add_argument("--standalone-runs", type=Path, required=True)
    parser.add_argument("--specs", type=int, default=20)
    parser.add_argument("--split-stages", type=int, default=1, help="split on the op of this many first stages")
    parser.add_argument("--epochs", type=int, default=8, help="uniform epochs per part (the control: parts x this)")
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset(DATA, resolution=32, split_seed=0)
    table = runs_table(args.standalone_runs, args.specs)
    archs, reference = list(table["arch"]), ((table["standalone_seed0"] + table["standalone_seed1"]) / 2).to_numpy()
    manifest = json.loads((Path(args.supernet) / "manifest.json").read_text())
    space, seed = manifest["config"]["space"], int(manifest["config"]["seed"])
    start_net, source = load_supernet_run(args.supernet, space=space, data=data)
    start = {k: v.clone() for k, v in start_net.state_dict().items()}
    positions = [stage * DECISIONS_PER_STAGE + OP for stage in range(args.split_stages)]
    indices = [start_net.space.encode(adapt_spec(parse_spec(arch), data)) for arch in archs]
    parts = list(itertools.product(range(2), repeat=args.split_stages))
    base = SupernetConfig(space=space, data=DATA, rule="uniform", lr=args.lr, warmup_epochs=0.0, seed=seed,
                          threads=args.threads, device="cpu", eval_every_epochs=10 ** 6)
    result = {"supernet": source, "n_specs": len(archs), "split_on": [f"op of stage {s + 1}" for s in range(args.split_stages)],
              "epochs_per_part": args.epochs, "lr": args.lr, "parts": {}}
    result["start"] = figures(reference, scores(start_net, archs, data, seed))
    control, control_s = continue_training(start, {}, replace(base, epochs=args.epochs * len(parts)), data)
    result["control"] = {**figures(reference, scores(control, archs, data, seed)), "train_s": control_s,
                         "epochs": args.epochs * len(parts)}
    few = np.full(len(archs), np.nan)
    for part in parts:
        fixed = dict(zip(positions, part))
        net, seconds = continue_training(start, fixed, replace(base, epochs=args.epochs), data)
        members = [i for i, ix in enumerate(indices) if all(ix[p] == c for p, c in fixed.items())]
        few[members] = scores(net, [archs[i] for i in members], data, seed)
        result["parts"][str(part)] = {"specs": len(members), "train_s": seconds}
    result["few_shot"] = {**figures(reference, few.tolist()), "train_s": sum(p["train_s"] for p in result["parts"].values())}
    result["command"] = "python " + " ".join(sys.argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: {"kendall": result[k]["kendall"], "spearman": result[k]["spearman"]}
                      for k in ("start", "control", "few_shot")}))


if __name__ == "__main__":
    main()
