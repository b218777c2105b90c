#!/usr/bin/env python
"""Sample the members / non-members / externals sentence sets by patient.

    python prepare_data_MIA.py                      # built-in synthetic corpus
    python prepare_data_MIA.py --split NOTEEVENTS.csv.gz --n2c2 n2c2/ --out-dir data/
"""

import sys

from mlm_mia.cli.common import run_main
from mlm_mia.cli.prepare import main

if __name__ == "__main__":
    sys.exit(run_main(main))
