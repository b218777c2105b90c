"""Reader for the n2c2 2014 (i2b2 2014 track 2) XML records.

One file per record, ``PPP-RR.xml`` (patient ``PPP``, record ``RR``), root ``<root>``
(risk-factor track) or ``<deIdi2b2>`` (de-identification track), the note in
``<TEXT><![CDATA[...]]></TEXT>``. Records come from a folder (searched recursively) or a
``.tar.gz`` of such folders. Patient ids are prefixed ``n2c2-`` so they never collide
with MIMIC-III subject ids.
"""

from __future__ import annotations

import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterator

from ..common.errors import InputError
from .notes import Note

ROOT_TAGS = ("root", "deIdi2b2")
PATIENT_PREFIX = "n2c2-"


def parse_record(data: bytes, where: str) -> str:
    """The note text of one XML record; ``where`` names it in error messages."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as err:
        raise InputError(f"{where}: malformed XML ({err}); the record must be a well-formed "
                         "n2c2 file") from None
    if root.tag not in ROOT_TAGS:
        raise InputError(f"{where}: root element <{root.tag}>, expected <root> or <deIdi2b2>")
    text = root.find("TEXT")
    if text is None or not (text.text or "").strip():
        raise InputError(f"{where}: no <TEXT> element with note text")
    return text.text


def patient_of(name: str, where: str) -> str:
    """``n2c2-PPP`` from a record file name ``PPP-RR.xml``."""
    stem = Path(name).name[: -len(".xml")]
    patient, sep, record = stem.partition("-")
    if not sep or not patient or not record:
        raise InputError(f"{where}: file name is not PPP-RR.xml (patient-record)")
    return PATIENT_PREFIX + patient


def read_records(path: Path) -> Iterator[Note]:
    """Every record under a folder or in a ``.tar.gz``, in sorted path order.

    A record found twice (say in both the ``-Complete-`` and ``-Gold-`` releases) is
    read once: records are keyed by file name.
    """
    if not path.exists():
        raise InputError(f"{path}: not found; give the n2c2 folder or .tar.gz")
    seen: set[str] = set()
    found = False
    for name, read in _xml_members(path):
        found = True
        key = Path(name).name
        if key in seen:
            continue
        seen.add(key)
        where = f"{path}:{name}" if path.is_file() else name
        yield Note(patient_id=patient_of(name, where), text=parse_record(read(), where),
                   source=key)
    if not found:
        raise InputError(f"{path}: no .xml records found; expected n2c2 files named PPP-RR.xml")


def _xml_members(path: Path):
    if path.is_dir():
        for file in sorted(path.rglob("*.xml")):
            yield str(file), file.read_bytes
        return
    try:
        with tarfile.open(path, "r:*") as archive:
            members = sorted((m for m in archive.getmembers()
                              if m.isfile() and m.name.endswith(".xml")), key=lambda m: m.name)
            for member in members:
                yield member.name, lambda m=member: archive.extractfile(m).read()
    except (tarfile.TarError, EOFError, OSError) as err:
        raise InputError(f"{path}: not a readable folder or .tar.gz archive ({err})") from None
