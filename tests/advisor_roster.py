"""A small, hand-made roster whose advisor facts are known exactly (used by the advisor tests).

LEA 1234567 "Sample Unified" with two schools. Families (guardians) and their children:
  g1 portal + email + address: s1 (CAASPP + ELPAC), s2 (CAASPP) at Alder; s7 at Birch
  g2 email + address: s3 (a 2025 ELPAC report only, so one estimated SSR)
  g3 address only: s4          g4 blank email, no address: s5
  g5 portal, address, no email: s6 at Birch
  g6 email + address (not primary) and g7 address only (primary): guardians of s9 at Birch at
  one address, one household (``services.roster.households``), so s9's family is g7 and g6 is not
  counted as a family
  s8 at Birch has no guardian on the roster.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from services.access.tables import Operator, Role
from services.core.db import session_scope
from services.core.programs import Program
from services.intake.score_reports import ScoreReport
from services.roster import households
from services.roster.tables import LEA, Guardian, School, Student, StudentGuardian


@dataclass(frozen=True)
class Roster:
    lea_id: int
    alder_id: int
    birch_id: int
    guardians: dict[str, int]
    operators: dict[str, Operator]


ADDRESS = {"address_line1": "1 Main St", "city": "Fresno", "state": "CA", "zip_code": "93701"}


def build(engine: Engine, *, reports: bool = True, other_lea: bool = True) -> Roster:
    with session_scope(engine) as session:
        lea = LEA(cds_code="1234567", name="Sample Unified", county="Fresno")
        session.add(lea)
        session.flush()
        alder = School(lea_id=lea.id, cds_code="12345670000001", name="Alder Elementary")
        birch = School(lea_id=lea.id, cds_code="12345670000002", name="Birch Middle")
        session.add_all([alder, birch])
        session.flush()
        specs = {
            "g1": {"uses_portal": True, "email": "g1@example.org", **ADDRESS},
            "g2": {"email": "g2@example.org", **ADDRESS},
            "g3": dict(ADDRESS),
            "g4": {"email": "   "},
            "g5": {"uses_portal": True, **ADDRESS},
            "g6": {"email": "g6@example.org", **ADDRESS},
            "g7": dict(ADDRESS),
        }
        guardians = {}
        for key, fields in specs.items():
            guardian = Guardian(
                lea_id=lea.id,
                first_name=key,
                last_name="Family",
                name_key=f"family {key}",
                **fields,
            )
            session.add(guardian)
            guardians[key] = guardian
        students = {}
        for n in range(1, 10):
            school = alder if n <= 5 else birch
            student = Student(
                ssid=f"{n:010d}",
                lea_id=lea.id,
                school_id=school.id if n != 7 else birch.id,
                first_name=f"s{n}",
                last_name="Student",
                name_key=f"student s{n}",
                grade=5,
            )
            session.add(student)
            students[f"s{n}"] = student
        session.flush()
        links = [
            ("s1", "g1"), ("s2", "g1"), ("s7", "g1"), ("s3", "g2"), ("s4", "g3"), ("s5", "g4"),
            ("s6", "g5"), ("s9", "g6"), ("s9", "g7"),
        ]  # fmt: skip
        for student_key, guardian_key in links:
            session.add(
                StudentGuardian(
                    student_id=students[student_key].id,
                    guardian_id=guardians[guardian_key].id,
                    is_primary=guardian_key != "g6",
                )
            )
        session.flush()
        households.assign(session.connection(), lea.id)  # as the SIS import does
        if reports:
            rows = [
                ("s1", Program.CAASPP, 2026, "ELA"),
                ("s1", Program.CAASPP, 2026, "Math"),
                ("s1", Program.ELPAC, 2026, "Summative"),
                ("s2", Program.CAASPP, 2026, "ELA"),
                ("s3", Program.ELPAC, 2025, "Summative"),
            ]
            for n, (key, program, year, test) in enumerate(rows):
                session.add(
                    ScoreReport(
                        student_id=students[key].id,
                        program=program,
                        admin_year=year,
                        test=test,
                        file_path=f"{key}-{n}.pdf",
                        sha256=f"{n:064d}",
                    )
                )
        operators = {
            name: Operator(
                username=name,
                display_name=name.title(),
                role=role,
                lea_id=lea.id,
                school_id=alder.id if role is Role.SITE else None,
            )
            for name, role in [
                ("caaspp", Role.LEA_CAASPP),
                ("elpac", Role.LEA_ELPAC),
                ("site", Role.SITE),
                ("tech", Role.TECH),
                ("helpdesk", Role.HELPDESK),
            ]
        }
        session.add_all(operators.values())
        if other_lea:  # a neighbour whose families must never be counted
            other = LEA(cds_code="7654321", name="Other District")
            session.add(other)
            session.flush()
            session.add(
                Guardian(
                    lea_id=other.id, first_name="x", last_name="y", name_key="y x", uses_portal=True
                )
            )
        session.flush()
        return Roster(
            lea.id,  # type: ignore[arg-type]
            alder.id,  # type: ignore[arg-type]
            birch.id,  # type: ignore[arg-type]
            {k: g.id for k, g in guardians.items()},  # type: ignore[misc]
            operators,
        )
