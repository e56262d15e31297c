"""Where a supernet's ranking error comes from: evaluation noise, the supernet's own training
seed, or a bias that neither averages away (Sciuto et al., ICLR'20, "Evaluating the search
phase of NAS", measure the ranking; this splits it).

For each finished supernet run and each spec of the stand-alone reference
(``bench_standalone_runs.py train`` rows), every validation image's correctness is recorded
after BatchNorm recalibration on ``--draws`` different draws of training images (the
evaluator's own draw is draw 0). From those, without training anything:

- ``kendall_split_half``: Kendall's tau between the specs' top-1 on two random halves of the
  validation images (median over ``--splits`` splits): how well the images alone pin the order;
- ``kendall_between_draws``: the same between two calibration draws on all images (median over
  pairs): how much the BatchNorm recalibration moves it;
- ``kendall_vs_standalone``: against the stand-alone mean of two seeds, with draw 0 (what the
  evaluator returns) and with the draws averaged;
- across runs of the same settings and another seed: ``kendall_between_supernets`` and the
  figure of their averaged top-1 against the stand-alone (an ensemble of supernets).

Each figure for two scores: top-1 (``top1_...``, what the evaluator returns) and the mean
log-probability of the true label (``log_p_...``): a continuous score, so a few hundred images
separate close models better than counting right answers does.

    python benchmarks/bench_supernet_reliability.py --supernets RUN_E8_S0 RUN_E8_S1 \
        --standalone-runs results/search/standalone_runs_v3small_cpu.csv \
        --out results/search/supernet_reliability_v3small.json
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.stats import kendalltau  # noqa: E402

from bench_supernet_fidelity import DATA, runs_table  # noqa: E402
from nas.supernet_eval import CALIBRATION_IMAGES, calibration_images, load_supernet_run, recalibrate  # noqa: E402
from search_spaces.encoding import parse_spec  # noqa: E402
from training.datasets import load_dataset  # noqa: E402
from training.evaluate import adapt_spec  # noqa: E402

RESULTS = ROOT / "results" / "search"


@torch.no_grad()
def correctness(run: str, archs: list[str], data, draws: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """Two ``(draws, specs, images)`` arrays: each validation image right or wrong, and the
    log-probability of its label, per spec and calibration draw (draw d uses the evaluator's
    images of seed d)."""
    net, source = load_supernet_run(run, space=_space(run), data=data)
    net = net.to(memory_format=torch.channels_last)
    x_val, y_val = data.x_val.contiguous(memory_format=torch.channels_last), data.y_val
    layouts = [net.layout_of(adapt_spec(parse_spec(arch), data)) for arch in archs]
    right = np.zeros((draws, len(archs), len(y_val)), dtype=bool)
    log_p = np.zeros((draws, len(archs), len(y_val)), dtype=np.float32)
    for d in range(draws):
        images = calibration_images(data, CALIBRATION_IMAGES, d).contiguous(memory_format=torch.channels_last)
        for s, layout in enumerate(layouts):
            recalibrate(net, layout, images)
            net.eval()
            logits = net(x_val, layout)
            right[d, s] = (logits.argmax(1) == y_val).numpy()
            log_p[d, s] = logits.log_softmax(1).gather(1, y_val[:, None])[:, 0].numpy()
    return right, log_p, source


def _space(run: str) -> str:
    return json.loads((Path(run) / "manifest.json").read_text())["config"]["space"]


def tau(a: np.ndarray, b: np.ndarray) -> float:
    return float(kendalltau(a, b).statistic)


def split_half(right: np.ndarray, splits: int, seed: int) -> float:
    """Median tau between the specs' mean (top-1, or log-probability) on two random halves of
    the images (draw 0)."""
    rng = np.random.default_rng(seed)
    images = right.shape[-1]
    taus = []
    for _ in range(splits):
        half = rng.permutation(images)[: images // 2]
        mask = np.zeros(images, dtype=bool)
        mask[half] = True
        taus.append(tau(right[0][:, mask].mean(1), right[0][:, ~mask].mean(1)))
    return float(np.median(taus))


def run_figures(per_image: np.ndarray, reference: np.ndarray, splits: int, prefix: str = "") -> dict:
    """The module docstring's figures of one score (``per_image``: draws x specs x images)."""
    score = per_image.mean(-1)  # (draws, specs)
    between = [tau(score[a], score[b]) for a, b in itertools.combinations(range(len(score)), 2)]
    return {f"{prefix}kendall_split_half": split_half(per_image, splits, 0),
            f"{prefix}kendall_between_draws": float(np.median(between)) if between else None,
            f"{prefix}kendall_vs_standalone": tau(reference, score[0]),
            f"{prefix}kendall_vs_standalone_draws_averaged": tau(reference, score.mean(0)),
            f"{prefix}draw0": score[0].round(4).tolist(), f"{prefix}draws_averaged": score.mean(0).round(4).tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--supernets", nargs="+", required=True, help="finished supernet runs (same settings, other seeds)")
    parser.add_argument("--standalone-runs", type=Path, required=True, help="rows of bench_standalone_runs.py train")
    parser.add_argument("--specs", type=int, default=20)
    parser.add_argument("--draws", type=int, default=3, help="calibration draws per spec")
    parser.add_argument("--splits", type=int, default=200, help="random half-splits of the validation images")
    parser.add_argument("--out", type=Path, default=RESULTS / "supernet_reliability.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_dataset(DATA, resolution=32, split_seed=0)
    table = runs_table(args.standalone_runs, args.specs)
    reference = ((table["standalone_seed0"] + table["standalone_seed1"]) / 2).to_numpy()
    start, runs, averaged, averaged_log_p = time.perf_counter(), {}, [], []
    for run in args.supernets:
        right, log_p, source = correctness(run, list(table["arch"]), data, args.draws)
        runs[source["run_id"]] = {**run_figures(right, reference, args.splits, "top1_"),
                                  **run_figures(log_p, reference, args.splits, "log_p_"),
                                  "epochs": source["epochs"], "rule": source["rule"]}
        averaged.append(right.mean(-1).mean(0))
        averaged_log_p.append(log_p.mean(-1).mean(0))
    result = {"n_specs": len(table), "validation_images": int(len(data.y_val)), "draws": args.draws,
              "calibration_images": CALIBRATION_IMAGES, "splits": args.splits, "runs": runs,
              "kendall_ceiling_standalone": tau(table["standalone_seed0"].to_numpy(), table["standalone_seed1"].to_numpy()),
              "standalone_mean": reference.round(4).tolist(), "spec_ids": list(table.index),
              "eval_s": time.perf_counter() - start, "command": "python " + " ".join(sys.argv)}
    if len(averaged) > 1:
        pairs = [tau(a, b) for a, b in itertools.combinations(averaged, 2)]
        result["kendall_between_supernets"] = float(np.median(pairs))
        result["kendall_vs_standalone_supernets_averaged"] = tau(reference, np.mean(averaged, axis=0))
        pairs = [tau(a, b) for a, b in itertools.combinations(averaged_log_p, 2)]
        result["log_p_kendall_between_supernets"] = float(np.median(pairs))
        result["log_p_kendall_vs_standalone_supernets_averaged"] = tau(reference, np.mean(averaged_log_p, axis=0))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    summary = {k: v for k, v in result.items() if "kendall" in k}
    summary["runs"] = {k: {f: v[f] for f in v if "kendall" in f} for k, v in runs.items()}
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
