"""The cover sheet that goes in front of each family's printed SSRs.

One US-letter page: the LEA and its return address (``[print] return_address``) as sender at the
top, the guardian's mailing address where a standard
#10 window envelope shows it (the sheet is tri-folded, top panel outwards: the window, 4 1/2" x
1 1/8", sits 7/8" from the envelope's left edge and 1/2" above its bottom, which on the folded
sheet is 2.04" to 3.17" from the top), and below the first fold a short note in the guardian's
language with the children whose reports follow. Everything addressed to the family is in its
language: the note, the children's lines, "hand out at school" and the page count.

reportlab embeds only TrueType outlines: DejaVu Sans covers Latin and Vietnamese; Chinese needs a
TrueType CJK font (WenQuanYi Zen Hei from Debian's fonts-wqy-zenhei; Noto Sans CJK is CFF-only,
which reportlab cannot embed). Both are embedded as subsets, so pdftotext extracts the note as
written and no glyph is missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from io import BytesIO
from pathlib import Path

from reportlab.lib.pagesizes import letter
from reportlab.lib.units import inch
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from services.core.errors import ConsoleError

LATIN_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
LATIN_BOLD = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
CJK_FONTS = (
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    Path("/usr/share/fonts/truetype/arphic/uming.ttc"),
    Path("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf"),
)
"""TrueType fonts with Simplified Chinese, in order of preference (the first found is used)."""

PAGE_WIDTH, PAGE_HEIGHT = letter
WINDOW_LEFT = 1.0 * inch  # the window starts 7/8" in; 1/8" margin inside it
WINDOW_TOP = 2.125 * inch  # from the top of the sheet; the window spans 2.04" to 3.17"
WINDOW_BOTTOM = 3.10 * inch
WINDOW_WIDTH = 4.25 * inch
FOLD = PAGE_HEIGHT / 3
ADDRESS_SIZE = 11
NOTE_SIZE = 11
MAX_ADDRESS_LINES = 5

HEADINGS = {
    "en": "Student Score Reports",
    "es": "Informes de Calificaciones del Estudiante",
    "zh_Hans": "学生成绩报告",
    "vi": "Phiếu Báo Điểm Học Sinh",
    "fil": "Mga Ulat ng Iskor ng Mag-aaral",
}
NOTES = {
    "en": (
        "Enclosed are your child's Student Score Reports from the spring {year} California "
        "state tests. Please keep them with your child's school records. If you have "
        "questions, please contact your child's school."
    ),
    "es": (
        "Adjuntos encontrará los Informes de Calificaciones del Estudiante de las pruebas "
        "estatales de California de la primavera de {year}. Guárdelos con los documentos "
        "escolares de su hijo o hija. Si tiene preguntas, comuníquese con la escuela de su "
        "hijo o hija."
    ),
    "zh_Hans": (
        "随信附上您孩子{year}年春季加州统一考试的学生成绩报告。请将报告与孩子的学校记录一起妥善保存。"
        "如有疑问，请联系您孩子的学校。"
    ),
    "vi": (
        "Kèm theo đây là Phiếu Báo Điểm Học Sinh của con quý vị từ các bài kiểm tra tiểu bang "
        "California vào mùa xuân năm {year}. Xin quý vị lưu giữ phiếu này cùng với hồ sơ học "
        "tập của con. Nếu có thắc mắc, xin liên lạc với trường của con quý vị."
    ),
    "fil": (
        "Kalakip ang mga Ulat ng Iskor ng Mag-aaral ng inyong anak mula sa mga pagsusulit ng "
        "estado ng California noong tagsibol ng {year}. Mangyaring itago ang mga ito kasama ng "
        "mga rekord sa paaralan ng inyong anak. Kung may mga tanong, makipag-ugnayan sa "
        "paaralan ng inyong anak."
    ),
}
"""The cover note per canonical language code; other languages fall back to English."""

HAND_OUT = {
    "en": "Hand out at school",
    "es": "Entregar en la escuela",
    "zh_Hans": "在学校发放",
    "vi": "Phát tại trường",
    "fil": "Ibigay sa paaralan",
}
"""In the envelope window when the family is handed its reports at school."""
CHILD = {
    "en": "{name} · SSID {ssid} · grade {grade} · {school}",
    "es": "{name} · SSID {ssid} · grado {grade} · {school}",
    "zh_Hans": "{name} · SSID {ssid} · {grade}年级 · {school}",
    "vi": "{name} · SSID {ssid} · lớp {grade} · {school}",
    "fil": "{name} · SSID {ssid} · baitang {grade} · {school}",
}
"""One line per child whose reports follow (SSID: the statewide student identifier)."""
PAGES = {
    "en": "{pages} report page(s)",
    "es": "{pages} página(s) de informes",
    "zh_Hans": "报告共{pages}页",
    "vi": "{pages} trang báo cáo",
    "fil": "{pages} pahina ng ulat",
}
"""The footer's page count, after the batch reference (which stays as the school reads it)."""


