"""Membership inference against masked language models trained on clinical notes."""

import os

# Never reach a model or dataset hub: every model is a local directory. Set before
# transformers / huggingface_hub / datasets are imported, since they read these once.
for _flag in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_flag, "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

__version__ = "0.1.0"
