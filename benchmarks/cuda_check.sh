#!/usr/bin/env bash
# CUDA smoke check of the trainer (`--device cuda` / `--device auto`), run on a GPU machine:
#   bash benchmarks/cuda_check.sh OUT_DIR
# Trains MobileNetV3-Small on the embedded digits data for 5 epochs twice with the same seed
# (reproducibility on CUDA) and once with --device auto, and records the JSON reports.
set -euo pipefail
out=${1:?usage: cuda_check.sh OUT_DIR}
mkdir -p "$out"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
python3 - <<'PY' | tee "$out/env.txt"
import torch, onnxruntime, numpy, pandas
print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")
print("onnxruntime", onnxruntime.__version__, "numpy", numpy.__version__, "pandas", pandas.__version__)
PY
for run in cuda_a cuda_b; do
  python3 -m mobilenas train mobilenetv3-small --data digits --epochs 5 --device cuda --seed 0 \
    --latency-repeats 50 --out /tmp/mnas_runs --json | tee "$out/$run.json"
done
python3 -m mobilenas train mobilenetv3-small --data digits --epochs 1 --device auto --seed 0 \
  --latency-repeats 20 --out /tmp/mnas_runs --json | tee "$out/auto.json"
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
a, b, auto = (json.load(open(f"{out}/{n}.json")) for n in ("cuda_a", "cuda_b", "auto"))
summary = {"device_a": a["device"], "device_auto": auto["device"], "top1_a": a["top1"], "top1_b": b["top1"],
           "same_seed_same_top1": a["top1"] == b["top1"], "images_per_s_cuda": a["images_per_s"]}
print(json.dumps(summary))
json.dump(summary, open(f"{out}/summary.json", "w"), indent=1)
PY
