"""Membership inference against masked language models trained on clinical notes."""

import os

# Never reach a model or dataset hub: every model is a local directory. Set before
# transformers / huggingface_hub / datasets are imported, since they read these once.
for _flag in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_flag, "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

__version__ = "0.1.0"

# the entry points for notebooks and pipelines, imported when first used (importing the
# package stays light: the scripts' --help loads no model library)
_ENTRY_POINTS = {
    "run_study": ("mlm_mia.study.run", "run_study"),
    "Results": ("mlm_mia.study.run", "Results"),
    "StudySettings": ("mlm_mia.settings.study", "StudySettings"),
    "prepare_sets": ("mlm_mia.data.prepare", "prepare_sets"),
    "PrepareSettings": ("mlm_mia.settings.prepare", "PrepareSettings"),
}
__all__ = ["__version__", *_ENTRY_POINTS]


def __getattr__(name: str):
    if name not in _ENTRY_POINTS:
        raise AttributeError(f"module 'mlm_mia' has no attribute {name!r}")
    import importlib

    module, attribute = _ENTRY_POINTS[name]
    return getattr(importlib.import_module(module), attribute)
