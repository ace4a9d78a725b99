"""Working days and the SSR delivery deadlines that count them.

CAASPP results are due to parents within 20 working days of the LEA receiving them, ELPAC within 30
calendar days (DESIGN.md). A working day is Monday to Friday and not one of the LEA's holidays; the
holidays come from configuration as plain dates, so each deployment lists its own school calendar.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

from services.core.errors import InvalidInput
from services.core.programs import Program
from services.core.settings import Settings

CAASPP_WORKING_DAYS = 20
ELPAC_CALENDAR_DAYS = 30
_DAY = timedelta(days=1)


class WorkingCalendar:
    """Weekdays minus a set of holidays."""

    def __init__(self, holidays: Iterable[date] = ()) -> None:
        self.holidays = frozenset(holidays)

    @classmethod
    def parse(cls, holidays: Iterable[str]) -> WorkingCalendar:
        """From ISO dates (``2026-07-03``) as written in the config; a bad one is named."""
        days = []
        for text in holidays:
            try:
                days.append(date.fromisoformat(str(text)))
            except ValueError:
                raise InvalidInput(
                    f"Holiday {text!r} is not a date like 2026-07-03; fix the [scheduler] holidays list"
                ) from None
        return cls(days)

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkingCalendar:
        """The LEA's holidays from the ``[scheduler]`` table, as the reminders use them."""
        section = settings.extra.get("scheduler", {})
        if not isinstance(section, dict):
            raise InvalidInput("[scheduler] in the config must be a table of settings")
        return cls.parse(section.get("holidays", []))

    def is_working_day(self, day: date) -> bool:
        return day.weekday() < 5 and day not in self.holidays

    def add(self, start: date, days: int) -> date:
        """The ``days``-th working day after ``start`` (before it when negative); 0 is ``start``."""
        step = _DAY if days >= 0 else -_DAY
        day, left = start, abs(days)
        while left:
            day += step
            if self.is_working_day(day):
                left -= 1
        return day

    def deadline(self, program: Program, received: date) -> date:
        """The last day the SSRs received on ``received`` may reach families."""
        if program is Program.CAASPP:
            return self.add(received, CAASPP_WORKING_DAYS)
        return received + timedelta(days=ELPAC_CALENDAR_DAYS)

    def earliest_open_receipt(self, today: date) -> date:
        """The earliest receipt day whose deadline (either program) is today or later."""
        return min(
            self.add(today, -CAASPP_WORKING_DAYS), today - timedelta(days=ELPAC_CALENDAR_DAYS)
        )
