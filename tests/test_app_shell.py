"""The app shell driven by keys at 80x24: every destination, help overlay, palette, refusals."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from console.app import SSRConsoleApp
from console.navigation import DESTINATIONS
from screens.dashboard import DashboardScreen
from screens.help import HelpScreen
from screens.placeholder import PlaceholderScreen
from services.context import ConsoleContext
from services.models import LEA, Guardian, Operator, Role, School, Student, StudentGuardian

SIZE = (80, 24)


@pytest.fixture
def world(engine):  # type: ignore[no-untyped-def]
    """One LEA, two schools, 60 students with a guardian each, one operator per role."""
    with Session(engine, expire_on_commit=False) as session:
        lea = LEA(cds_code="1234567", name="Shell Unified", county="Test")
        session.add(lea)
        session.flush()
        schools = [
            School(lea_id=lea.id, cds_code=f"1234567{n:07d}", name=f"School {n}") for n in (1, 2)
        ]
        session.add_all(schools)
        session.flush()
        for i in range(60):
            school = schools[i % 2]
            last, first = f"Last{i:02d}", f"First{i:02d}"
            student = Student(
                ssid=f"{1000000000 + i}",
                lea_id=lea.id,
                school_id=school.id,
                first_name=first,
                last_name=last,
                name_key=f"{last} {first}".lower(),
                grade=3 + i % 6,
            )
            guardian = Guardian(
                lea_id=lea.id,
                first_name="G",
                last_name=last,
                name_key=f"{last} g".lower(),
                preferred_language=["en", "es", "vi"][i % 3],
                email=f"g{i}@example.org" if i % 4 else None,
                uses_portal=i % 5 == 0,
                address_line1=f"{i} Main St" if i % 7 else None,
            )
            session.add_all([student, guardian])
            session.flush()
            session.add(StudentGuardian(student_id=student.id, guardian_id=guardian.id))
        operators = {
            role: Operator(
                username=role.value,
                display_name=f"{role.label} person",
                role=role,
                lea_id=lea.id,
                school_id=schools[0].id if role is Role.SITE else None,
            )
            for role in Role
        }
        session.add_all(operators.values())
        session.commit()
    return engine, operators


def make_app(world, role: Role, settings) -> SSRConsoleApp:  # type: ignore[no-untyped-def]
    engine, operators = world
    return SSRConsoleApp(ConsoleContext(engine, settings, operators[role]))


async def test_dashboard_first_with_operator_in_title(world, settings) -> None:  # type: ignore[no-untyped-def]
    app = make_app(world, Role.LEA_CAASPP, settings)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, DashboardScreen)
        assert "LEA CAASPP coordinator person" in app.sub_title
        assert "Shell Unified (CDS 1234567)" in app.sub_title
        roster = str(app.screen.query_one("#roster").render())
        assert "Students   60" in roster


async def test_every_destination_by_key_with_help_and_back(world, settings) -> None:  # type: ignore[no-untyped-def]
    app = make_app(world, Role.LEA_CAASPP, settings)
    async with app.run_test(size=SIZE) as pilot:
        for destination in DESTINATIONS:
            await pilot.press(destination.key)
            await pilot.pause()
            screen = app.screen
            assert screen.title == destination.title or destination.key == "d"
            if destination.issue:
                assert isinstance(screen, PlaceholderScreen)
                assert "issue" in screen.owner
            await pilot.press("question_mark")
            await pilot.pause()
            assert isinstance(app.screen, HelpScreen)
            keys = [entry.key for entry in app.screen.keys]
            assert "?" in keys and "esc" in keys
            await pilot.press("escape")
            await pilot.pause()
            assert app.screen is screen
            await pilot.press("escape")
            await pilot.pause()
            assert isinstance(app.screen, DashboardScreen)
