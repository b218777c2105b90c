"""What a reader of a run's results needs to know besides the numbers: when and how it ran,
with which tool and library versions, on which models (their digests), on what device and
dtype (as resolved, never "auto"), which attacks ran, and, for the demo, that its data are synthetic. settings.json's ``run``; report.html shows it."""

from __future__ import annotations

import platform
import shlex
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Sequence

from .. import __version__

# the libraries whose versions the numbers may depend on (distribution names)
LIBRARIES = ("torch", "transformers", "numpy", "pandas", "scikit-learn", "scipy", "matplotlib")
DTYPE_NAMES = {"torch.float32": "fp32", "torch.bfloat16": "bf16", "torch.float16": "fp16"}
SYNTHETIC = ("synthetic: the demo's built-in generated corpus (no real patient's notes) and two tiny "
             "models trained on it here")


def versions() -> dict[str, str]:
    """The tool's, Python's and each library's installed version ("absent" when not installed)."""
    found = {"mlm_mia": __version__, "python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def run_context(argv: Sequence[str], target, backend: str, attacks_run: Sequence[str], demo: bool) -> dict:
    """settings.json's ``run``: ``target`` is the target's ModelDir (its resolved device and
    dtype, and its digest); the minicons backend always scores in fp32."""
    dtype = "fp32" if backend == "minicons" else DTYPE_NAMES.get(str(target.dtype), str(target.dtype))
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join([Path(argv[0]).name, *argv[1:]]) if argv else "",
        "versions": versions(),
        "device": str(target.device), "dtype": dtype,
        "target_sha256": target.fingerprint,
        "attacks_run": list(attacks_run),  # those left out, with why: settings.json's attacks_left_out
        "data": SYNTHETIC if demo else "the sets in the data folder (sets_sha256)",
    }
