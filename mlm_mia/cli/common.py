"""What every script shares: argument parsing that fails with one clear line, flags made
from the settings' fields, YAML settings checked like flags, logging set-up, and turning
bad input into a clean exit."""

from __future__ import annotations

import argparse
import dataclasses
import errno
import logging
import sys
from pathlib import Path
from typing import Callable

from ..common.errors import InputError
from ..settings.flags import SHARED_FLAGS, yaml_mapping


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are :class:`InputError`\ s: one line, exit 2."""

    def __init__(self, *args, **kwargs):
        from .. import __version__

        super().__init__(*args, **kwargs)
        self.add_argument("--version", action="version", version=f"%(prog)s (mlm_mia) {__version__}")

    def error(self, message: str):
        raise InputError(message)


def add_flag(parser: argparse.ArgumentParser | argparse._ArgumentGroup, flag: str, **wording) -> None:
    """Add the shared ``flag`` (:data:`SHARED_FLAGS`) to ``parser``; ``wording`` may give
    its ``help`` and ``metavar`` only, never its type, check or default."""
    parser.add_argument(flag, **(SHARED_FLAGS[flag] | _own(flag, wording)))


def _own(flag: str, wording: dict) -> dict:
    """A script's own ``wording`` of a flag: its help and metavar, nothing else."""
    if set(wording) - {"help", "metavar"}:
        raise ValueError(f"{flag}: only help and metavar are a script's own")
    return wording


def add_setting(parser: argparse.ArgumentParser | argparse._ArgumentGroup, settings: type, flag: str,
                **wording) -> None:
    """Add ``flag``, the field of the same name of the settings dataclass ``settings``:
    its type, check, choices and default are the field's; ``wording`` gives the script's
    ``help`` and ``metavar`` (a shared flag's help is :data:`SHARED_FLAGS`'s by default)."""
    item = {f.name: f for f in dataclasses.fields(settings)}[flag[2:].replace("-", "_")]
    shared = item.metadata.get("shared")
    options = {k: v for k, v in SHARED_FLAGS.get(shared, {}).items() if k in ("help", "metavar")} | _own(flag, wording)
    if item.type == "bool":
        parser.add_argument(flag, action="store_true", **options)
        return
    default = item.default if item.default is not dataclasses.MISSING else item.default_factory()
    if item.type.startswith("tuple[Path"):  # given once per item
        parser.add_argument(flag, type=Path, action="append", default=None, **options)
        return
    convert = item.metadata.get("parse") or (Path if "Path" in item.type else str)
    parser.add_argument(flag, type=convert, choices=item.metadata.get("choices"), default=default, **options)


def settings_from(settings: type, arguments: argparse.Namespace, *ignored: str):
    """The settings dataclass ``settings`` made from parsed flags (all of its fields, and
    the ``ignored`` flags of the parser's own, such as ``config``)."""
    values = dict(vars(arguments))
    for name in ignored:
        values.pop(name, None)
    return settings(**values)


def config_argv(parser: argparse.ArgumentParser, path: Path) -> list[str]:
    """The settings of a YAML file as command-line arguments, so that they pass the flags'
    own checks (types, choices). Keys are the long flags with ``_`` for ``-``; a list gives
    the flag once per item; a switch takes ``true`` or ``false``; ``null`` is the default."""
    settings = yaml_mapping(path, f"--config {path}", "setting: value", empty_ok=True)
    actions = {a.dest: a for a in parser._actions if a.option_strings and a.dest not in ("help", "version", "config")}
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
