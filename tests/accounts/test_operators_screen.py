"""The Operators screen at 80x24, driven by keys: list, add with a key, refusals in the dialog,
disable; reachable from its key and the command palette, its keys in the help."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine
from textual.widgets import Input, Static

from console.app import SSRConsoleApp
from screens.help import HelpScreen
from screens.operators import OperatorsScreen
from services.access import operators as signin
from services.accounts import lea_setup, operators
from services.accounts.lea_setup import Person
from services.core.context import ConsoleContext
from services.core.errors import NotFound
from services.core.settings import Settings
from tests.pilot import settle
from widgets.form_dialog import FormDialog
from widgets.plain import PlainTable

SIZE = (80, 24)
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBa4DU0yF8kvSj6m7x3K5Pq2mS7y0n1+Tj4ZBiGxuA8C hugo@pc"


@pytest.fixture
def lea(engine: Engine) -> Engine:
    lea_setup.setup(
        engine, "1964733", "Sierra Vista Unified", "Los Angeles",
        Person("maria", "Maria López"), Person("tran", "Tran Nguyen"),
    )  # fmt: skip
    tina = operators.NewOperator("tina", "Tina Tech", ("tech",))
    operators.add(engine, signin.resolve(engine, "maria"), tina)
    return engine


def app_for(engine: Engine, settings: Settings, who: str) -> SSRConsoleApp:
    return SSRConsoleApp(ConsoleContext(engine, settings, signin.resolve(engine, who)))


def rows(app: SSRConsoleApp) -> list[list[str]]:
    table = app.screen.query_one(PlainTable)
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


async def type_fields(app: SSRConsoleApp, pilot, *values: str) -> None:  # type: ignore[no-untyped-def]
    """Type each field's value and press enter (the last enter submits)."""
    for value in values:
        field = app.focused
        assert isinstance(field, Input)
        field.value = value
        await pilot.press("enter")
        await settle(pilot)


async def test_coordinator_adds_an_operator_with_a_key_and_disables_them(
    lea: Engine, settings: Settings
) -> None:
    app = app_for(lea, settings, "maria")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("O")
        await settle(pilot)
        assert isinstance(app.screen, OperatorsScreen)
        assert [r[0] for r in rows(app)] == ["maria", "tina", "tran"]
        assert rows(app)[0][2] == "LEA CAASPP coordinator"

        await pilot.press("plus")
        await settle(pilot)
        assert isinstance(app.screen, FormDialog)
        await type_fields(app, pilot, "hugo", "Hugo Help", "", "helpdesk", "", KEY)
        assert isinstance(app.screen, OperatorsScreen)
        hugo = next(r for r in rows(app) if r[0] == "hugo")
        assert hugo[2:] == ["Help desk", "LEA", "1", "active"]

        app.screen.query_one(PlainTable).move_cursor(row=[r[0] for r in rows(app)].index("hugo"))
        await settle(pilot)
        assert "SHA256:" in str(app.screen.query_one("#detail", Static).render())
        await pilot.press("x")
        await settle(pilot)
        await pilot.press("enter")  # confirm
        await settle(pilot)
        assert next(r for r in rows(app) if r[0] == "hugo")[5] == "disabled"
        with pytest.raises(NotFound):  # disabled: no longer signs in
            signin.resolve(lea, "hugo")

        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        described = {k.description for k in app.screen.keys}
        assert {
            "Add an operator (with an SSH key)",
            "Disable or enable the operator",
            "Change the operator's role (and school)",
            "Add an SSH public key",
            "Remove SSH key",
        } <= described


async def test_tech_is_refused_a_coordinator_role_in_the_dialog(
    lea: Engine, settings: Settings
) -> None:
    app = app_for(lea, settings, "tina")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("O")
        await settle(pilot)
        await pilot.press("plus")
        await settle(pilot)
        await type_fields(app, pilot, "carl", "Carl", "", "lea_elpac", "", "")
        assert isinstance(app.screen, FormDialog)  # still open, what was typed kept
        error = str(app.screen.query_one("#error", Static).render())
        assert "may not grant the role of an LEA ELPAC coordinator" in error
        assert app.screen.query_one("#field-username", Input).value == "carl"
        await pilot.press("escape")
        await settle(pilot)
        app.screen.query_one(PlainTable).move_cursor(row=[r[0] for r in rows(app)].index("tina"))
        await pilot.press("g")
        await settle(pilot)
        await type_fields(app, pilot, "helpdesk", "")
        assert "Nobody changes their own role" in str(
            app.screen.query_one("#error", Static).render()
        )


async def test_help_desk_cannot_open_it_and_the_palette_reaches_it(
    lea: Engine, settings: Settings
) -> None:
    operators.add(
        lea, signin.resolve(lea, "maria"), operators.NewOperator("hugo", "Hugo", ("helpdesk",))
    )
    app = app_for(lea, settings, "hugo")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("O")
        await settle(pilot)
        assert not isinstance(app.screen, OperatorsScreen)
        assert any("may not manage operators" in n.message for n in app._notifications)
    app = app_for(lea, settings, "maria")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Go to Operators")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, OperatorsScreen)
