"""Roster import from OneRoster 1.1 CSV and the SIS contacts CSV, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from services.audit import log as audit
from services.audit.tables import AuditEvent
from services.core import db
from services.core.errors import InvalidInput
from services.roster import records as roster
from services.roster import sis_import
from services.roster.sis_import import RosterOptions
from services.roster.tables import LEA, Guardian, Student, StudentGuardian

LEA_CDS = "1964733"
SCHOOL = "19647330000001"
ORGS = f"""sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId
d1,active,2026-08-01,Test Unified,district,{LEA_CDS},
s1,active,2026-08-01,Oak Elementary,school,{SCHOOL},d1
s2,active,2026-08-01,Pine Middle,school,19647330000002,d1
"""
USERS_HEADER = (
    "sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,userIds,"
    "givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,password"
)
STUDENTS = [
    'u1,active,,true,s1,student,,{SSID:1000000001},Ana,Lopez,,1000000001,,,,"p1,p2",04,',
    "u2,active,,true,s2,student,,{SSID:1000000002},Ben,Lopez,,1000000002,,,,p1,07,",
    "u3,active,,true,s1,student,,,Cy,Ng,,1000000003,,,,p3,03,",
    "u4,active,,true,s1,student,,,Dee,Ng,,1000000004,,,,,PK,",  # preschool: not tested
]
GUARDIANS = [
    'p1,active,,true,s1,parent,,,Maria,Lopez,,,maria@example.org,(951) 555-0101,,"u1,u2",,',
    "p2,active,,true,s1,guardian,,,Jose,Lopez,,,jose@example.org,,,u1,,",
    "p3,active,,true,s1,relative,,,Hoa,Ng,,,,,(951) 555-0103,u3,,",
]
CONTACTS = """ssid,guardian_id,home_language,elas,mail_address,mail_address2,mail_city,mail_state,mail_zip,correspondence_language,receives_records,do_not_contact,portal_user
1000000001,p1,01,EL,12 Oak Street,,Riverside,CA,92501,spa,Y,N,Y
1000000001,p2,01,EL,12 Oak St.,,Riverside,CA,92501,,Y,N,N
1000000002,p1,01,RFEP,12 Oak Street,,Riverside,CA,92501,,Y,N,Y
1000000003,p3,hmn,EO,5 Pine Ave,Apt 2,Riverside,CA,92502,,N,Y,N
"""


def write(folder: Path, students=STUDENTS, guardians=GUARDIANS, contacts=CONTACTS) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "orgs.csv").write_text(ORGS)
    (folder / "users.csv").write_text("\n".join([USERS_HEADER, *students, *guardians]) + "\n")
    (folder / "contacts.csv").write_text(contacts)
    return [folder, folder / "contacts.csv"]


@pytest.fixture
def world(migrated_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = db.make_engine(migrated_url)
    with Session(engine) as session:
        lea = roster.create_lea(session, LEA_CDS, "Test Unified")
        session.commit()
        lea_id = lea.id
    yield engine, lea_id, tmp_path
    engine.dispose()


def run(engine: Engine, lea_id: int, tmp: Path, paths: list[Path], **options):  # type: ignore[no-untyped-def]
    scratch = tmp / "scratch"
    scratch.mkdir(exist_ok=True)
    return sis_import.import_roster(
        engine,
        paths,
        lea_id=lea_id,
        actor=audit.SYSTEM_ACTOR,
        scratch=scratch,
        options=RosterOptions(**options),
    )


def students(engine: Engine) -> dict[str, Student]:
    with Session(engine) as session:
        return {s.ssid: s for s in session.exec(select(Student)).scalars()}  # type: ignore[call-overload]


def test_import_reads_oneroster_and_contacts(world) -> None:  # type: ignore[no-untyped-def]
    engine, lea_id, tmp = world
    result = run(engine, lea_id, tmp, write(tmp / "in"))
    assert result.refused == [], result.refused
    assert (result.schools.new, result.students.new, result.guardians.new) == (2, 3, 3)
    assert result.not_tested == 1 and result.links.new == 4
    got = students(engine)
    assert set(got) == {"1000000001", "1000000002", "1000000003"}
    ana, cy = got["1000000001"], got["1000000003"]
    assert (ana.primary_language, ana.elas, ana.english_learner, ana.grade) == ("es", "EL", True, 4)
    assert (cy.home_language_code, cy.primary_language) == ("hmn", "en")  # kept, written in English
    assert result.other_languages == {"hmn": 1}
    with Session(engine) as session:
        guardians = {g.sis_id: g for g in session.exec(select(Guardian)).scalars()}  # type: ignore[call-overload]
        links = {
            (link.student_id, link.guardian_id): link
            for link in session.exec(select(StudentGuardian)).scalars()  # type: ignore[call-overload]
        }
        events = (
            session.exec(  # type: ignore[call-overload]
                select(AuditEvent).where(col(AuditEvent.action) == "roster.import")
            )
            .scalars()
            .all()
        )
    maria, jose, hoa = guardians["p1"], guardians["p2"], guardians["p3"]
    assert (maria.preferred_language, maria.uses_portal, maria.phone) == (
        "es",
        True,
        "(951) 555-0101",
    )
    assert jose.preferred_language == "es"  # no correspondence language: the child's
    assert hoa.do_not_contact and hoa.address_line2 == "Apt 2"
    assert not links[(cy.id, hoa.id)].receives_records
    assert links[(ana.id, maria.id)].is_primary and not links[(ana.id, jose.id)].is_primary
    assert links[(ana.id, jose.id)].relationship == "guardian"
    # same children (lowest: Ana), same address once normalised ("Oak St." = "Oak Street")
    assert maria.household == jose.household is not None
    assert len(events) == 1 and json.loads(events[0].detail)["students_new"] == 3


def test_reimport_changes_nothing_and_a_change_changes_exactly_it(world) -> None:  # type: ignore[no-untyped-def]
    engine, lea_id, tmp = world
    paths = write(tmp / "in")
    run(engine, lea_id, tmp, paths)
    again = run(engine, lea_id, tmp, paths)
    assert (again.students.new, again.students.changed, again.guardians.changed) == (0, 0, 0)
    assert (again.links.new, again.links.changed, again.links.removed, again.withdrawn) == (
        0,
        0,
        0,
        0,
    )
    assert again.unchanged_students == 3 and again.unchanged_guardians == 3
    changed = [STUDENTS[0].replace(",04,", ",05,"), STUDENTS[1], STUDENTS[3]]  # u3 left
    guardians = [GUARDIANS[0].replace("maria@", "maria.l@"), GUARDIANS[1]]
    before = students(engine)
    dry = run(engine, lea_id, tmp, write(tmp / "v2", changed, guardians), dry_run=True)
    assert students(engine) == before or all(
        students(engine)[k].grade == before[k].grade for k in before
    )
    assert dry.students.examples == ["SSID 1000000001: grade"]
    assert dry.guardians.examples == ["guardian p1: email"]
    assert dry.missing_students == ["1000000003"] and dry.missing_guardians == 1
    assert students(engine)["1000000003"].withdrawn_at is None  # dry: nothing written
    real = run(engine, lea_id, tmp, write(tmp / "v3", changed, guardians))
    assert (real.students.changed, real.guardians.changed, real.withdrawn) == (1, 1, 1)
    after = students(engine)
    assert after["1000000001"].grade == 5 and after["1000000003"].withdrawn_at is not None
    assert len(after) == 3  # withdrawn, never deleted
    back = run(engine, lea_id, tmp, paths)
    assert back.students.fields["reinstated"] == 1
    assert students(engine)["1000000003"].withdrawn_at is None


def test_bad_lines_are_refused_one_by_one(world) -> None:  # type: ignore[no-untyped-def]
    engine, lea_id, tmp = world
    bad_students = [
        *STUDENTS,
        "u5,active,,true,s1,student,,,Ed,Bad,,12345,,,,,04,",  # bad SSID
        "u6,active,,true,s1,student,,,Fay,Dup,,1000000001,,,,,04,",  # duplicate SSID
        "u7,active,,true,s9,student,,,Gus,Nowhere,,1000000007,,,,,04,",  # unknown school
    ]
    bad_guardians = [*GUARDIANS, "p9,active,,true,s1,parent,,,Ike,Ghost,,,,,,u99,,"]
    paths = write(tmp / "in", bad_students, bad_guardians)
    (tmp / "in" / "orgs.csv").write_text(ORGS + "s3,active,,Elm High,school,1964733000000X,d1\n")
    result = run(engine, lea_id, tmp, paths)
    reasons = {(r.file.rsplit("/", 1)[-1], r.line): r.reason for r in result.refused}
    assert "School CDS code must be exactly 14 digits" in reasons[("orgs.csv", 5)]
    assert "SSID must be exactly 10 digits" in reasons[("users.csv", 6)]
    assert reasons[("users.csv", 7)] == "SSID 1000000001 is already on line 2"
    assert "names no school" in reasons[("users.csv", 8)]
    assert "u99, who is not a student" in reasons[("users.csv", 12)]
    assert len(result.refused) == 5
    assert result.students.new == 3 and result.guardians.new == 3  # the rest went in


def test_missing_columns_refuse_the_file(world) -> None:  # type: ignore[no-untyped-def]
    engine, lea_id, tmp = world
    paths = write(tmp / "in")
    (tmp / "in" / "users.csv").write_text("sourcedId,role,givenName\nu1,student,Ana\n")
    with pytest.raises(InvalidInput, match="users.csv lacks the column.*familyName"):
        run(engine, lea_id, tmp, paths)
    assert students(engine) == {}


def test_other_encodings_are_refused_with_the_expected_one(world) -> None:  # type: ignore[no-untyped-def]
    engine, lea_id, tmp = world
    paths = write(tmp / "in")
    users = tmp / "in" / "users.csv"
    text = users.read_text()
    users.write_bytes(text.encode("utf-16"))
    with pytest.raises(InvalidInput, match="users.csv is UTF-16; save it as UTF-8"):
        run(engine, lea_id, tmp, paths)
    # Windows-1252 accents: only that line is refused, saying UTF-8 is expected
    users.write_bytes(text.replace("Ben,Lopez", "Benoît,López").encode("cp1252"))
    result = run(engine, lea_id, tmp, paths)
    assert [(r.line, "must be UTF-8" in r.reason) for r in result.refused] == [(3, True)]
    assert result.guardians.new == 3  # Ben's guardian is not at fault
    assert result.students.new == 2


def test_a_50_mb_line_is_refused_without_holding_it(world) -> None:  # type: ignore[no-untyped-def]
    import resource

    engine, lea_id, tmp = world
    paths = write(tmp / "in")
    users = tmp / "in" / "users.csv"
    with open(users, "a") as out:
        out.write("u8,active,,true,s1,student,,,Huge," + "x" * 50_000_000 + ",,,,,04,\n")
        out.write("u10,active,,true,s1,student,,,Jo,Fine,,1000000010,,,,,04,\n")
        # a quoted field spread over 40,000 short lines: bounded by csv.field_size_limit
        out.write('u9,active,,true,s1,student,,,Ivy,"' + "y\n" * 40_000 + '",1000000009,,,,,04,\n')
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = run(engine, lea_id, tmp, paths)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 40, f"peak RSS grew {grown_mb:.0f} MB reading a 50 MB line"
    reasons = [r.reason for r in result.refused]
    assert any("longer than 65536 bytes" in r for r in reasons), reasons
    assert any("field larger than field limit" in r for r in reasons), reasons
    assert "1000000010" in students(engine)


def test_a_oneroster_zip_and_userids_ssid(world) -> None:  # type: ignore[no-untyped-def]
    engine, lea_id, tmp = world
    write(tmp / "in")
    archive = tmp / "oneroster.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(tmp / "in" / "orgs.csv", "orgs.csv")
        zf.write(tmp / "in" / "users.csv", "export/users.csv")
    result = run(engine, lea_id, tmp, [archive], ssid_user_id_type="SSID")
    # u3 and u4 have no {SSID:...}: u3 refused (u4's grade is looked at first: passed over);
    # u3's guardian still goes in, without the link
    assert [r.line for r in result.refused] == [4]
    assert set(students(engine)) == {"1000000001", "1000000002"}
    assert not any((tmp / "scratch").iterdir())  # unpacked members are gone


def test_a_zip_bomb_is_refused(world) -> None:  # type: ignore[no-untyped-def]
    engine, lea_id, tmp = world
    write(tmp / "in")
    archive = tmp / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(tmp / "in" / "orgs.csv", "orgs.csv")
        zf.writestr("users.csv", (USERS_HEADER + "\n") + " " * 200_000_000)
    with pytest.raises(InvalidInput, match="users.csv was refused: .*expand"):
        run(engine, lea_id, tmp, [archive])


def test_the_lea_must_own_the_schools(world) -> None:  # type: ignore[no-untyped-def]
    engine, lea_id, tmp = world
    paths = write(tmp / "in")
    (tmp / "in" / "orgs.csv").write_text(ORGS.replace(SCHOOL, "33679900000001"))
    result = run(engine, lea_id, tmp, paths)
    assert "does not belong to LEA 1964733" in result.refused[0].reason
    with Session(engine) as session:
        assert session.get(LEA, lea_id) is not None
