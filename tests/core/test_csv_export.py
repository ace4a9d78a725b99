"""CSV export: formula-looking cells are quoted, everything else is kept as it was."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from services.core.csv_export import export, safe_cell
from services.core.errors import InvalidInput


@pytest.mark.parametrize(
    ("raw", "written"),
    [
        ("=SUM(A1:A2)", "'=SUM(A1:A2)"),
        ("+15551234", "'+15551234"),
        ("-2+3", "'-2+3"),
        ("@cmd", "'@cmd"),
        ("\tindent", "'\tindent"),
        ("\rreturn", "'\rreturn"),
        ("Reyes, Ana", "Reyes, Ana"),
        ("a=b", "a=b"),
        ("", ""),
        (None, ""),
        (42, "42"),
    ],
)
def test_safe_cell(raw: object, written: str) -> None:
    assert safe_cell(raw) == written


def test_export_reads_back_with_quoted_formulas(tmp_path: Path) -> None:
    path = tmp_path / "report.csv"
    rows = [
        ['=HYPERLINK("http://x")', "+1", "-1", "@SUM(1)"],
        ["Nguyễn Văn An", "张伟", "line\nbreak", "ok, comma"],
    ]
    count = export(path, ["a", "b", "c", "d"], iter(rows))
    assert count == 2
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # Excel needs the BOM for UTF-8
    with path.open(encoding="utf-8-sig", newline="") as handle:
        back = list(csv.reader(handle))
    assert back[0] == ["a", "b", "c", "d"]
    assert back[1] == ['\'=HYPERLINK("http://x")', "'+1", "'-1", "'@SUM(1)"]
    assert back[2] == ["Nguyễn Văn An", "张伟", "line\nbreak", "ok, comma"]
    assert not (tmp_path / "report.csv.part").exists()


def test_export_refuses_bad_paths_with_a_sentence(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="ending in .csv"):
        export(tmp_path / "report.txt", ["a"], [])
    with pytest.raises(InvalidInput, match="does not exist"):
        export(tmp_path / "missing" / "report.csv", ["a"], [])


def test_failed_export_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "report.csv"

    def rows():  # type: ignore[no-untyped-def]
        yield ["one"]
        raise OSError(28, "No space left on device")

    with pytest.raises(InvalidInput, match="No space left"):
        export(path, ["a"], rows())
    assert not path.exists() and not (tmp_path / "report.csv.part").exists()
