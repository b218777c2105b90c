#!/usr/bin/env bash
# The whole GPU measurement in one device call (see bench/NOTES.md). Needs the wheels of
# bench/gpu_wheels.sh in .whl (carried), and $OUT, where the results are written:
#   run(command="bash bench/gpu_session.sh", carry=[".whl"])
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
python3 bench/bench_pll.py --json "$OUT/bench_pll.json" 2>&1 | tee "$OUT/bench_pll.log"
