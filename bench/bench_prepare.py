#!/usr/bin/env python
"""Time and peak memory of a full preparation run on a large synthetic NOTEEVENTS.

    python bench/bench_prepare.py [--gb 1.0] [--work DIR] [--workers 1 2]

Writes an uncompressed NOTEEVENTS.csv of at least ``--gb`` GB (the real file is about
4 GB), then runs ``prepare_data_MIA.py --split`` on it (split, two streaming passes per
input, sampling) in a child process once per ``--workers`` value and prints wall time,
the child's peak RSS, and whether the outputs are the same byte for byte.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mlm_mia.data import synthetic  # noqa: E402

PATIENTS_PER_GB = 200_000  # about 5 KB of notes per synthetic patient


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0)
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "prepare")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    notes = args.work / "NOTEEVENTS.csv"
    start = time.perf_counter()
    n_patients = int(args.gb * PATIENTS_PER_GB)
    while not (notes.exists() and notes.stat().st_size >= args.gb * 1e9):
        with open(notes, "w", encoding="utf-8", newline="") as handle:
            synthetic.write_noteevents(handle, n_patients, seed=1)
        if notes.stat().st_size < args.gb * 1e9:
            n_patients = int(n_patients * args.gb * 1e9 / notes.stat().st_size * 1.05) + 1
    n2c2 = args.work / "n2c2"
    if not n2c2.exists():
        synthetic.write_n2c2(n2c2, 120, seed=1)
    size = notes.stat().st_size
    print(f"{notes.name}: {size / 1e9:.2f} GB ({time.perf_counter() - start:.0f} s to generate)")

    outputs = {}
    for workers in args.workers:
        out = args.work / f"sets_{workers}"
        command = [sys.executable, str(ROOT / "prepare_data_MIA.py"), "--split", str(notes),
                   "--n2c2", str(n2c2), "--out-dir", str(out), "--workers", str(workers),
                   # 200k synthetic patients share many template sentences with the training
                   # half, which non-members must avoid: take what is there, as recorded
                   "--allow-fewer"]
        start = time.perf_counter()
        subprocess.run(command, check=True)
        elapsed = time.perf_counter() - start
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        # the manifest names its own out-dir: compared with that name taken out
        outputs[workers] = {p.name: p.read_bytes().replace(str(out).encode(), b"OUT")
                            for p in sorted(out.rglob("*")) if p.is_file()}
        print(f"prepare_data_MIA.py --split --workers {workers} on {size / 1e9:.2f} GB: {elapsed:.0f} s "
              f"wall, {size / 1e6 / elapsed:.1f} MB/s, peak RSS so far {peak_mb:.0f} MB", flush=True)
    first = next(iter(outputs.values()))
    print("outputs the same byte for byte:", all(o == first for o in outputs.values()))


if __name__ == "__main__":
    main()
