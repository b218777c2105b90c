import csv
import gzip
import io
import tarfile
from pathlib import Path

import pytest

from mlm_mia.data import csv_notes, n2c2
from mlm_mia.common.errors import InputError
from mlm_mia.data.sources import default_splitter, n2c2_source, note_source


def raw_rows(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_synthetic_noteevents_has_the_real_format(corpus):
    with gzip.open(corpus["noteevents"], "rt", encoding="utf-8") as handle:
        first_line = handle.readline().rstrip("\n")
    assert first_line == ",".join(f'"{c}"' for c in csv_notes.NOTEEVENTS_COLUMNS)
    rows = raw_rows(corpus["noteevents"])
    assert any(r["ISERROR"] == "1" for r in rows)
    assert any(r["CATEGORY"].endswith(" ") for r in rows)
    assert all("\n" in r["TEXT"] and "[**" in r["TEXT"] for r in rows)
    assert any(r["CHARTTIME"] == "" for r in rows)


def test_noteevents_reader_skips_notes_marked_in_error(corpus):
    rows = raw_rows(corpus["noteevents"])
    notes = list(csv_notes.read_notes(corpus["noteevents"]))
    kept = [r for r in rows if r["ISERROR"] != "1"]
    assert len(notes) == len(kept) < len(rows)
    assert [(n.patient_id, n.text) for n in notes] == [(r["SUBJECT_ID"], r["TEXT"]) for r in kept]


def test_subject_notes_reader_and_default_splitters(corpus):
    notes = list(csv_notes.read_notes(corpus["one_a"]))
    assert csv_notes.detect_format(corpus["one_a"]) == "subject_notes"
    assert notes and all(n.text == n.text.lower() for n in notes)
    assert not any(ch.isdigit() for n in notes for ch in n.text)
    assert default_splitter(corpus["one_a"]) == "lines"
    assert default_splitter(corpus["noteevents"]) == "rules"


def test_n2c2_folder_and_tarball_give_the_same_records(corpus):
    from_dir = list(n2c2.read_records(corpus["n2c2"]))
    from_tar = list(n2c2.read_records(corpus["n2c2_tar"]))
    assert len(from_dir) > 40
    assert [(n.patient_id, n.text) for n in from_dir] == [(n.patient_id, n.text) for n in from_tar]
    assert all(n.patient_id.startswith("n2c2-") for n in from_dir)
    assert "Record date:" in from_dir[0].text


def test_n2c2_accepts_the_deid_root_and_reads_a_record_once(tmp_path):
    for folder in ("a-Complete", "a-Gold"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "123-01.xml").write_text(
            "<deIdi2b2><TEXT><![CDATA[Note of patient 123 with enough text.]]></TEXT>"
            "<TAGS/></deIdi2b2>", encoding="utf-8")
    notes = list(n2c2.read_records(tmp_path))
    assert [(n.patient_id, n.text) for n in notes] == [("n2c2-123", "Note of patient 123 with enough text.")]


@pytest.mark.parametrize("content, message", [
    (b"<root><TEXT>unclosed</root>", "malformed XML"),
    (b"<other><TEXT>x</TEXT></other>", "root element <other>"),
    (b"<root><TAGS/></root>", "no <TEXT>"),
])
def test_n2c2_bad_records_name_the_file(tmp_path, content, message):
    (tmp_path / "200-01.xml").write_bytes(content)
    with pytest.raises(InputError, match=message) as err:
        list(n2c2.read_records(tmp_path))
    assert "200-01.xml" in str(err.value)


def test_n2c2_malformed_record_inside_a_tarball_names_archive_and_member(tmp_path):
    path = tmp_path / "n2c2.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        data = b"<root><TEXT>broken"
        info = tarfile.TarInfo("set1/300-02.xml")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    with pytest.raises(InputError, match=r"n2c2\.tar\.gz:set1/300-02\.xml: malformed XML"):
        list(n2c2_source(str(path), "--n2c2", None).notes())


def test_n2c2_bad_file_name_and_empty_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    with pytest.raises(InputError, match="no .xml records"):
        list(n2c2.read_records(tmp_path / "sub"))
    (tmp_path / "record.xml").write_text("<root><TEXT>x</TEXT></root>")
    with pytest.raises(InputError, match="PPP-RR.xml"):
        list(n2c2.read_records(tmp_path))


def test_wrong_columns_empty_file_and_missing_file(tmp_path):
    wrong = tmp_path / "notes.csv"
    wrong.write_text("PATIENT,NOTE\n1,hello\n")
    with pytest.raises(InputError, match=r"notes\.csv: unexpected columns \['PATIENT', 'NOTE'\]"):
        note_source(str(wrong), "--train-notes", None)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InputError, match="empty.csv: the file is empty"):
        note_source(str(empty), "--train-notes", None)
    with pytest.raises(InputError, match="--train-notes .*missing.csv: no such file"):
        note_source(str(tmp_path / "missing.csv"), "--train-notes", None)


def test_undecodable_bytes_and_unclosed_quote(tmp_path):
    bad = tmp_path / "latin1.csv"
    good_rows = b"".join(b'%d,"a fine note number %d"\n' % (i, i) for i in range(20_000))
    bad.write_bytes(b"SUBJECT_ID,TEXT\n" + good_rows + b'1,"caf\xe9 au lait is not UTF-8"\n')
    with pytest.raises(InputError, match=r"latin1.csv: bytes that are not UTF-8 .*byte 0xe9"):
        list(csv_notes.read_notes(bad))
    bad.write_bytes(b'SUBJECT_ID,TEXT\n1,"caf\xe9"\n')
    with pytest.raises(InputError, match="latin1.csv: bytes that are not UTF-8"):
        note_source(str(bad), "--train-notes", None)
    unclosed = tmp_path / "unclosed.csv"
    unclosed.write_text('SUBJECT_ID,TEXT\n1,"never closed\n2,x\n')
    with pytest.raises(InputError, match="unclosed.csv: malformed CSV"):
        list(csv_notes.read_notes(unclosed))


def test_folders_and_globs_resolve_to_sorted_note_files(corpus):
    folder = corpus["train"].parent
    by_folder = note_source(str(folder), "--train-notes", None).paths
    by_glob = note_source(str(folder / "*.csv.gz"), "--train-notes", None).paths
    assert [p.name for p in by_folder] == [p.name for p in by_glob] == [
        "heldout_notes.csv.gz", "train_notes.csv.gz"]
