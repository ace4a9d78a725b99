"""The reports screen at 80x24: figures worked out on opening, breakdowns by key, a chart, a group
limit, the at-risk list and a CSV export whose formula-looking cells are quoted; figures that follow
the database without a key press, with their time shown only while newer ones are worked out."""

from __future__ import annotations

import csv
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from textual.widgets import DataTable

from console.app import SSRConsoleApp
from screens import reports as reports_screen
from screens.dashboard import DashboardScreen
from screens.reports import AtRiskScreen, ReportsScreen
from services.access import operators
from services.audit.log import Actor
from services.core import db
from services.core.context import ConsoleContext
from services.core.settings import Settings
from services.delivery import batches, ledger
from services.delivery.ledger import BatchStatus
from services.intake.score_reports import ScoreReport
from services.roster import groups as student_groups
from services.roster.groups import Filter
from services.roster.tables import School, Student
from tests.databases import SeedDemo
from tests.pilot import app_for, settle
from widgets.bar_chart import BarChart, bar
from widgets.form_dialog import FormDialog
from widgets.paged_table import PagedTable

SIZE = (80, 24)


@pytest.fixture
def world(sqlite_url: str, tmp_path: Path, seed_demo: SeedDemo) -> Engine:
    engine = db.make_engine(sqlite_url)
    seed_demo(engine, Settings(sqlite_url, tmp_path), students=60, seed=3, pdfs=False)
    with Session(engine) as session:
        for s in session.exec(select(Student)).all():
            session.add(
                ScoreReport(
                    student_id=s.id,  # type: ignore[arg-type]
                    program="CAASPP",  # type: ignore[arg-type]
                    admin_year=2026,
                    test="SB",
                    file_path=f"/nowhere/{s.ssid}.pdf",
                    sha256=f"{s.id:064d}",
                    received_at=datetime(2020, 1, 6, tzinfo=UTC),  # long overdue: all at risk
                )
            )
        # a school whose name a spreadsheet would run as a formula
        school = session.exec(select(School).order_by(School.id)).first()
        assert school is not None
        school.name = '=HYPERLINK("http://evil")'
        session.add(school)
        session.commit()
    yield engine
    engine.dispose()


def test_bar_is_block_characters_to_the_eighth() -> None:
    assert bar(0.5, 4) == "██  "
    assert bar(1 / 32, 4) == "▏   "
    assert bar(2.0, 3) == "███" and bar(-1, 3) == "   "


async def test_breakdowns_chart_group_risk_and_export(world: Engine, tmp_path: Path) -> None:
    settings = Settings(f"sqlite:///{tmp_path / 'ssr.db'}", tmp_path / "data")
    caaspp = operators.resolve(world, "caaspp")
    with Session(world) as session:
        students = len(session.exec(select(Student.id)).all())
        schools = len(session.exec(select(School.id)).all())
    app = SSRConsoleApp(ConsoleContext(world, settings, caaspp))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ReportsScreen)
        table = screen.query_one("#table", DataTable)
        assert table.row_count == schools + 1  # one per school and the total
        summary = str(screen.query_one("#summary").render())
        assert "By school" in summary and f"at risk {students:,}" in summary
        assert "Cost so far: A $0.00" in summary
        assert len(screen.query_one(BarChart).bars) == schools

        await pilot.press("2")  # by grade
        await settle(pilot)
        assert str(table.get_row_at(0)[0]).startswith("Grade ")
        assert str(table.get_row_at(table.row_count - 1)[1]) == f"{students:,}"

        await pilot.press("1", "x")  # export the breakdown by school
        await settle(pilot)
        assert isinstance(app.screen, FormDialog)
        await pilot.press("enter")
        await settle(pilot)
        assert app.screen is screen
        [exported] = list((tmp_path / "data" / "exports").glob("coverage-school-*.csv"))
        with exported.open(encoding="utf-8-sig", newline="") as handle:
            cells = [row[0] for row in csv.reader(handle)]
        assert '\'=HYPERLINK("http://evil")' in cells and cells[-1] == "All"

        await pilot.press("k")
        await settle(pilot)
        assert isinstance(app.screen, AtRiskScreen)
        risk = app.screen.query_one(PagedTable)
        assert risk.total == students and risk.rows[0][6] == "in no batch"
        await pilot.press("escape")
        await pilot.pause()

        site_school = operators.resolve(world, "site").school_id
        group = student_groups.create_from_filter(
            world, caaspp, "First school", "2025-26", Filter(school_id=site_school)
        )
        await pilot.press("g")
        await pilot.pause()
        assert isinstance(app.screen, FormDialog)
        app.screen.query_one("#field-group").insert_text_at_cursor(str(group.id))  # type: ignore[attr-defined]
        await pilot.press("enter")
        await settle(pilot)
        assert "group “First school”" in str(screen.query_one("#summary").render())
        assert table.row_count == 2 and str(table.get_row_at(1)[1]) == f"{group.students:,}"


