"""Operators: the people of the LEA who sign in, their roles, scope and SSH keys.

What the operator may change is decided by ``services.accounts`` (an LEA coordinator manages
everyone in the LEA, the technology coordinator help desk accounts and keys, nobody their own role);
a refused change shows its sentence in the dialog, with what was typed kept. Every read and every
change runs in a worker thread.
"""

from __future__ import annotations

from collections.abc import Callable

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from screens.base import ConsoleScreen
from services.accounts import keys, operators
from services.accounts.people import OperatorView
from services.core.context import ConsoleContext
from services.core.errors import ConsoleError
from widgets.form_dialog import FormDialog, FormField
from widgets.plain import PlainTable, plain

ROLE_HINT = "lea_caaspp, lea_elpac, site, tech or helpdesk; two with a comma"


def _roles(text: str) -> list[str]:
    return [part.strip() for part in text.replace(" ", ",").split(",") if part.strip()]


class OperatorsScreen(ConsoleScreen):
    TITLE = "Operators"
    BINDINGS = [
        Binding("plus", "add", "Add", tooltip="Add an operator (with an SSH key)"),
        Binding("x", "switch_active", "Disable", tooltip="Disable or enable the operator"),
        Binding("g", "set_role", "Role", tooltip="Change the operator's role (and school)"),
        Binding("k", "add_key", "Key", tooltip="Add an SSH public key"),
        Binding("K", "remove_key", "Remove SSH key", show=False),
        Binding("f5", "refresh", "Refresh", show=False),
    ]
    CSS_PATH = "operators.tcss"

    def __init__(self, ctx: ConsoleContext) -> None:
        super().__init__(ctx)
        self.found: list[OperatorView] = []

    def compose_body(self) -> ComposeResult:
        yield PlainTable(id="operators", cursor_type="row", zebra_stripes=True)
        yield Static("", id="detail")

    def on_mount(self) -> None:
        table = self.query_one(PlainTable)
        table.add_columns("Username", "Name", "Role", "School", "Keys", "State")
        table.focus()
        self.action_refresh()

    def action_refresh(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="operators")
    def _load(self) -> None:
        try:
            found = operators.list_operators(self.ctx.engine, self.ctx.operator)
        except ConsoleError as error:
            self.app.call_from_thread(self.notify, str(error), severity="error")
            return
        self.app.call_from_thread(self._show, found)

    def _show(self, found: list[OperatorView]) -> None:
        self.found = found
        table = self.query_one(PlainTable)
        cursor = table.cursor_row
        table.clear()
        for o in found:
            table.add_row(
                o.username,
                o.display_name,
                o.roles_label,
                o.school or "LEA",
                str(len(o.keys)),
                "active" if o.active else "disabled",
                key=o.username,
            )
        if found:
            table.move_cursor(row=min(cursor, len(found) - 1))
        self._describe()

    def on_data_table_row_highlighted(self, _: DataTable.RowHighlighted) -> None:
        self._describe()

    def _describe(self) -> None:
        chosen = self._selected()
        text = ""
        if chosen is not None:
            keys_text = "\n".join(f"  {k}" for k in chosen.keys) or "  no SSH key yet (k adds one)"
            text = f"{chosen.display_name} <{chosen.email or 'no email'}>\nSSH keys:\n{keys_text}"
        self.query_one("#detail", Static).update(plain(text))

    def _selected(self) -> OperatorView | None:
        table = self.query_one(PlainTable)
        if not self.found or table.cursor_row < 0 or table.cursor_row >= len(self.found):
            return None
        return self.found[table.cursor_row]

    # --- changes, each through a dialog whose action runs in a worker ------------------------

    def action_add(self) -> None:
        def add(v: dict[str, str]) -> object:
            new = operators.NewOperator(
                v["username"],
                v["name"],
                tuple(_roles(v["roles"])),
                v["email"] or None,
                v["school"] or None,
                (v["key"],) if v["key"].strip() else (),
            )
            return operators.add(self.ctx.engine, self.ctx.operator, new)

        self._dialog(
            "Add operator",
            "A person of your LEA who will sign in over SSH with their public key.",
            [
                FormField("username", "Username", "e.g. mlopez"),
                FormField("name", "Full name"),
                FormField("email", "Email (optional)"),
                FormField("roles", "Role", ROLE_HINT),
                FormField("school", "School CDS code (site coordinators only)", "14 digits"),
                FormField(
                    "key", "SSH public key (optional)", "ssh-ed25519 AAAA... (the .pub line)"
                ),
            ],
            add,
        )

    def action_switch_active(self) -> None:
        chosen = self._selected()
        if chosen is None:
            return
        verb = "Disable" if chosen.active else "Enable"
        intro = (
            f"{chosen.username} can no longer sign in, and their open sessions end within seconds."
            if chosen.active
            else f"{chosen.username} may sign in again with their keys."
        )
        self._dialog(
            f"{verb} {chosen.username}",
            intro,
            [],
            lambda _: operators.set_active(
                self.ctx.engine, self.ctx.operator, chosen.username, not chosen.active
            ),
        )

    def action_set_role(self) -> None:
        chosen = self._selected()
        if chosen is None:
            return
        self._dialog(
            f"Change the role of {chosen.username}",
            f"Now: {chosen.roles_label}.",
            [
                FormField("roles", "Role", ROLE_HINT, ", ".join(r.value for r in chosen.roles)),
                FormField(
                    "school", "School CDS code (site coordinators only)", value=chosen.school or ""
                ),
            ],
            lambda v: operators.set_roles(
                self.ctx.engine,
                self.ctx.operator,
                chosen.username,
                _roles(v["roles"]),
                v["school"] or None,
            ),
        )

    def action_add_key(self) -> None:
        chosen = self._selected()
        if chosen is None:
            return
        self._dialog(
            f"Add an SSH key for {chosen.username}",
            "Paste the one line of their .pub file; the private key never leaves their computer.",
            [FormField("key", "SSH public key", "ssh-ed25519 AAAA... name@laptop")],
            lambda v: keys.add_key(self.ctx.engine, self.ctx.operator, chosen.username, v["key"]),
        )

    def action_remove_key(self) -> None:
        chosen = self._selected()
        if chosen is None or not chosen.keys:
            self.notify("This operator has no SSH key to remove", severity="warning")
            return
        self._dialog(
            f"Remove an SSH key of {chosen.username}",
            "That key stops signing in at once; sessions already open stay open.",
            [FormField("key", "Fingerprint", value=chosen.keys[0])],
            lambda v: keys.remove_key(
                self.ctx.engine, self.ctx.operator, chosen.username, v["key"]
            ),
        )

    def _dialog(
        self,
        title: str,
        intro: str,
        fields: list[FormField],
        submit: Callable[[dict[str, str]], object],
    ) -> None:
        self.app.push_screen(
            FormDialog(title, intro, fields, submit),
            lambda _: self.action_refresh(),
        )
