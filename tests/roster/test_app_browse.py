"""Paged, scoped browsing: the services behind the tables, and the paged table driven by keys."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlmodel import Session
from textual.app import App, ComposeResult

from console.app import SSRConsoleApp
from screens.students import StudentsScreen
from services.access import operators
from services.audit import browse as audit_browse
from services.audit import log as audit
from services.core import db, paging
from services.core.context import ConsoleContext
from services.core.errors import InvalidInput, PermissionDenied
from services.core.paging import Page
from services.reports import dashboard
from services.roster import browse
from services.roster.tables import School, Student
from tests.pilot import settle
from widgets.paged_table import PagedTable

SIZE = (80, 24)


@pytest.fixture
def seeded(engine, settings, seed_demo):  # type: ignore[no-untyped-def]
    seed_demo(engine, settings, students=300, seed=11, pdfs=False)
    return engine


def op(engine, name: str):  # type: ignore[no-untyped-def]
    return operators.resolve(engine, name)


def all_students(engine, **where) -> list[Student]:  # type: ignore[no-untyped-def]
    with Session(engine) as session:
        query = select(Student).filter_by(**where).order_by(Student.name_key, Student.id)
        return list(session.scalars(query))


def test_students_page_is_one_window_in_name_order(seeded) -> None:  # type: ignore[no-untyped-def]
    everyone = all_students(seeded)
    page = browse.students_page(seeded, op(seeded, "caaspp"), 40, 10)
    assert page.total == len(everyone) and not page.capped
    assert [row[0] for row in page.rows] == [s.ssid for s in everyone[40:50]]


def test_name_filter_is_a_case_and_accent_blind_prefix(seeded) -> None:  # type: ignore[no-untyped-def]
    caaspp = op(seeded, "caaspp")
    target = all_students(seeded)[123]
    typed = f"{target.last_name.upper()}, {target.first_name[:2]}"
    page = browse.students_page(seeded, caaspp, 0, 50, typed)
    expected = [
        s.ssid for s in all_students(seeded) if s.name_key.startswith(browse.name_key(typed))
    ]
    assert [row[0] for row in page.rows] == expected and target.ssid in expected
    assert page.total == len(expected)


def test_ssid_filter_is_a_prefix_in_ssid_order(seeded) -> None:  # type: ignore[no-untyped-def]
    caaspp = op(seeded, "caaspp")
    prefix = all_students(seeded)[5].ssid[:3]
    page = browse.students_page(seeded, caaspp, 0, 100, prefix)
    expected = sorted(s.ssid for s in all_students(seeded) if s.ssid.startswith(prefix))
    assert [row[0] for row in page.rows] == expected


def test_filtered_counts_stop_at_the_cap_and_the_full_count_is_exact(seeded, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(paging, "COUNT_CAP", 5)
    caaspp = op(seeded, "caaspp")
    initial = all_students(seeded)[0].name_key[0]
    matches = [s for s in all_students(seeded) if s.name_key.startswith(initial)]
    assert len(matches) > 5
    page = browse.students_page(seeded, caaspp, 0, 10, initial)
    assert (page.total, page.capped) == (5, True) and len(page.rows) == min(10, len(matches))
    assert browse.students_page(seeded, caaspp, 0, 10).total == len(all_students(seeded))


def test_site_coordinator_sees_only_their_school(seeded) -> None:  # type: ignore[no-untyped-def]
    site = op(seeded, "site")
    assert site.school_id is not None
    own = all_students(seeded, school_id=site.school_id)
    page = browse.students_page(seeded, site, 0, 1000)
    assert page.total == len(own) < len(all_students(seeded))
    assert [row[0] for row in page.rows] == [s.ssid for s in own]


def test_tech_coordinator_may_not_view_students(seeded) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PermissionDenied, match="may not view students"):
        browse.students_page(seeded, op(seeded, "tech"), 0, 10)


def test_help_desk_sees_no_score_columns(seeded) -> None:  # type: ignore[no-untyped-def]
    helpdesk = op(seeded, "helpdesk")
    assert browse.student_columns(helpdesk) == ("SSID", "Name", "Gr", "School")
    row = browse.students_page(seeded, helpdesk, 0, 1).rows[0]
    assert len(row) == 4
    assert len(browse.students_page(seeded, op(seeded, "caaspp"), 0, 1).rows[0]) == 7


def test_audit_page_filters_by_operator_action_or_target(seeded) -> None:  # type: ignore[no-untyped-def]
    caaspp = op(seeded, "caaspp")
    with db.session_scope(seeded) as session:
        for i in range(3):
            audit.record(session, audit.Actor.of(caaspp), "credential.reset", f"lea:{i}")
        audit.record(session, audit.Actor("x", "lea_caaspp", caaspp.lea_id + 1), "other.lea", "x")
    everything = audit_browse.audit_page(seeded, caaspp, 0, 50)
    assert "other.lea" not in [row[3] for row in everything.rows]  # another LEA's event
    assert everything.rows[0][3] == "credential.reset"  # newest first
    assert audit_browse.audit_page(seeded, caaspp, 0, 50, "credential").total == 3
    assert audit_browse.audit_page(seeded, caaspp, 0, 50, "caaspp").total == 3
    assert audit_browse.audit_page(seeded, caaspp, 0, 50, "lea:1").total == 1
    with pytest.raises(PermissionDenied, match="may not view the audit log"):
        audit_browse.audit_page(seeded, op(seeded, "helpdesk"), 0, 10)


async def test_students_table_pages_and_filters_by_keys(seeded, settings) -> None:  # type: ignore[no-untyped-def]
    everyone = all_students(seeded)
    app = SSRConsoleApp(ConsoleContext(seeded, settings, op(seeded, "caaspp")))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        await settle(pilot)
        assert isinstance(app.screen, StudentsScreen)
        table = app.screen.query_one(PagedTable)
        size = table.page_size
        assert 10 <= size <= 20 and len(table.rows) == size  # one window, not 300 rows
        assert table.rows[0][0] == everyone[0].ssid
        await pilot.press("pagedown")
        await settle(pilot)
        assert table.first_row == size and table.rows[0][0] == everyone[size].ssid
        await pilot.press("end")
        await settle(pilot)
        assert table.rows[-1][0] == everyone[-1].ssid
        await pilot.press("home")
        await settle(pilot)
        assert table.first_row == 0
        for _ in range(size):  # down past the last visible row scrolls by one
            await pilot.press("down")
        await settle(pilot)
        assert table.first_row == 1 and table.rows[-1][0] == everyone[size].ssid

        target = everyone[200]
        await pilot.press("slash", *target.last_name.lower())
        await settle(pilot)
        matches = [s for s in everyone if s.name_key.startswith(target.last_name.lower())]
        assert table.total == len(matches) and table.rows[0][0] == matches[0].ssid
        assert f"of {len(matches)} matching" in table.status_text
        await pilot.press("enter", "down")  # enter keeps the filter and returns to the rows
        await settle(pilot)
        assert table.filter_text == target.last_name.lower()
        await pilot.press("escape")  # esc clears the filter first...
        await settle(pilot)
        assert table.filter_text == "" and table.total == len(everyone)
        await pilot.press("escape")  # ...then goes back
        await pilot.pause()
        assert not isinstance(app.screen, StudentsScreen)


async def test_site_coordinator_table_shows_only_their_school(seeded, settings) -> None:  # type: ignore[no-untyped-def]
    site = op(seeded, "site")
    with Session(seeded) as session:
        school = session.get(School, site.school_id)
        own = session.scalar(select(func.count()).where(Student.school_id == site.school_id))
    app = SSRConsoleApp(ConsoleContext(seeded, settings, site))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        await settle(pilot)
        table = app.screen.query_one(PagedTable)
        assert table.total == own
        assert {row[3] for row in table.rows} == {school.name}


class Rows:
    """A plain in-memory data source for the widget alone; names starting "bad" are refused."""

    def __init__(self, count: int) -> None:
        self.rows = [(f"{i:05d}", f"row {i}") for i in range(count)]

    def __call__(self, offset: int, limit: int, filter_text: str) -> Page:
        if filter_text.startswith("bad"):
            raise InvalidInput("Filter text may not start with 'bad'")
        found = [r for r in self.rows if r[0].startswith(filter_text)]
        return Page(found[offset : offset + limit], len(found))


class TableApp(App[None]):
    def __init__(self, source: Rows) -> None:
        super().__init__()
        self.source = source
        self.failures: list[str] = []
        self.chosen: list[tuple[str, ...]] = []

    def compose(self) -> ComposeResult:
        yield PagedTable(["Key", "Text"], self.source)

    def on_paged_table_failed(self, event: PagedTable.Failed) -> None:
        self.failures.append(str(event.error))

    def on_paged_table_row_chosen(self, event: PagedTable.RowChosen) -> None:
        self.chosen.append(event.row)


async def test_a_refused_fetch_is_a_message_not_a_traceback() -> None:
    app = TableApp(Rows(50))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"bad")
        await settle(pilot)
        assert app.failures == ["Filter text may not start with 'bad'"]
        assert "Could not load rows" in str(app.query_one("#status").render())
        await pilot.press("escape")
        await settle(pilot)
        assert app.query_one(PagedTable).total == 50 and app.is_running


async def test_pgup_and_up_at_the_top_stay_put() -> None:
    app = TableApp(Rows(5))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.query_one(PagedTable)
        await pilot.press("pageup", "up", "pagedown")
        await settle(pilot)
        assert table.first_row == 0 and len(table.rows) == 5


def test_filters_and_scope_agree_on_sqlite_and_postgresql(any_url, tmp_path, seed_demo) -> None:  # type: ignore[no-untyped-def]
    from services.core.settings import Settings

    engine = db.make_engine(any_url)
    seed_demo(engine, Settings(any_url, tmp_path), students=120, seed=3, pdfs=False)
    try:
        caaspp, site = op(engine, "caaspp"), op(engine, "site")
        everyone = all_students(engine)
        name = everyone[60].name_key[:3]
        got = browse.students_page(engine, caaspp, 0, 500, name)
        assert [r[0] for r in got.rows] == [s.ssid for s in everyone if s.name_key.startswith(name)]
        ssid = everyone[7].ssid[:2]
        got = browse.students_page(engine, caaspp, 0, 500, ssid)
        assert [r[0] for r in got.rows] == sorted(
            s.ssid for s in everyone if s.ssid.startswith(ssid)
        )
        own = [s.ssid for s in everyone if s.school_id == site.school_id]
        assert [r[0] for r in browse.students_page(engine, site, 0, 500).rows] == own
        lea_wide, school = dashboard.summary(engine, caaspp), dashboard.summary(engine, site)
        assert (lea_wide.students, school.students, school.schools) == (120, len(own), 1)
        assert sum(lea_wide.guardians_by_language.values()) == lea_wide.guardians
        assert 0 < school.guardians < lea_wide.guardians
    finally:
        engine.dispose()


async def test_enter_chooses_the_row_under_the_cursor_across_pages() -> None:
    app = TableApp(Rows(100))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        size = app.query_one(PagedTable).page_size
        await pilot.press("pagedown", "down", "down")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert app.chosen == [(f"{size + 2:05d}", f"row {size + 2}")]
