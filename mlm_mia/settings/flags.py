"""The checks and defaults of the settings, one definition each: value checks that fail
with one clear line, the flags several scripts share (:data:`SHARED_FLAGS`), YAML files
read as mappings, and :func:`setting`, a settings field that is also a flag."""

from __future__ import annotations

import argparse
from dataclasses import field, fields
from pathlib import Path
from typing import Any, Callable

from ..common.errors import InputError


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
    # their patient ids stay below the sentence canaries' (data/canary_patients.py)
    "--canary-patients": dict(type=bounded(int, lambda n: 0 <= n <= 10_000_000, "a whole number from 0 to 10000000"),
                              default=0, metavar="M"),
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


def canary_repeats(text: str) -> tuple[int, ...]:
    """``--canary-repeats``: comma-separated positive whole numbers, e.g. ``1,2,4,8``."""
    return distinct_ints(text, "--canary-repeats", 1, "distinct positive whole numbers (e.g. 1,2,4,8)")


def shadow_indices(text: str) -> tuple[int, ...]:
    """``--shadow-index``: comma-separated shadow indices, e.g. ``0,1,5``."""
    return distinct_ints(text, "--shadow-index", 0, "distinct shadow indices (0, 1, ...)")


def check_canary_space(n: int, digits: int, others: int = 0, flag: str = "--canaries",
                       what: str = "canaries") -> None:
    """Distinct secrets for ``n`` canaries (of ``flag``) beside ``others`` sentence
    canaries, and as many alternatives again for the exposure, must fit."""
    space = 10 ** digits
    if n + others > space // 2:
        raise InputError(f"{flag} {n}: more {what}{f' and {others} canaries' if others else ''} than half "
                         f"the secret space ({space} {digits}-digit numbers) allows; ask for fewer or raise "
                         "--canary-digits")


def setting(default: Any = None, parse: Callable[[str], Any] | None = None,
            choices: tuple[str, ...] | None = None, shared: str | None = None) -> Any:
    """A settings field that is also a flag: its default, and the check its values pass,
    whether they come from the command line, a YAML file or Python (``parse`` reads the
    flag's text; ``choices`` are the values it may take). ``shared`` names a flag of
    :data:`SHARED_FLAGS`, whose type and default it takes."""
    if shared:
        default, parse = SHARED_FLAGS[shared]["default"], SHARED_FLAGS[shared]["type"]
    return field(default=default, metadata={"parse": parse, "choices": choices, "shared": shared})


def flag_of(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_fields(settings: Any) -> None:
    """Every field of the frozen dataclass ``settings`` through its flag's check, the value
    kept as the check reads it (``"5"`` becomes ``5``, ``float32`` becomes ``fp32``); a bad
    value is one :class:`InputError` naming the flag."""
    for item in fields(settings):
        value = getattr(settings, item.name)
        parse, choices = item.metadata.get("parse"), item.metadata.get("choices")
        if value is None:
            continue
        flag = flag_of(item.name)
        if item.type in ("bool", bool) and not isinstance(value, bool):
            raise InputError(f"{flag}: must be true or false, not {value!r}")
        if parse is not None:
            text = ",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)
            try:
                value = parse(text)
            except (ValueError, TypeError, argparse.ArgumentTypeError) as err:
                raise InputError(f"{flag} {text!r}: {err or 'not a valid value'}") from None
            object.__setattr__(settings, item.name, value)
        if choices is not None and value not in choices:
            raise InputError(f"{flag} {value!r}: must be one of {', '.join(choices)}")
