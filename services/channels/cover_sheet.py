"""The cover sheet that goes in front of each family's printed SSRs.

One US-letter page: the LEA and its return address (``[print] return_address``) as sender at the
top, the guardian's mailing address where a standard
#10 window envelope shows it (the sheet is tri-folded, top panel outwards: the window, 4 1/2" x
1 1/8", sits 7/8" from the envelope's left edge and 1/2" above its bottom, which on the folded
sheet is 2.04" to 3.17" from the top), and below the first fold a short note in the guardian's
language with the children whose reports follow. Everything addressed to the family is in its
language, from the parent-message catalogs (``services/locale``): the heading, the note, the
children's lines, "hand out at school" and the page count. Arabic is laid out right to left from
the right margin and shaped by HarfBuzz (``services.channels.rtl_text``).

reportlab embeds only TrueType outlines: DejaVu Sans covers Latin and Vietnamese; Chinese and
Korean need a TrueType CJK font (WenQuanYi Zen Hei from Debian's fonts-wqy-zenhei has Simplified
and Traditional Chinese and Hangul; Noto Sans CJK is CFF-only, which reportlab cannot embed);
Arabic uses Noto Sans Arabic (fonts-noto-core). All are embedded as subsets, so pdftotext
extracts the note as written and no glyph is missing.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from io import BytesIO
from pathlib import Path

from reportlab.lib.pagesizes import letter
from reportlab.lib.units import inch
from reportlab.pdfbase import pdfmetrics, ttfonts
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from services.channels import rtl_text
from services.core.errors import ConsoleError
from services.delivery import messages
from services.delivery.messages import N_, Np_

LATIN_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
ARABIC_FONT = Path("/usr/share/fonts/truetype/noto/NotoSansArabic-Regular.ttf")
"""Noto Sans Arabic (Debian fonts-noto-core): TrueType, so ReportLab can embed and shape it."""
LATIN_BOLD = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
CJK_FONTS = (
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    Path("/usr/share/fonts/truetype/arphic/uming.ttc"),
    Path("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf"),
)
"""TrueType fonts with Chinese (Simplified and Traditional) and Korean Hangul, in order of
preference (the first found is used)."""
CJK_LANGUAGES = frozenset({"zh_Hans", "zh_Hant", "ko"})

PAGE_WIDTH, PAGE_HEIGHT = letter
WINDOW_LEFT = 1.0 * inch  # the window starts 7/8" in; 1/8" margin inside it
WINDOW_TOP = 2.125 * inch  # from the top of the sheet; the window spans 2.04" to 3.17"
WINDOW_BOTTOM = 3.10 * inch
WINDOW_WIDTH = 4.25 * inch
FOLD = PAGE_HEIGHT / 3
ADDRESS_SIZE = 11
NOTE_SIZE = 11
MAX_ADDRESS_LINES = 5

HEADING = N_("Student Score Reports")
NOTE = N_(
    "Enclosed are your family's Student Score Reports from the spring %(year)s California state "
    "tests. Please keep them with your child's school records. If you have questions, please "
    "contact the school."
)
"""The cover note, in the parent-message catalogs (``services/locale``) like every family text."""
CORRECTED_NOTE = N_(
    "Enclosed are your family's corrected Student Score Reports from the spring %(year)s "
    "California state tests. The state's testing contractor corrected them; they replace the "
    "reports sent to you earlier, which you should no longer use. If you have questions about "
    "the correction, please contact the school."
)
"""The note of a print run of corrections (scope ``corrections``): the replacement wording of the
corrected-SSR email (``messages.CORRECTED_BODY``), on paper."""
HAND_OUT = N_("Hand out at school")
"""In the envelope window when the family is handed its reports at school."""
CHILD = N_("%(name)s · SSID %(ssid)s · grade %(grade)s · %(school)s")
"""One line per child whose reports follow (SSID: the statewide student identifier)."""
PAGES = Np_("%(pages)s report page", "%(pages)s report pages")
"""The footer's page count, after the batch reference (which stays as the school reads it)."""
COVER_TEXTS = (HEADING, NOTE, CORRECTED_NOTE, HAND_OUT, CHILD, PAGES)


def note_language(language: str) -> str:
    """The language the cover is written in: the family's if it has a catalog, else English."""
    return messages.message_language(language)


def text(language: str, message: str | tuple[str, str], count: int = 1, **values: object) -> str:
    """One cover text in the family's language; English where the catalog lacks it."""
    return messages.Writer(language).text(message, values, count)


def note_text(language: str, year: int, *, corrected: bool = False) -> str:
    """The note exactly as printed (before line breaks), for tests and previews; ``corrected``:
    the reports that follow replace ones the family had (a print run of corrections)."""
    return text(language, CORRECTED_NOTE if corrected else NOTE, year=year)


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
    corrected: bool = False  # corrected SSRs that replace the ones the family had


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


