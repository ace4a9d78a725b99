"""Student groups: a CERS group file with every bad line accounted for, groups by filter, scope."""

from __future__ import annotations

import io

import pytest
from sqlmodel import Session, col, select

from services.access import operators
from services.audit.log import verify
from services.audit.tables import AuditEvent
from services.core.errors import InvalidInput, NotFound, PermissionDenied
from services.roster import groups as student_groups
from services.roster.group_tables import StudentGroupLogin, StudentGroupMember
from services.roster.groups import Filter
from services.roster.tables import School, Student, StudentGuardian


@pytest.fixture
def seeded(engine, settings, seed_demo):  # type: ignore[no-untyped-def]
    seed_demo(engine, settings, students=120, seed=5, pdfs=False)
    return engine


def _students(engine, school_id: int) -> list[Student]:  # type: ignore[no-untyped-def]
    with Session(engine) as session:
        return list(
            session.exec(select(Student).where(Student.school_id == school_id).order_by(Student.id))
        )


def _schools(engine) -> list[School]:  # type: ignore[no-untyped-def]
    with Session(engine) as session:
        return list(session.exec(select(School).order_by(School.id)))


def test_group_file_imports_good_lines_and_names_every_other_line(seeded) -> None:  # type: ignore[no-untyped-def]
    first, second = _schools(seeded)[:2]
    kids = _students(seeded, first.id)  # type: ignore[arg-type]
    other = _students(seeded, second.id)[0]  # type: ignore[arg-type]
    cds = first.cds_code
    text = "\n".join(
        [
            "Group Name,School ID,School Year,Subject,SSID,Login",
            f"Room 12,{cds},2025-26,ELA,{kids[0].ssid},teacher@svusd.example.org",
            f"Room 12,{cds},2025-2026,ELA,{kids[1].ssid},teacher@svusd.example.org",
            f"Room 12,{cds},2025-26,ELA,{kids[1].ssid},",  # a repeat: counted once
            f"Room 12,{cds},2025-26,ELA,12345,",  # line 5: malformed SSID
            f"Room 12,{cds},2025-27,ELA,{kids[2].ssid},",  # line 6: bad year
            f"Room 12,{cds},2025-26,ELA,9999999999,",  # line 7: unknown SSID
            f"Room 12,{cds},2025-26,ELA,{other.ssid},",  # line 8: another school's student
            f"Room 12,{cds[:-1]}9,2025-26,ELA,{kids[3].ssid},",  # line 9: not our school
            f"Room 12,{cds},2025-26",  # line 10: too few fields
            "",
            f"Math A,{cds},2025-26,Math,{kids[4].ssid},not-an-email",  # line 12
            f"Math A,{cds},2025-26,Math,{kids[5].ssid},",
        ]
    )
    report = student_groups.import_csv(
        seeded, operators.resolve(seeded, "caaspp"), io.StringIO(text)
    )
    assert report.lines == 11 and report.groups == 2 and report.added == 3
    refused = {p.line: p.message for p in report.problems}
    assert sorted(refused) == [5, 6, 8, 9, 10, 12]
    assert "10 digits" in refused[5] and "2025-26" in refused[6]
    assert "not enrolled" in refused[8] and "not a school of your LEA" in refused[9]
    assert "fields" in refused[10] and "email" in refused[12]
    assert [(p.line, p.message) for p in report.unknown_ssids] == [(7, "9999999999")]
    # every non-blank line is either used or listed
    assert report.lines == 4 + report.problem_count + report.unknown_count  # lines 2-4, 13 used
    groups = student_groups.list_groups(seeded, operators.resolve(seeded, "caaspp"))
    assert {(g.name, g.school_year, g.subject, g.students) for g in groups} == {
        ("Room 12", "2025-26", "ELA", 2),
        ("Math A", "2025-26", "Math", 1),
    }
    with Session(seeded) as session:
        logins = session.exec(select(StudentGroupLogin.login)).all()
        event = session.exec(select(AuditEvent).where(AuditEvent.action == "group.import")).one()
    assert logins == ["teacher@svusd.example.org"]
    assert '"unknown_ssids":1' in event.detail and verify(seeded).ok

    again = student_groups.import_csv(
        seeded, operators.resolve(seeded, "caaspp"), io.StringIO(text)
    )
    assert again.added == 0 and again.groups == 2  # importing the same file again adds nothing