def note_language(language: str) -> str:
    return language if language in NOTES else "en"


def note_text(language: str, year: int) -> str:
    """The note exactly as printed (before line breaks), for tests and previews."""
    return NOTES[note_language(language)].format(year=year)


@dataclass(frozen=True)
class Child:
    """A student whose reports follow the cover sheet."""

    name: str
    ssid: str
    grade: int
    school: str


@dataclass(frozen=True)
class Cover:
    """What one family's cover sheet says; ``address`` empty means handed out at school."""

    sender: tuple[str, ...]
    address: tuple[str, ...]
    language: str
    year: int
    children: tuple[Child, ...]
    pages: int  # report pages that follow the cover
    reference: str  # batch and family, to sort returned mail


@cache
def _fonts() -> tuple[str, str]:
    """Register DejaVu (regular, bold) once per process; missing fonts are a clear error."""
    for path in (LATIN_FONT, LATIN_BOLD):
        if not path.exists():
            raise ConsoleError(f"Cover sheets need {path} (Debian package fonts-dejavu-core)")
    pdfmetrics.registerFont(TTFont("CoverLatin", str(LATIN_FONT)))
    pdfmetrics.registerFont(TTFont("CoverLatinBold", str(LATIN_BOLD)))
    return "CoverLatin", "CoverLatinBold"


@cache
def cjk_font() -> str:
    """Register the first TrueType CJK font found; refuse clearly when there is none."""
    for path in CJK_FONTS:
        if path.exists():
            pdfmetrics.registerFont(TTFont("CoverCJK", str(path), subfontIndex=0))
            return "CoverCJK"
    raise ConsoleError(
        "Chinese cover notes need a TrueType CJK font: install the Debian package fonts-wqy-zenhei"
    )


def wrap(text: str, font: str, size: float, width: float, *, by_character: bool) -> list[str]:
    """Greedy line breaking: at spaces, or between any two characters for Chinese."""
    tokens = list(text) if by_character else text.split(" ")
    joiner = "" if by_character else " "
    lines: list[str] = []
    line = ""
    for token in tokens:
        candidate = f"{line}{joiner}{token}" if line else token
        if line and pdfmetrics.stringWidth(candidate, font, size) > width:
            lines.append(line)
            line = token
        else:
            line = candidate
    if line:
        lines.append(line)
    return lines


def render(covers: Sequence[Cover]) -> bytes:
    """Cover sheets as one PDF, a page each, sharing one embedded subset of each font.

    A print run renders its covers a few dozen at a time: one document per cover would embed the
    fonts again for every family (about 46 KB and 10 ms a cover, against under 2 KB and 1 ms).
    """
    latin, _ = _fonts()
    buffer = BytesIO()
    canvas = Canvas(
        buffer, pagesize=letter, invariant=True, pageCompression=1, initialFontName=latin
    )
    canvas.setTitle("SSR cover sheets")
    for cover in covers:
        _draw(canvas, cover)
        canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def _draw(canvas: Canvas, cover: Cover) -> None:
    latin, bold = _fonts()
    language = note_language(cover.language)
    chinese = language == "zh_Hans"
    note_font = cjk_font() if chinese else latin
    heading_font = note_font if chinese else bold
    top = PAGE_HEIGHT
    # Sender, top left (outside the window).
    canvas.setFont(latin, 9)
    for index, line in enumerate(cover.sender):
        canvas.drawString(0.5 * inch, top - 0.6 * inch - index * 11, line)
    # Recipient, inside the envelope window.
    lines = cover.address[:MAX_ADDRESS_LINES] if cover.address else (HAND_OUT[language],)
    canvas.setFont(note_font if not cover.address else latin, ADDRESS_SIZE)
    for index, line in enumerate(lines):
        canvas.drawString(WINDOW_LEFT, top - WINDOW_TOP - ADDRESS_SIZE - index * 13, line)
    # Below the first fold: heading, note, children, page count.
    y = top - FOLD - 0.5 * inch
    canvas.setFont(heading_font, 15)
    canvas.drawString(0.75 * inch, y, HEADINGS[language])
    y -= 26
    canvas.setFont(note_font, NOTE_SIZE)
    width = PAGE_WIDTH - 1.5 * inch
    for line in wrap(
        note_text(language, cover.year), note_font, NOTE_SIZE, width, by_character=chinese
    ):
        canvas.drawString(0.75 * inch, y, line)
        y -= 16
    y -= 12
    canvas.setFont(note_font, 10)
    for child in cover.children:
        canvas.drawString(
            0.75 * inch,
            y,
            CHILD[language].format(
                name=child.name, ssid=child.ssid, grade=child.grade, school=child.school
            ),
        )
        y -= 14
    canvas.setFont(note_font, 8)
    pages = PAGES[language].format(pages=cover.pages)
    canvas.drawString(0.75 * inch, 0.5 * inch, f"{cover.reference} · {pages}")