@cache
def arabic_font() -> str:
    """Register Noto Sans Arabic once per process; refuse clearly when it, or the shaping and
    bidi libraries, are missing (without HarfBuzz ReportLab would print unjoined letters)."""
    if ttfonts.uharfbuzz is None or importlib.util.find_spec("bidi") is None:
        raise ConsoleError(
            "Arabic cover sheets need the uharfbuzz and python-bidi packages: "
            "pip install -e . (or make) installs them"
        )
    if not ARABIC_FONT.exists():
        raise ConsoleError(
            f"Arabic cover sheets need {ARABIC_FONT} (Debian package fonts-noto-core)"
        )
    pdfmetrics.registerFont(TTFont("CoverArabic", str(ARABIC_FONT)))
    return "CoverArabic"


@dataclass(frozen=True)
class Script:
    """How a language is set: its fonts, its direction, and where its lines may break."""

    font: str
    heading_font: str
    right_to_left: bool = False
    by_character: bool = False  # Chinese breaks between any two characters; Korean at spaces

    def width(self, line: str, size: float) -> float:
        if self.right_to_left:
            return rtl_text.width(line, size, arabic_font(), self.font)
        return pdfmetrics.stringWidth(line, self.font, size)

    def draw(
        self, canvas: Canvas, left: float, right: float, y: float, line: str, size: float
    ) -> None:
        """A line starting at ``left``, or for a right-to-left language ending at ``right``."""
        if self.right_to_left:
            rtl_text.draw_right(canvas, right, y, line, size, arabic_font(), self.font)
        else:
            canvas.setFont(self.font, size)
            canvas.drawString(left, y, line)

    def wrap(self, paragraph: str, size: float, width: float) -> list[str]:
        """Greedy line breaking: at spaces, or between any two characters for Chinese."""
        tokens = list(paragraph) if self.by_character else paragraph.split(" ")
        joiner = "" if self.by_character else " "
        lines: list[str] = []
        line = ""
        for token in tokens:
            candidate = f"{line}{joiner}{token}" if line else token
            if line and self.width(candidate, size) > width:
                lines.append(line)
                line = token
            else:
                line = candidate
        if line:
            lines.append(line)
        return lines


def script(language: str) -> Script:
    """The fonts and direction a cover in ``language`` is set in (fonts registered on first use)."""
    latin, bold = _fonts()
    code = note_language(language)
    if code in CJK_LANGUAGES:
        return Script(cjk_font(), cjk_font(), by_character=code != "ko")
    if code in messages.RIGHT_TO_LEFT:
        arabic_font()
        return Script(latin, latin, right_to_left=True)
    return Script(latin, bold)


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
    latin, _ = _fonts()
    language = note_language(cover.language)
    family = script(language)
    top = PAGE_HEIGHT
    left, right = 0.75 * inch, PAGE_WIDTH - 0.75 * inch
    # Sender, top left (outside the window), as the post office reads it.
    canvas.setFont(latin, 9)
    for index, line in enumerate(cover.sender):
        canvas.drawString(0.5 * inch, top - 0.6 * inch - index * 11, line)
    # Recipient, inside the envelope window; "hand out at school" in the family's language.
    window_y = top - WINDOW_TOP - ADDRESS_SIZE
    if cover.address:
        canvas.setFont(latin, ADDRESS_SIZE)
        for index, line in enumerate(cover.address[:MAX_ADDRESS_LINES]):
            canvas.drawString(WINDOW_LEFT, window_y - index * 13, line)
    else:
        family.draw(
            canvas,
            WINDOW_LEFT,
            WINDOW_LEFT + WINDOW_WIDTH,
            window_y,
            text(language, HAND_OUT),
            ADDRESS_SIZE,
        )
    # Below the first fold: heading, note, children, page count; right-aligned when RTL.
    y = top - FOLD - 0.5 * inch
    heading = Script(family.heading_font, family.heading_font, family.right_to_left)
    heading.draw(canvas, left, right, y, text(language, HEADING), 15)
    y -= 26
    note = note_text(language, cover.year, corrected=cover.corrected)
    for line in family.wrap(note, NOTE_SIZE, right - left):
        family.draw(canvas, left, right, y, line, NOTE_SIZE)
        y -= 16
    y -= 12
    for child in cover.children:
        line = text(
            language,
            CHILD,
            name=child.name,
            ssid=child.ssid,
            grade=child.grade,
            school=child.school,
        )
        family.draw(canvas, left, right, y, line, 10)
        y -= 14
    pages = text(language, PAGES, cover.pages, pages=cover.pages)
    family.draw(canvas, left, right, 0.5 * inch, f"{cover.reference} · {pages}", 8)
