"""Offline sentence splitting and the sentence filters of the study.

Two splitters, both rule-based and network-free:

- ``lines``: one sentence per line, as in the pseudo re-identified "1a"/"1b" files
  (Lehman et al. 2021 split those with spaCy's rule-based sentencizer).
- ``rules``: for raw notes (MIMIC-III NOTEEVENTS, n2c2). A sentence ends at a blank
  line, or at ``.``, ``!`` or ``?`` followed by white space and a character that is not
  lower-case, or at a line break before a list item. De-identification spans such as ``[**Hospital1 18**]`` are never split,
  nor are list numbers ("1."), single initials ("J.") or common abbreviations ("Dr.").
"""

from __future__ import annotations

import hashlib
import re
from typing import Iterator

from ..settings.choices import SPLITTERS


_PLACEHOLDER = re.compile(r"\[\*\*.*?\*\*\]", re.DOTALL)
# A blank line, or a line break before a list item ("- aspirin", "2. aspirin", "3) aspirin").
_BLOCK_BREAK = re.compile(r"\n[ \t\r\f\v]*\n|\n(?=[ \t]*(?:[-*\u2022]|\d{1,2}[.)])[ \t])")
# End of sentence: terminal punctuation (and closing quotes/brackets), white space, then
# a character that can start a sentence.
_SENTENCE_END = re.compile(r"(?<=[.!?])([\"')\]]*)\s+(?=[^\sa-z])")
_NO_BREAK_BEFORE = re.compile(
    r"(?<![\w.])(?:dr|mr|mrs|ms|st|vs|no|pt|approx|e\.g|i\.e|[a-z]|\d{1,2})\.$", re.IGNORECASE
)
_WHITESPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Collapse every run of white space to one space and strip the ends."""
    return _WHITESPACE.sub(" ", text).strip()


def split_rules(text: str) -> list[str]:
    """Split raw note text into sentences, keeping ``[**...**]`` spans whole."""
    spans: list[str] = []

    def protect(match: re.Match[str]) -> str:
        spans.append(match.group(0))
        return f"\x00{len(spans) - 1}\x00"

    masked = _PLACEHOLDER.sub(protect, text)
    sentences: list[str] = []
    for block in _BLOCK_BREAK.split(masked):
        start = 0
        for match in _SENTENCE_END.finditer(block):
            if _NO_BREAK_BEFORE.search(block[start : match.start()]):
                continue
            sentences.append(block[start : match.end(1)])
            start = match.end()
        sentences.append(block[start:])
    restore = re.compile("\x00(\\d+)\x00")
    return [restore.sub(lambda m: spans[int(m.group(1))], s) for s in sentences]


def split_lines(text: str) -> list[str]:
    """One sentence per line."""
    return text.splitlines()


def split(text: str, splitter: str) -> list[str]:
    """Split ``text`` with the named splitter (one of :data:`SPLITTERS`)."""
    if splitter == "rules":
        return split_rules(text)
    if splitter == "lines":
        return split_lines(text)
    raise ValueError(f"unknown splitter {splitter!r}; choose one of {SPLITTERS}")


def clean_sentences(text: str, splitter: str, min_chars: int) -> Iterator[str]:
    """Sentences of ``text``: split, white space collapsed, shorter than ``min_chars`` dropped."""
    for sentence in split(text, splitter):
        sentence = normalize(sentence)
        if len(sentence) >= min_chars:
            yield sentence


def text_hash(sentence: str) -> int:
    """A 64-bit hash of a sentence that is the same on every machine and run.

    Python's ``hash`` of a ``str`` changes with ``PYTHONHASHSEED``; this does not.
    """
    return int.from_bytes(hashlib.blake2b(sentence.encode("utf-8"), digest_size=8).digest(), "little")
