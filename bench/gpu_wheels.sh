#!/usr/bin/env bash
# Wheels the GPU machine lacks, for `bench/bench_pll.py` there (see bench/NOTES.md).
# Its image has PyTorch but transformers 5, which minicons 0.3.39 cannot use, and no
# minicons. Run here, in the repo root; carry `.whl` and install it there first:
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
#   export PYTHONPATH=/tmp/site
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl transformers==4.57.6 huggingface_hub==0.36.0 tokenizers==0.22.2 minicons==0.3.39 \
    wonderwords==3.0.1
ls .whl
