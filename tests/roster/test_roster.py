"""Roster creation refuses bad identifiers with a sentence, on the single and the bulk path."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from services.core.db import session_scope
from services.core.errors import InvalidInput
from services.roster import records as roster
from services.roster.records import BulkRoster, GuardianIn, StudentIn
from services.roster.tables import LEA, School, Student


@pytest.fixture
def district(engine: Engine) -> tuple[LEA, School]:
    with session_scope(engine) as session:
        lea = roster.create_lea(session, "1964733", "Test Unified School District", "Los Angeles")
        school = roster.create_school(session, lea, "19647336100001", "Test Elementary School")
    return lea, school


def student(school: School, **changes: object) -> StudentIn:
    values: dict[str, object] = {
        "ssid": "1234567890",
        "school_id": school.id,
        "first_name": "Thảo",
        "last_name": "Nguyễn",
        "grade": 5,
        "primary_language": "vi",
        "english_learner": True,
    }
    return StudentIn(**(values | changes))  # type: ignore[arg-type]


def test_creates_linked_rows_with_a_folded_search_key(engine, district):
    lea, school = district
    with session_scope(engine) as session:
        kid = roster.create_student(session, lea, student(school))
        parent = roster.create_guardian(
            session,
            lea,
            GuardianIn("Hương", "Nguyễn", "Vietnamese", "huong@example.com", zip_code="92501"),
        )
        roster.link(session, kid, parent, "mother")
    assert kid.name_key == "nguyen thao"
    assert parent.preferred_language == "vi"


@pytest.mark.parametrize(
    ("cds", "message"),
    [("123456", "LEA CDS code must be exactly 7 digits"), ("12345a7", "exactly 7 digits")],
)
def test_bad_lea_cds_code_is_refused(engine, cds, message):
    with session_scope(engine) as session, pytest.raises(InvalidInput, match=message):
        roster.create_lea(session, cds, "Bad District")


def test_bad_school_cds_codes_are_refused(engine, district):
    lea, _ = district
    with session_scope(engine) as session:
        lea = session.get(LEA, lea.id)
        with pytest.raises(InvalidInput, match="School CDS code must be exactly 14 digits"):
            roster.create_school(session, lea, "1964733610000", "Short")
        with pytest.raises(InvalidInput, match="does not belong to LEA 1964733"):
            roster.create_school(session, lea, "33679906100001", "Elsewhere Elementary")
        with pytest.raises(InvalidInput, match="already exists"):
            roster.create_school(session, lea, "19647336100001", "Twin Elementary")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"ssid": "12345"}, "SSID must be exactly 10 digits, got '12345'"),
        ({"ssid": "12345678901"}, "SSID must be exactly 10 digits"),
        ({"primary_language": "klingon"}, "Unknown language 'klingon'; expected one of en, es"),
        ({"grade": 13}, "Grade 13 is not a tested grade"),
        ({"grade": "PK"}, "Grade must be a number, K or TK"),
        ({"grade": "five"}, "Grade must be a number"),
        ({"first_name": "  "}, "Student first name must not be empty"),
    ],
)
def test_bad_student_values_are_refused(engine, district, changes, message):
    lea, school = district
    with session_scope(engine) as session, pytest.raises(InvalidInput, match=message):
        roster.create_student(session, lea, student(school, **changes))


def test_duplicate_ssid_is_refused(engine, district):
    lea, school = district
    with session_scope(engine) as session:
        roster.create_student(session, lea, student(school))
    with session_scope(engine) as session, pytest.raises(InvalidInput, match="already on file"):
        roster.create_student(session, lea, student(school, first_name="Other"))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"preferred_language": "xx"}, "Unknown language 'xx'"),
        ({"email": "not-an-email"}, "is not an email address"),
        ({"zip_code": "9250"}, "ZIP code must be 5 digits"),
        ({"state": "California"}, "two-letter code"),
    ],
)
def test_bad_guardian_values_are_refused(engine, district, changes, message):
    lea, _ = district
    data = GuardianIn(**({"first_name": "Ana", "last_name": "López"} | changes))  # type: ignore[arg-type]
    with session_scope(engine) as session, pytest.raises(InvalidInput, match=message):
        roster.create_guardian(session, lea, data)


def test_bulk_path_validates_every_row_and_inserts_nothing_on_refusal(engine, district):
    lea, school = district
    good = [student(school, ssid=f"10000000{i:02d}") for i in range(5)]
    with engine.begin() as connection:
        loader = BulkRoster(connection, lea.id)
        ids = loader.students(good)
        guardians = loader.guardians([GuardianIn("Ana", "López", "es")])
        loader.links([(ids[0], guardians[0], "mother", True)])
    assert ids == sorted(ids) and len(ids) == 5

    bad_rows = [
        ([student(school, ssid="2000000001"), student(school, ssid="20000X0002")], "10 digits"),
        ([student(school, ssid="2000000001")] * 2, "appears twice in the same load"),
        ([student(school, ssid="1000000003")], "SSID 1000000003 is already on file"),
        ([student(school, ssid="2000000001", school_id=999)], "not a school of this LEA"),
        ([student(school, ssid="2000000001", primary_language="de")], "Unknown language"),
    ]
    for rows, message in bad_rows:
        with pytest.raises(InvalidInput, match=message), engine.begin() as connection:
            BulkRoster(connection, lea.id).students(rows)
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(Student)) == 5


def test_every_grade_a_summative_test_is_given_in_is_on_the_roster(migrated_url: str) -> None:
    """Summative ELPAC is given from (transitional) kindergarten to grade 12, CAST once in high
    school (10, 11 or 12), the CSA in grades 3-12 (``services.core.programs``): no grade of
    theirs is refused, as K-2, 9, 10 and 12 were."""
    from services.core import db

    engine = db.make_engine(migrated_url)
    with session_scope(engine) as session:
        lea = roster.create_lea(session, "1964733", "Test Unified School District")
        school = roster.create_school(session, lea, "19647336100001", "Test K-12 Academy")
    sis = ["TK", "KG", "K", "01", "2", "9", "10", "12", 11]
    rows = [student(school, ssid=f"30000000{n:02d}", grade=g) for n, g in enumerate(sis)]
    with engine.begin() as connection:
        BulkRoster(connection, lea.id).students(rows[1:])
    with session_scope(engine) as session:
        roster.create_student(session, session.get(LEA, lea.id), rows[0])
    with engine.connect() as connection:
        grades = connection.execute(select(Student.grade).order_by(Student.ssid)).scalars().all()
    assert grades == [-1, 0, 0, 1, 2, 9, 10, 12, 11]
    engine.dispose()