async def test_site_coordinator_sees_their_school_only(world: Engine, tmp_path: Path) -> None:
    settings = Settings(f"sqlite:///{tmp_path / 'ssr.db'}", tmp_path / "data")
    app = app_for(world, settings, "site")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await settle(pilot)
        table = app.screen.query_one("#table", DataTable)
        assert table.row_count == 2  # their school and the total
        assert "your school" in str(app.screen.query_one("#summary").render())


async def test_help_desk_may_not_open_reports(world: Engine, tmp_path: Path) -> None:
    settings = Settings(f"sqlite:///{tmp_path / 'ssr.db'}", tmp_path / "data")
    app = app_for(world, settings, "helpdesk")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await settle(pilot)
        assert not isinstance(app.screen, ReportsScreen)


async def test_groups_from_a_cers_file_and_by_filter(world: Engine, tmp_path: Path) -> None:
    settings = Settings(f"sqlite:///{tmp_path / 'ssr.db'}", tmp_path / "data")
    caaspp = operators.resolve(world, "caaspp")
    with Session(world) as session:
        school = session.exec(select(School).order_by(School.id)).first()
        kids = session.exec(select(Student).where(Student.school_id == school.id)).all()  # type: ignore[union-attr]
    assert school is not None
    grade = kids[0].grade
    groups_file = tmp_path / "groups.csv"
    groups_file.write_text(
        "group_name,school id,school year,subject,SSID,login\n"
        f"Room 4,{school.cds_code},2025-26,ELA,{kids[0].ssid},t@svusd.example.org\n"
        f"Room 4,{school.cds_code},2025-26,ELA,0000000001,\n"
        f"Room 4,{school.cds_code},2025-26,ELA,12,\n",
        encoding="utf-8",
    )
    app = SSRConsoleApp(ConsoleContext(world, settings, caaspp))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await settle(pilot)
        await pilot.press("f")
        await pilot.pause()
        app.screen.query_one("#field-path").insert_text_at_cursor(str(groups_file))  # type: ignore[attr-defined]
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, FormDialog)  # the outcome
        text = str(app.screen.query_one(".intro").render())
        assert "3 lines read: 1 students added to 1 group(s)" in text
        assert "line 3: unknown SSID 0000000001" in text and "line 4: refused" in text
        await pilot.press("enter")
        await pilot.pause()

        await pilot.press("m")
        await pilot.pause()
        for name, value in (
            ("name", "Grade group"),
            ("school", school.cds_code),
            ("grade", str(grade)),
        ):
            app.screen.query_one(f"#field-{name}").insert_text_at_cursor(value)  # type: ignore[attr-defined]
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, ReportsScreen)
    made = {g.name: g for g in student_groups.list_groups(world, caaspp)}
    assert made["Room 4"].students == 1
    assert made["Grade group"].students == sum(1 for k in kids if k.grade == grade)
    [problems] = list((tmp_path / "data" / "exports").glob("group-import-problems-*.csv"))
    assert problems.read_text(encoding="utf-8-sig").count("\n") == 3  # header and two lines


