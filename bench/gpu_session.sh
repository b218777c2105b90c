#!/usr/bin/env bash
# The whole GPU check in one device call (see bench/NOTES.md): the engine's tests with the
# engine on the GPU, then the benchmark. Needs the wheels of bench/gpu_wheels.sh in .whl
# (carried), and $OUT, where the results are written:
#   run(command="bash bench/gpu_session.sh", carry=[".whl"])
set -uo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
MLM_MIA_TEST_DEVICE=cuda python3 -m pytest -q -p no:cacheprovider tests/test_pll.py 2>&1 \
    | tee "$OUT/test_pll_cuda.log"
tests=$?
python3 bench/bench_pll.py --json "$OUT/bench_pll.json" 2>&1 | tee "$OUT/bench_pll.log"
bench=$?
echo "tests exit $tests, bench exit $bench"
exit $(( tests || bench ))
