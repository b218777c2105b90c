"""What every script shares: logging set-up and turning bad input into a clean exit."""

from __future__ import annotations

import logging
import sys
from typing import Callable

from .errors import InputError


def run_main(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run a script's ``main``; an :class:`InputError` becomes one line on stderr and exit 2."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    prog = sys.argv[0].rsplit("/", 1)[-1] or "mlm_mia"
    try:
        return main(argv)
    except InputError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; no partial outputs were written", file=sys.stderr)
        return 130
