#!/usr/bin/env python
"""Recompute the risk metrics from a scores file.

    python metrics.py results/scores.csv [--json metrics.json]

The metric functions themselves live in mlm_mia/metrics.py.
"""

import sys

from mlm_mia.cli.common import run_main
from mlm_mia.cli.metrics import main

if __name__ == "__main__":
    sys.exit(run_main(main))
