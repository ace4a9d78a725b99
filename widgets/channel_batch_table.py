"""A table of channel batches (print runs, paper orders, portal hand-overs) with their progress.

The screen hands it plain rows (``services.channels.batches.ChannelSummary``); it never reads the
database. The cursor's row is the batch an action applies to.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from widgets.plain import PlainTable


class BatchRow(Protocol):
    id: int
    name: str
    total: int
    done: int
    failed: int
    created_at: datetime

    @property
    def status(self) -> object: ...


class ChannelBatchTable(PlainTable):
    """One row per batch: number, name, state, families done of all, families not done."""

    def __init__(self, *, not_done: str = "Listed", id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.not_done = not_done
        self.shown: list[BatchRow] | None = None  # the rows the table holds

    def on_mount(self) -> None:
        self.add_columns("#", "Name", "State", "Done", self.not_done, "Created (UTC)")

    def show(self, rows: Sequence[BatchRow]) -> None:
        """Replace the rows, keeping the cursor on the same batch when it is still listed. The
        screens read them every second: the same rows are not measured and drawn again."""
        if list(rows) == self.shown:
            return
        self.shown = list(rows)
        selected = self.selected_id
        self.clear()
        for row in rows:
            state = getattr(row.status, "value", str(row.status))
            self.add_row(
                str(row.id),
                row.name[:28],
                state,
                f"{row.done:,}/{row.total:,}",
                f"{row.failed:,}",
                f"{row.created_at:%Y-%m-%d %H:%M}",
                key=str(row.id),
            )
        if selected is not None and str(selected) in self.rows:
            self.move_cursor(row=self.get_row_index(str(selected)))

    @property
    def selected_id(self) -> int | None:
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        return int(key.value) if key.value is not None else None
