"""Right-to-left lines for ReportLab: ordered by the Unicode bidi algorithm, shaped by HarfBuzz.

ReportLab 4+ shapes a TrueType string with HarfBuzz (``uharfbuzz``; Arabic letters join and take
their initial, medial and final forms), but its own bidi support needs ``rlbidi``, which is not on
PyPI. So the levels come from python-bidi's implementation of UAX #9 (rules X1 to I2), runs of one
level and one font are put in visual order by rule L2, each run is shaped by ReportLab, and the
glyphs are written to the page in *logical* order, each at its visual place: text extraction
(pdftotext, screen readers, copy and paste) then reads the words as they were typed.

Arabic letters are drawn in the Arabic font, everything else (Latin names, digits, the SSID) in
the Latin one, so a line may mix both. Extracted text holds Arabic presentation forms (the shaped
glyphs' own code points); NFKC maps them back to the letters.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import ShapedStr, shapeStr
from reportlab.pdfgen.canvas import Canvas


@dataclass(frozen=True)
class Run:
    """Characters of one bidi level drawn in one font; ``start`` is its place in the text."""

    start: int
    text: str
    level: int
    font: str

    @property
    def right_to_left(self) -> bool:
        return self.level % 2 == 1


def is_arabic(char: str) -> bool:
    return unicodedata.name(char, "").startswith("ARABIC")


def levels(text: str) -> list[int]:
    """Each character's resolved embedding level in a right-to-left paragraph (UAX #9 X1-I2)."""
    from bidi import algorithm as uba  # only Arabic covers need it: imported when one is drawn

    storage = uba.get_empty_storage()
    storage["base_level"] = 1
    storage["base_dir"] = "R"
    uba.get_embedding_levels(text, storage, False, False)
    uba.explicit_embed_and_overrides(storage, False)
    uba.resolve_weak_types(storage, False)
    uba.resolve_neutral_types(storage, False)
    uba.resolve_implicit_levels(storage, False)
    return [char["level"] for char in storage["chars"]]


def runs(text: str, arabic_font: str, other_font: str) -> list[Run]:
    """The text split where the level or the font changes, in logical order. Spaces and
    punctuation between Arabic letters stay in the Arabic font, so a run is not cut at every word."""
    arabic_glyphs = pdfmetrics.getFont(arabic_font).face.charToGlyph
    found: list[Run] = []
    for index, (char, level) in enumerate(zip(text, levels(text), strict=True)):
        previous = found[-1] if found else None
        keeps_arabic = (
            previous is not None
            and previous.font == arabic_font
            and not char.isalnum()
            and ord(char) in arabic_glyphs
        )
        font = arabic_font if is_arabic(char) or keeps_arabic else other_font
        if previous is not None and previous.level == level and previous.font == font:
            found[-1] = Run(previous.start, previous.text + char, level, font)
        else:
            found.append(Run(index, char, level, font))
    return found


def visual_order(logical: list[Run]) -> list[Run]:
    """UAX #9 rule L2: from the highest level down to the lowest odd one, reverse every
    maximal sequence of runs at that level or higher."""
    order = list(logical)
    if not order:
        return order
    highest = max(run.level for run in order)
    lowest_odd = min((run.level for run in order if run.right_to_left), default=highest + 1)
    for level in range(highest, lowest_odd - 1, -1):
        index = 0
        while index < len(order):
            if order[index].level < level:
                index += 1
                continue
            end = index
            while end < len(order) and order[end].level >= level:
                end += 1
            order[index:end] = order[index:end][::-1]
            index = end
    return order


def _shaped(run: Run, size: float) -> tuple[str, list[float]]:
    """The run shaped by HarfBuzz, glyphs in visual order, and each glyph's advance in points.

    HarfBuzz reads the direction from the script: Arabic runs come back right to left. A
    right-to-left run without Arabic letters (a full stop after a number, a closing bracket) it
    would set left to right, so that run is put in visual order first: reversed, with brackets
    mirrored (UAX #9 rules L2 and L4)."""
    from bidi.mirror import MIRRORED

    text = run.text
    if run.right_to_left and not any(is_arabic(char) for char in text):
        text = "".join(MIRRORED.get(char, char) for char in reversed(text))
    shaped = shapeStr(text, run.font, size)
    if isinstance(shaped, ShapedStr):
        return shaped, [glyph.x_advance * size / 1000 for glyph in shaped.__shapeData__]
    return shaped, [pdfmetrics.stringWidth(char, run.font, size) for char in shaped]


def width(text: str, size: float, arabic_font: str, other_font: str) -> float:
    """The shaped line's width in points."""
    return sum(sum(_shaped(run, size)[1]) for run in runs(text, arabic_font, other_font))


def draw_right(
    canvas: Canvas,
    right: float,
    y: float,
    text: str,
    size: float,
    arabic_font: str,
    other_font: str,
) -> None:
    """Draw one right-to-left line ending at ``right``, glyphs written in logical order."""
    logical = runs(text, arabic_font, other_font)
    shaped = {run.start: _shaped(run, size) for run in logical}
    x = right - sum(sum(advances) for _, advances in shaped.values())
    left: dict[int, float] = {}
    for run in visual_order(logical):
        left[run.start] = x
        x += sum(shaped[run.start][1])
    for run in logical:
        glyphs, advances = shaped[run.start]
        canvas.setFont(run.font, size)
        if not run.right_to_left:
            canvas.drawString(left[run.start], y, glyphs)
            continue
        # HarfBuzz gave the glyphs left to right; the rightmost is the first one read.
        offsets = [left[run.start] + sum(advances[:index]) for index in range(len(advances))]
        for index in reversed(range(len(advances))):
            canvas.drawString(offsets[index], y, glyphs[index : index + 1])