async def test_leaving_while_figures_are_worked_out_is_harmless(
    world: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from services.reports import aggregates as reports

    slow = reports.refresh

    def refresh(*args):  # type: ignore[no-untyped-def]
        time.sleep(0.5)
        return slow(*args)

    monkeypatch.setattr(reports, "refresh", refresh)
    settings = Settings(f"sqlite:///{tmp_path / 'ssr.db'}", tmp_path / "data")
    app = app_for(world, settings)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await pilot.pause()
        await pilot.press("escape")
        await settle(pilot)
        assert app.is_running and not isinstance(app.screen, ReportsScreen)


async def test_tech_coordinator_sees_counts_but_not_the_students_at_risk(
    world: Engine, tmp_path: Path
) -> None:
    settings = Settings(f"sqlite:///{tmp_path / 'ssr.db'}", tmp_path / "data")
    app = app_for(world, settings, "tech")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await settle(pilot)
        assert isinstance(app.screen, ReportsScreen)
        assert "at risk" in str(app.screen.query_one("#summary").render())
        await pilot.press("k")
        await settle(pilot)
        assert isinstance(app.screen, ReportsScreen)  # refused with a notification


async def test_figures_follow_a_batch_without_a_key_press(
    world: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch created and then cancelled elsewhere (another session, the CLI) shows on the open
    Reports screen by itself; the figures' time shows only while newer ones are worked out."""
    monkeypatch.setattr(reports_screen, "AUTO_REFRESH_GAP", 0.0)
    monkeypatch.setattr(ReportsScreen, "CHANGES_SECONDS", 0.2)
    monkeypatch.setattr(ReportsScreen, "CHANGES_GAP", 0.0)
    settings = Settings(f"sqlite:///{tmp_path / 'ssr.db'}", tmp_path / "data")
    caaspp = operators.resolve(world, "caaspp")
    app = SSRConsoleApp(ConsoleContext(world, settings, caaspp))

    async def under_way(screen: ReportsScreen, wanted: bool) -> str:
        table = screen.query_one("#table", DataTable)
        for _ in range(100):  # up to 10 s, no key pressed
            await pilot.pause(0.1)
            cell = str(table.get_row_at(table.row_count - 1)[4]) if table.row_count else "0"
            if (cell != "0") is wanted:
                return cell
        raise AssertionError(f"the figures did not follow the database (under way: {cell})")

    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ReportsScreen)
        assert await under_way(screen, False) == "0"
        assert "as of" not in str(screen.query_one("#summary").render())  # current: no time

        batch_id = batches.create(world, caaspp, batches.Selection(), name="Elsewhere")
        shown = int((await under_way(screen, True)).replace(",", ""))
        assert shown > 0
        assert "as of" not in str(screen.query_one("#summary").render())

        # While newer figures are worked out, the ones shown say when they are from.
        release = threading.Event()
        work_out = reports_screen.reports.refresh

        def slow_refresh(*args: object) -> int:
            release.wait(10)
            return work_out(*args)  # type: ignore[arg-type]

        monkeypatch.setattr(reports_screen.reports, "refresh", slow_refresh)
        ledger.set_batch_status(world, Actor.of(caaspp), batch_id, BatchStatus.CANCELLED)
        for _ in range(100):
            await pilot.pause(0.1)
            summary = str(screen.query_one("#summary").render())
            if "working out" in summary:
                break
        assert "as of " in summary and "working out" in summary, summary
        release.set()
        assert await under_way(screen, False) == "0"
        await settle(pilot)
        assert "as of" not in str(screen.query_one("#summary").render())


async def test_dashboard_follows_a_batch_without_a_key_press(
    world: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(DashboardScreen, "CHANGES_SECONDS", 0.2)
    settings = Settings(f"sqlite:///{tmp_path / 'ssr.db'}", tmp_path / "data")
    caaspp = operators.resolve(world, "caaspp")
    app = SSRConsoleApp(ConsoleContext(world, settings, caaspp))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        assert "No delivery batches yet" in str(screen.query_one("#batches").render())
        batch_id = batches.create(world, caaspp, batches.Selection(), name="Elsewhere")
        for _ in range(100):  # up to 10 s, no key pressed
            await pilot.pause(0.1)
            if f"B{batch_id} Elsewhere" in str(screen.query_one("#batches").render()):
                break
        else:
            raise AssertionError("the dashboard did not show the new batch")
