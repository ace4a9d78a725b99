"""The assessment programs whose SSRs the console delivers, their tests and the grades that take them.

This is the one place the test list lives; roster validation, batch scopes, the paper-order screen
and the demo district all read it. Grades are integers, with kindergarten 0 and transitional
kindergarten (year one of a two-year kindergarten program) -1.

The tests, as the CAASPP and ELPAC sites describe them (looked up 2026-11-29):

- Smarter Balanced ELA and mathematics: grades 3-8 and 11 ("English language arts/literacy (ELA) and
  mathematics academic assessment for students in grades 3-8 and grade 11", caaspp-elpac.ets.org).
- California Alternate Assessments (CAAs) for ELA and mathematics: the same grades, for students whose
  IEP names an alternate assessment.
- California Science Test (CAST) and CAA for Science: grades 5 and 8 and once in high school, in grade
  10, 11 or 12 (5 CCR 851.5; TOMS help "Administration Information for the CAA for Science":
  "grades five and eight and one time in high school (i.e., grade ten, eleven, or twelve)").
- California Spanish Assessment (CSA), optional: "students in grades three through twelve"
  (caaspp-elpac.org/assessments/caaspp/csa).
- Summative ELPAC and Summative Alternate ELPAC: English learners in kindergarten (or year one of a
  two-year kindergarten program, i.e. transitional kindergarten) through grade twelve
  (caaspp-elpac.org/assessments/elpac/summative; CDE ELPAC participation).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Program(enum.StrEnum):
    CAASPP = "CAASPP"
    ELPAC = "ELPAC"


TRANSITIONAL_KINDERGARTEN = -1
KINDERGARTEN = 0
_SMARTER_GRADES = (3, 4, 5, 6, 7, 8, 11)
_SCIENCE_GRADES = (5, 8, 10, 11, 12)
_K12 = tuple(range(TRANSITIONAL_KINDERGARTEN, 13))


@dataclass(frozen=True)
class Assessment:
    """One summative test: its program, the code files and the TOMS API name it by, who takes it."""

    program: Program
    code: str
    title: str
    grades: tuple[int, ...]


SMARTER_BALANCED = Assessment(
    Program.CAASPP, "SB", "Smarter Balanced ELA and mathematics", _SMARTER_GRADES
)
SUMMATIVE_ELPAC = Assessment(Program.ELPAC, "SUMMATIVE", "Summative ELPAC", _K12)
ASSESSMENTS = (
    SMARTER_BALANCED,
    Assessment(
        Program.CAASPP,
        "CAA",
        "California Alternate Assessments, ELA and mathematics",
        _SMARTER_GRADES,
    ),  # fmt: skip
    Assessment(Program.CAASPP, "CAST", "California Science Test", _SCIENCE_GRADES),
    Assessment(
        Program.CAASPP,
        "CAA-SCIENCE",
        "California Alternate Assessment for Science",
        _SCIENCE_GRADES,
    ),  # fmt: skip
    Assessment(Program.CAASPP, "CSA", "California Spanish Assessment", tuple(range(3, 13))),
    SUMMATIVE_ELPAC,
    Assessment(Program.ELPAC, "ALTERNATE", "Summative Alternate ELPAC", _K12),
)
"""Every test whose SSR the console delivers."""


def tested_grades(program: Program | None = None) -> tuple[int, ...]:
    """The grades some test of ``program`` (of either program when None) is given in, in order."""
    return tuple(
        sorted(
            {g for t in ASSESSMENTS if program is None or t.program is program for g in t.grades}
        )
    )


def test_code(program: Program, text: str) -> str:
    """How a test named in a file name or an API listing is stored: a known test by its code
    (``cast`` and ``CAST`` are one report), anything else as given, so no SSR is refused for it."""
    wanted = text.strip()
    known = next(
        (t for t in ASSESSMENTS if t.program is program and t.code == wanted.upper()), None
    )
    return known.code if known is not None else wanted[:40]


def grade_label(grade: int) -> str:
    """How a grade is written for people: TK, K, 1 ... 12."""
    return {TRANSITIONAL_KINDERGARTEN: "TK", KINDERGARTEN: "K"}.get(grade, str(grade))


GRADE_WORDS = {"TK": TRANSITIONAL_KINDERGARTEN, "K": KINDERGARTEN, "KG": KINDERGARTEN}
"""Kindergarten grades as SIS exports spell them (OneRoster: KG, 01..12; some exports also TK)."""
