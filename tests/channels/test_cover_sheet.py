"""Cover sheets right to left: Arabic shaped by HarfBuzz, laid out from the right margin, and
extracted by pdftotext in the order it was written; every family text from the catalogs."""

from __future__ import annotations

import re
import subprocess
import unicodedata
from pathlib import Path

import pytest

from services.channels import cover_sheet, rtl_text

BIDI_MARKS = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069]")
CHILDREN = (
    cover_sheet.Child("Ana Lee", "1234567890", 5, "Lincoln Elementary"),
    cover_sheet.Child("عمر حداد", "2345678901", 8, "Roosevelt Middle"),
)


def render(tmp_path: Path, language: str, *, address: tuple[str, ...] = ()) -> Path:
    cover = cover_sheet.Cover(
        sender=("Sierra Vista USD", "100 Main St", "Riverside, CA 92501"),
        address=address,
        language=language,
        year=2026,
        children=CHILDREN,
        pages=7,
        reference="Print batch 3 · family 12",
    )
    path = tmp_path / f"cover-{language}.pdf"
    path.write_bytes(cover_sheet.render([cover]))
    return path


def extracted(path: Path) -> str:
    """pdftotext's text with its bidi marks removed and Arabic presentation forms folded (NFKC)."""
    text = subprocess.run(
        ["pdftotext", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    return " ".join(unicodedata.normalize("NFKC", BIDI_MARKS.sub("", text)).split())


def boxes(path: Path) -> list[tuple[float, float, float, str]]:
    """(left, right, top, text) of each word box pdftotext finds on the page."""
    html = subprocess.run(
        ["pdftotext", "-bbox", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    pattern = r'xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="[\d.]+">([^<]*)</word>'
    return [(float(a), float(c), float(b), word) for a, b, c, word in re.findall(pattern, html)]


def test_arabic_text_extracts_in_logical_order(tmp_path: Path) -> None:
    path = render(tmp_path, "ar")
    text = extracted(path)
    heading = cover_sheet.text("ar", cover_sheet.HEADING)
    assert heading in text
    note = " ".join(cover_sheet.note_text("ar", 2026).split())
    first_line = note.split(" ")[:6]
    assert " ".join(first_line) in text  # words in the order written, letters unreversed
    assert cover_sheet.text("ar", cover_sheet.HAND_OUT) in text
    assert "عمر حداد" in text and "1234567890" in text and "2026" in text
    assert "grade" not in text and "report page" not in text


def test_arabic_lines_run_from_the_right_margin(tmp_path: Path) -> None:
    """The heading and each line of the note end at the right margin; an English cover's lines
    start at the left margin. (Fonts differ in box height, so lines are told apart by the
    Arabic boxes only, the first three below the fold.)"""
    right_margin = cover_sheet.PAGE_WIDTH - 0.75 * 72
    arabic = [
        box
        for box in boxes(render(tmp_path, "ar"))
        if box[2] > cover_sheet.FOLD and any(map(rtl_text.is_arabic, box[3]))
    ]
    lines: dict[int, list[float]] = {}
    for _, right, top, _ in arabic:
        lines.setdefault(round(top), []).append(right)
    heading, *note = sorted(lines)[:3]
    for top in (heading, *note):
        assert max(lines[top]) == pytest.approx(right_margin, abs=1.5)
    english = [b for b in boxes(render(tmp_path, "en")) if b[3] == "Student"]
    assert english[0][0] == pytest.approx(0.75 * 72, abs=0.5)


def test_arabic_is_shaped_by_harfbuzz(tmp_path: Path) -> None:
    """Joined letters: the page holds presentation forms (initial, medial, final), not the
    isolated letters a renderer without shaping would draw."""
    raw = subprocess.run(
        ["pdftotext", str(render(tmp_path, "ar")), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert any("\ufb50" <= char <= "\ufeff" for char in raw)
    assert "تقارير" not in raw  # the unshaped letters never reach the page


def test_bidi_runs_put_numbers_and_latin_names_left_to_right() -> None:
    cover_sheet.script("ar")  # registers the fonts
    line = "الصف 5 · Lincoln Elementary"
    logical = rtl_text.runs(line, cover_sheet.arabic_font(), "CoverLatin")
    assert [run.text for run in logical if not run.right_to_left] == ["5", "Lincoln Elementary"]
    visual = [run.text.strip() for run in rtl_text.visual_order(logical)]
    assert visual[0] == "Lincoln Elementary" and visual[-1].startswith("الصف")


@pytest.mark.parametrize("language", ["hmn", "xx"])
def test_a_language_without_a_catalog_gets_an_english_cover(tmp_path: Path, language: str) -> None:
    text = extracted(render(tmp_path, language))
    assert "Student Score Reports" in text and "grade 5" in text and "7 report pages" in text


def test_without_harfbuzz_an_arabic_cover_is_refused_not_printed_unjoined(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from reportlab.pdfbase import ttfonts

    from services.core.errors import ConsoleError

    monkeypatch.setattr(ttfonts, "uharfbuzz", None)
    cover_sheet.arabic_font.cache_clear()
    try:
        with pytest.raises(ConsoleError, match="uharfbuzz"):
            render(tmp_path, "ar")
    finally:
        cover_sheet.arabic_font.cache_clear()
