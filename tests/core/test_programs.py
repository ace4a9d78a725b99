"""The tests whose SSRs the console delivers, and the grades that take them, as the CAASPP and
ELPAC sites list them (``services.core.programs``, the one place they are written)."""

from __future__ import annotations

from services.core import programs, validation
from services.core.programs import Program
from services.demo import district


def test_each_test_is_given_in_the_grades_the_programs_publish() -> None:
    grades = {(t.program, t.code): set(t.grades) for t in programs.ASSESSMENTS}
    assert grades[(Program.CAASPP, "SB")] == {3, 4, 5, 6, 7, 8, 11}
    assert grades[(Program.CAASPP, "CAA")] == {3, 4, 5, 6, 7, 8, 11}
    assert grades[(Program.CAASPP, "CAST")] == {5, 8, 10, 11, 12}  # once in high school
    assert grades[(Program.CAASPP, "CAA-SCIENCE")] == {5, 8, 10, 11, 12}
    assert grades[(Program.CAASPP, "CSA")] == set(range(3, 13))
    assert grades[(Program.ELPAC, "SUMMATIVE")] == set(range(-1, 13))  # TK and K to 12
    assert grades[(Program.ELPAC, "ALTERNATE")] == set(range(-1, 13))


def test_validation_and_the_demo_read_the_one_list() -> None:
    assert validation.GRADES == programs.tested_grades() == tuple(range(-1, 13))
    assert programs.tested_grades(Program.CAASPP) == tuple(range(3, 13))
    assert programs.SMARTER_BALANCED.grades == district.DEMO_GRADES
    assert programs.test_code(Program.CAASPP, " cast") == "CAST"
    assert programs.test_code(Program.ELPAC, "cast") == "cast"  # not an ELPAC test: as given
    assert [programs.grade_label(g) for g in (-1, 0, 9)] == ["TK", "K", "9"]
