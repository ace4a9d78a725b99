"""A table over a query of any size: only the visible window of rows is ever fetched or held.

Textual's DataTable slows to seconds with 100,000 rows, so this widget keeps one window of rows
in it and asks a ``fetch(offset, limit, filter_text)`` callable (handed in by the screen) for
the next window when the person pages, moves past an edge or types a filter. The widget never
touches the database; fetches run in a worker thread and a stale answer is dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Input, Static
from textual.worker import get_current_worker

from widgets.plain import PlainInput, PlainTable, plain


class PageLike(Protocol):
    """What a fetch returns: display rows, and the match count (a lower bound when capped)."""

    @property
    def rows(self) -> list[tuple[str, ...]]: ...
    @property
    def total(self) -> int: ...
    @property
    def capped(self) -> bool: ...


Fetch = Callable[[int, int, str], PageLike]


class Column(NamedTuple):
    label: str
    width: int | None = None


class _Window(PlainTable):
    """The visible rows; moves that leave the window ask the PagedTable for another one."""

    BINDING_GROUP_TITLE = "Table"

    @property
    def paged(self) -> PagedTable:
        return self.query_ancestor(PagedTable)

    def on_resize(self) -> None:
        self.paged.reload()  # the window's height is the page size

    def action_cursor_down(self) -> None:
        if self.cursor_row >= self.row_count - 1:
            self.paged.scroll_rows(1)
        else:
            super().action_cursor_down()

    def action_cursor_up(self) -> None:
        if self.cursor_row <= 0:
            self.paged.scroll_rows(-1)
        else:
            super().action_cursor_up()

    def action_page_down(self) -> None:
        self.paged.scroll_rows(self.paged.page_size)

    def action_page_up(self) -> None:
        self.paged.scroll_rows(-self.paged.page_size)

    def action_scroll_top(self) -> None:
        self.paged.go_first()

    action_scroll_home = action_scroll_top

    def action_scroll_bottom(self) -> None:
        self.paged.go_last()

    action_scroll_end = action_scroll_bottom


class PagedTable(Vertical):
    """A filterable, paged view of rows supplied window by window by ``fetch``."""

    BINDING_GROUP_TITLE = "Table"
    BINDINGS = [
        Binding("slash", "open_filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter"),
    ]
    DEFAULT_CSS = """
    PagedTable { height: 1fr; }
    PagedTable > Input, PagedTable > Input:focus { display: none; height: 1; border: none; padding: 0 1; background: $boost; }
    PagedTable > Input.-open, PagedTable > Input.-open:focus { display: block; }
    PagedTable > _Window { height: 1fr; overflow-y: hidden; }
    PagedTable > #status { height: 1; padding: 0 1; color: $text-muted; }
    """

    class Loaded(Message):
        """A window was shown: which filter it answers and how many rows match."""

        def __init__(self, table: PagedTable, filter_text: str, total: int) -> None:
            super().__init__()
            self.table = table
            self.filter_text = filter_text
            self.total = total

    class RowChosen(Message):
        """The person pressed enter on a row."""

        def __init__(self, table: PagedTable, row: tuple[str, ...]) -> None:
            super().__init__()
            self.table = table
            self.row = row

    class Failed(Message):
        """A fetch raised; the screen decides how to tell the person."""

        def __init__(self, table: PagedTable, error: Exception) -> None:
            super().__init__()
            self.table = table
            self.error = error

    def __init__(
        self,
        columns: Sequence[Column | str],
        fetch: Fetch,
        *,
        placeholder: str = "filter",
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self._columns = [c if isinstance(c, Column) else Column(c) for c in columns]
        self._fetch = fetch
        self._placeholder = placeholder
        self.filter_text = ""
        self.first_row = 0
        self.total = 0
        self.capped = False
        self.rows: list[tuple[str, ...]] = []
        self._wanted = 0  # the offset of the newest request, so repeated keys accumulate
        self._generation = 0

    def compose(self) -> ComposeResult:
        yield PlainInput(placeholder=self._placeholder, id="filter")
        yield _Window(cursor_type="row", zebra_stripes=True)
        yield Static("", id="status")

    def on_mount(self) -> None:
        self.query_one(Input).can_focus = False  # only while open, so auto-focus picks the rows
        table = self.query_one(_Window)
        for column in self._columns:
            table.add_column(column.label, width=column.width)

    @property
    def page_size(self) -> int:
        table = self.query_one(_Window)
        return max(1, table.scrollable_content_region.height - table.header_height)

    def reload(self) -> None:
        """Fetch the current window again (after a resize, or when the data changed)."""
        self._request(self._wanted, self.query_one(_Window).cursor_row)

    def scroll_rows(self, delta: int) -> None:
        """Move the window by ``delta`` rows, keeping the cursor where it is on screen."""
        table = self.query_one(_Window)
        target = max(0, self._wanted + delta)
        if not self.capped:
            target = min(target, max(0, self.total - self.page_size))
        if target == self._wanted:
            row = 0 if delta < 0 else max(0, table.row_count - 1)
            table.move_cursor(row=row)
            return
        self._request(target, table.cursor_row)

    def go_first(self) -> None:
        self._request(0, 0)

    def go_last(self) -> None:
        self._request(max(0, self.total - self.page_size), self.page_size - 1)

    def action_open_filter(self) -> None:
        field = self.query_one(Input)
        field.add_class("-open")
        field.can_focus = True
        field.focus()

    def action_clear_filter(self) -> None:
        field = self.query_one(Input)
        self._close_filter(field)
        if field.value:
            field.value = ""  # Input.Changed refetches

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """esc belongs to the filter only while one is open or applied; otherwise it means back."""
        if action == "clear_filter":
            return bool(self.filter_text) or self.query_one(Input).has_class("-open")
        return True

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.filter_text = event.value
        self._request(0, 0)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.value:
            self.query_one(_Window).focus()
        else:
            self._close_filter(event.input)

    def _close_filter(self, field: Input) -> None:
        field.remove_class("-open")
        self.query_one(_Window).focus()
        field.can_focus = False

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if 0 <= event.cursor_row < len(self.rows):
            self.post_message(self.RowChosen(self, self.rows[event.cursor_row]))

    def _request(self, offset: int, cursor_row: int) -> None:
        self._wanted = offset
        self._generation += 1
        self._load(self._generation, offset, self.page_size, self.filter_text, cursor_row)

    @work(thread=True, exclusive=True, group="paged-table")
    def _load(
        self, generation: int, offset: int, limit: int, filter_text: str, cursor_row: int
    ) -> None:
        try:
            page = self._fetch(offset, limit, filter_text)
        except Exception as error:  # a screen-level message, never a crashed console
            if not get_current_worker().is_cancelled:
                self.app.call_from_thread(self._fail, generation, error)
            return
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show, generation, offset, page, cursor_row)

    def _fail(self, generation: int, error: Exception) -> None:
        if generation == self._generation:
            self.query_one("#status", Static).update(plain(f"Could not load rows: {error}"))
            self.post_message(self.Failed(self, error))

    def _show(self, generation: int, offset: int, page: PageLike, cursor_row: int) -> None:
        if generation != self._generation:
            return
        self.first_row, self.total, self.capped = offset, page.total, page.capped
        self.rows = list(page.rows)
        table = self.query_one(_Window)
        table.clear()
        table.add_rows(self.rows)
        if self.rows:
            table.move_cursor(row=min(max(cursor_row, 0), len(self.rows) - 1), animate=False)
        self.query_one("#status", Static).update(plain(self.status_text))
        self.post_message(self.Loaded(self, self.filter_text, self.total))

    @property
    def status_text(self) -> str:
        total = f"{self.total:,}{'+' if self.capped else ''}"
        what = f"matching “{self.filter_text}”" if self.filter_text else "in all"
        if not self.rows:
            return f"No rows {what}. / filter, esc clear" if self.filter_text else "No rows."
        first, last = self.first_row + 1, self.first_row + len(self.rows)
        return f"{first:,}–{last:,} of {total} {what} · / filter"
