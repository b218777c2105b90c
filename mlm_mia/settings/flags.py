"""What every script shares: logging set-up, argument parsing that fails with one clear
line, YAML settings checked like flags, and turning bad input into a clean exit."""

from __future__ import annotations

import argparse
import errno
import logging
import sys
from pathlib import Path
from typing import Callable

from ..common.errors import InputError


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are :class:`InputError`\ s: one line, exit 2."""

    def error(self, message: str):
        raise InputError(message)


def non_negative_int(value: str) -> int:
    """An ``int`` of at least 0 (seeds, counts), checked when the flag is read."""
    number = int(value)
    if number < 0:
        raise ValueError(value)
    return number


def positive_int(value: str) -> int:
    """An ``int`` of at least 1."""
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


# argparse names the type in its message: "invalid non-negative integer value: '-1'"
non_negative_int.__name__ = "non-negative integer"
positive_int.__name__ = "positive integer"


def bounded(convert: Callable[[str], float], inside: Callable[[float], bool], what: str
             ) -> Callable[[str], float]:
    """A flag type: ``convert`` the text and keep it only when ``inside`` holds; else
    argparse's one line "argument --flag: must be WHAT, not 'TEXT'"."""
    def parse(text: str) -> float:
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not inside(value):  # NaN is never inside
            raise argparse.ArgumentTypeError(f"must be {what}, not {text!r}")
        return value
    return parse


# Every flag that more than one script reads, defined once: the same type, check and
# default for all of them (a script may word its help and metavar its own way)
SHARED_FLAGS: dict[str, dict] = {
    "--seed": dict(type=non_negative_int, default=0),
    "--bootstrap": dict(type=non_negative_int, default=1000,
                        help="bootstrap resamples of patients for the 95%% CIs (1000; 0: none)"),
    "--audit-delta": dict(type=bounded(float, lambda x: 0 <= x < 1, "a number in [0, 1)"), default=0.0,
                          help="with canaries: the delta of the (epsilon, delta) the audit bounds "
                          "(in [0, 1); 0)"),
    "--canaries": dict(type=non_negative_int, default=0, metavar="M"),
    # 10**18 secrets still fit numpy's int64; a wider secret would overflow the draw
    "--canary-digits": dict(type=bounded(int, lambda d: 1 <= d <= 18, "a whole number from 1 to 18"),
                            default=8, help="digits of a secret: 10**D possible secrets (1 to 18; 8)"),
    "--exposure-alternatives": dict(
        type=positive_int, default=100, metavar="N",
        help="with canaries: alternative secrets scored per canary for its exposure (at most "
        "log2(N + 1) bits can be shown; capped at the secrets there are) (100)"),
    "--min-k-fraction": dict(type=bounded(float, lambda x: 0 < x <= 1, "a fraction in (0, 1]"), default=0.2,
                             help="Min-K%% and Min-K%%++: the fraction of a sentence's tokens, the "
                             "lowest int(n x fraction) (at least one) averaged (0.2)"),
    "--rmia-offline-a": dict(type=bounded(float, lambda x: 0 < x <= 1, "a number in (0, 1]"), default=0.3,
                             help="RMIA without shadow models: a in Pr(x) = ((1+a) Pr_ref(x) + (1-a)) "
                             "/ 2, in (0, 1] (0.3; 1: the plain reference likelihood)"),
    "--quiet": dict(action="store_true", default=False, help="warnings and errors only: no progress, no information lines"),
    "--verbose": dict(action="store_true", default=False, help="this tool's debug lines too (the time and rate of "
                      "every stage, the training loss, ...)"),
}


def add_flag(parser: argparse.ArgumentParser | argparse._ArgumentGroup, flag: str, **wording) -> None:
    """Add the shared ``flag`` (:data:`SHARED_FLAGS`) to ``parser``; ``wording`` may give
    its ``help`` and ``metavar`` only, never its type, check or default."""
    if set(wording) - {"help", "metavar"}:
        raise ValueError(f"{flag}: only help and metavar are a script's own")
    parser.add_argument(flag, **(SHARED_FLAGS[flag] | wording))


def distinct_ints(text: str, flag: str, minimum: int, what: str) -> tuple[int, ...]:
    """A flag's comma-separated list of distinct whole numbers of at least ``minimum``;
    anything else is one :class:`InputError` saying ``what`` to give."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or min(values) < minimum or len(set(values)) < len(values):
        raise InputError(f"{flag} {text!r}: give {what} separated by commas")
    return values


def yaml_mapping(path: Path, where: str, entries: str, empty_ok: bool = False) -> dict:
    """The mapping a YAML file holds; a missing, unreadable or malformed file, or one that
    is not a mapping of ``entries``, is one :class:`InputError` starting with ``where``."""
    import yaml

    try:
        values = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{where}: file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{where}: cannot be read ({err})") from None
    except yaml.YAMLError as err:
        raise InputError(f"{where}: not valid YAML ({' '.join(str(err).split())})") from None
    if values is None and empty_ok:
        return {}
    if not isinstance(values, dict):
        raise InputError(f"{where}: expected a mapping of {entries}")
    return values


def config_argv(parser: argparse.ArgumentParser, path: Path) -> list[str]:
    """The settings of a YAML file as command-line arguments, so that they pass the flags'
    own checks (types, choices). Keys are the long flags with ``_`` for ``-``; a list gives
    the flag once per item; a switch takes ``true`` or ``false``; ``null`` is the default."""
    settings = yaml_mapping(path, f"--config {path}", "setting: value", empty_ok=True)
    actions = {a.dest: a for a in parser._actions if a.option_strings and a.dest not in ("help", "config")}
    unknown = sorted(str(k) for k in set(settings) - set(actions))
    if unknown:
        raise InputError(f"--config {path}: unknown setting(s) {unknown}; known: {sorted(actions)}")
    argv = []
    for key, value in settings.items():
        action = actions[key]
        flag = max(action.option_strings, key=len)
        if value is None:
            continue
        if isinstance(action, argparse._StoreTrueAction):
            if not isinstance(value, bool):
                raise InputError(f"--config {path}: {key} must be true or false, not {value!r}")
            argv += [flag] if value else []
            continue
        values = value if isinstance(value, list) and isinstance(action, argparse._AppendAction) else [value]
        for item in values:
            if isinstance(item, (dict, list)) or (isinstance(item, bool) and action.type is not str):
                raise InputError(f"--config {path}: {key} must be a single value, not {item!r}")
            argv += [flag, str(item)]
    try:
        parser.parse_args(argv)  # each value checked on its own, so the message names the file
    except InputError as err:
        raise InputError(f"--config {path}: {err}") from None
    return argv


def run_main(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run a script's ``main``; an :class:`InputError` becomes one line on stderr and exit 2."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    prog = sys.argv[0].rsplit("/", 1)[-1] or "mlm_mia"
    try:
        return main(argv)
    except InputError as err:
        print(f"{prog}: error: {' '.join(str(err).split())}", file=sys.stderr)  # one line
        return 2
    except OSError as err:  # the environment: a full disk, a file that cannot be read, ...
        where = f"{err.filename}: " if err.filename else ""
        hint = "; free some space and run again" if err.errno == errno.ENOSPC else ""
        print(f"{prog}: error: {where}{err.strerror or err}{hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; no partial outputs were written", file=sys.stderr)
        return 130
