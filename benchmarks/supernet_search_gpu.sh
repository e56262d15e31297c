#!/usr/bin/env bash
# The search-at-scale comparison (bench_supernet_search.py) on a GPU machine: one process per
# seed in parallel, each scoring its candidates on the GPU, then the per-seed files merged.
#   bash benchmarks/supernet_search_gpu.sh SUPERNET_RUN OUT_DIR [TRIALS] [BUDGET_S]
# Writes OUT_DIR/supernet_strategies_gpu.json (+ .png) and OUT_DIR/parts.tar.gz (per-seed JSON
# files and logs). Searches still running after BUDGET_S seconds are stopped; the merge then
# holds what finished (each per-seed file is rewritten after every search).
set -uo pipefail
supernet=${1:?usage: supernet_search_gpu.sh SUPERNET_RUN OUT_DIR [TRIALS] [BUDGET_S]}
out=${2:?usage: supernet_search_gpu.sh SUPERNET_RUN OUT_DIR [TRIALS] [BUDGET_S]}
trials=${3:-1000}
budget=${4:-420}
parts=$(mktemp -d)
mkdir -p "$out"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
for seed in 0 1 2 3 4; do
  timeout "$budget" python3 benchmarks/bench_supernet_search.py --supernet "$supernet" --trials "$trials" \
    --seeds "$seed" --strategies random evolution rl --device cuda --work "$parts/runs" \
    --out "$parts/seed$seed.json" >"$parts/seed$seed.log" 2>&1 &
done
wait
tail -n 4 "$parts"/seed*.log
python3 benchmarks/bench_supernet_search.py --merge "$parts"/seed*.json --out "$out/supernet_strategies_gpu.json"
tar -czf "$out/parts.tar.gz" -C "$parts" --exclude runs .
