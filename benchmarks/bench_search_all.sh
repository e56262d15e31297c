#!/bin/sh
# All search benchmarks, each under the shared benchmark lock; resumable (rerun to continue).
#   nohup sh benchmarks/bench_search_all.sh > results/runs/bench-search/all.log 2>&1 &
cd "$(dirname "$0")/.." || exit 1
mkdir -p results/runs/bench-search
for script in bench_search_overhead.py bench_search_target.py bench_search_strategies.py; do
    echo "== $script $(date -u +%H:%M:%S)"
    flock /tmp/mobilenas-bench.lock .venv/bin/python "benchmarks/$script" || echo "!! $script failed"
done
echo "== done $(date -u +%H:%M:%S)"