def test_a_file_without_the_cers_columns_is_refused_in_a_sentence(seeded) -> None:  # type: ignore[no-untyped-def]
    caaspp = operators.resolve(seeded, "caaspp")
    with pytest.raises(InvalidInput, match="lacks column.*subject"):
        student_groups.import_csv(
            seeded, caaspp, io.StringIO("group_name,school_id,school_year,ssid,login\n")
        )
    with pytest.raises(InvalidInput, match="empty"):
        student_groups.import_csv(seeded, caaspp, io.StringIO(""))


def test_group_by_filter_and_its_families(seeded) -> None:  # type: ignore[no-untyped-def]
    caaspp = operators.resolve(seeded, "caaspp")
    school = _schools(seeded)[0]
    grade = _students(seeded, school.id)[0].grade  # type: ignore[arg-type]
    made = student_groups.create_from_filter(
        seeded, caaspp, "Grade check", "2025-26", Filter(school_id=school.id, grade=grade)
    )
    expected = [s.id for s in _students(seeded, school.id) if s.grade == grade]  # type: ignore[arg-type]
    assert made.students == len(expected) and school.name in made.description
    with Session(seeded) as session:
        members = session.exec(
            select(StudentGroupMember.student_id).where(StudentGroupMember.group_id == made.id)
        ).all()
        families = set(
            session.exec(
                select(StudentGuardian.guardian_id).where(
                    col(StudentGuardian.student_id).in_(expected), col(StudentGuardian.is_primary)
                )
            ).all()
        )
    assert sorted(members) == expected
    assert set(student_groups.guardian_ids(seeded, caaspp, made.id)) == families
    with pytest.raises(InvalidInput, match="already exists"):
        student_groups.create_from_filter(
            seeded, caaspp, "Grade check", "2025-26", Filter(school_id=school.id, grade=grade)
        )
    absent = next(g for g in (3, 6, 11) if g not in {s.grade for s in _students(seeded, school.id)})  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="No student matches"):
        student_groups.create_from_filter(
            seeded, caaspp, "Nobody", "2025-26", Filter(school_id=school.id, grade=absent)
        )
    with pytest.raises(InvalidInput, match="not a tested grade"):  # ELPAC tests TK to 12
        student_groups.create_from_filter(seeded, caaspp, "Bad", "2025-26", Filter(grade=13))


def test_site_coordinator_is_held_to_their_school(seeded) -> None:  # type: ignore[no-untyped-def]
    caaspp, site = operators.resolve(seeded, "caaspp"), operators.resolve(seeded, "site")
    schools = _schools(seeded)
    other = next(s for s in schools if s.id != site.school_id)
    theirs = student_groups.create_from_filter(
        seeded, caaspp, "Other school", "2025-26", Filter(school_id=other.id)
    )
    with pytest.raises(PermissionDenied, match="own school"):
        student_groups.create_from_filter(
            seeded, site, "Sneaky", "2025-26", Filter(school_id=other.id)
        )
    mine = student_groups.create_from_filter(seeded, site, "Mine", "2025-26", Filter())
    assert [g.id for g in student_groups.list_groups(seeded, site)] == [mine.id]
    with pytest.raises(NotFound):
        student_groups.get(seeded, site, theirs.id)
    with pytest.raises(PermissionDenied):
        student_groups.list_groups(seeded, operators.resolve(seeded, "helpdesk"))
    own = _students(seeded, site.school_id)  # type: ignore[arg-type]
    assert mine.students == len(own)
    student_groups.delete_group(seeded, caaspp, theirs.id)
    with pytest.raises(NotFound):
        student_groups.get(seeded, caaspp, theirs.id)


def test_a_group_file_that_cannot_be_read_is_named(seeded, tmp_path) -> None:  # type: ignore[no-untyped-def]
    caaspp = operators.resolve(seeded, "caaspp")
    with pytest.raises(InvalidInput, match="There is no file"):
        student_groups.import_file(seeded, caaspp, tmp_path / "missing.csv")
    latin = tmp_path / "latin1.csv"
    latin.write_bytes(
        "group_name,school_id,school_year,subject,ssid,login\nÉcole,".encode("latin-1")
    )
    with pytest.raises(InvalidInput, match="not UTF-8"):
        student_groups.import_file(seeded, caaspp, latin)
