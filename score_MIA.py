#!/usr/bin/env python
"""Score the sentence sets under the target and reference models and print the risk tables.

    python score_MIA.py --demo
    python score_MIA.py --target MODEL_DIR --reference REF_DIR [--config configs/default.yaml]
"""

import sys

from mlm_mia.cli.common import run_main
from mlm_mia.cli.score import main

if __name__ == "__main__":
    sys.exit(run_main(main))
