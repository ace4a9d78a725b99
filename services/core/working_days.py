"""The LEA's school calendar and the SSR delivery deadlines the regulations count on it.

The two rules, in full:

- CAASPP, 5 CCR § 863: "(a) The LEA shall forward or transmit pupil results ... to each pupil's
  parent or guardian within 20 working days from receipt of the results from the contractor.
  (b) If the LEA receives the reports ... from the contractor after the last day of instruction for
  the school year, the LEA shall make the report available to the parent or guardian no later than
  the first 20 working days of the next school year."
- ELPAC summative, 5 CCR § 11518.15(b): "... within 30 calendar days following receipt of the test
  results from the test contractor. If the test results are received from the test contractor after
  the last day of instruction for the school year, the LEA shall notify each pupil's parent or
  guardian of the pupil's results within 15 working days of the start of the next school year."

A working day is Monday to Friday and not one of the LEA's holidays. The calendar (last day of
instruction, first day of the next school year, holidays) comes from the ``[calendar]`` table of
the config as plain dates, so each deployment lists its own. "The first 20 working days of the next
school year" and "within 15 working days of the start" are both read as the Nth working day of the
new year, its first day counting as day 1: the earlier of the two readings, so never late. Without a
configured last day of instruction every receipt is counted mid-year.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta

from services.core.errors import InvalidInput
from services.core.programs import Program

CAASPP_WORKING_DAYS = 20  # 5 CCR § 863(a), and (b) counted from the next school year's start
ELPAC_CALENDAR_DAYS = 30  # 5 CCR § 11518.15(b)
ELPAC_NEXT_YEAR_WORKING_DAYS = 15  # 5 CCR § 11518.15(b), received after the last day of instruction
_DAY = timedelta(days=1)
_SEARCH = timedelta(days=400)
"""How far back a receipt may lie from a deadline: 30 days, or a summer plus 20 working days."""


class WorkingCalendar:
    """The LEA's school calendar: weekdays minus holidays, and the summer between two years."""

    def __init__(
        self,
        holidays: Iterable[date] = (),
        *,
        last_day_of_instruction: date | None = None,
        first_day_of_next_year: date | None = None,
    ) -> None:
        if (last_day_of_instruction is None) != (first_day_of_next_year is None):
            raise InvalidInput(
                "[calendar] needs both last_day_of_instruction and first_day_of_next_year"
            )
        if (
            last_day_of_instruction is not None
            and first_day_of_next_year is not None
            and first_day_of_next_year <= last_day_of_instruction
        ):
            raise InvalidInput(
                f"[calendar] first_day_of_next_year ({first_day_of_next_year}) must come after "
                f"last_day_of_instruction ({last_day_of_instruction})"
            )
        self.holidays = frozenset(holidays)
        self.last_day_of_instruction = last_day_of_instruction
        self.first_day_of_next_year = first_day_of_next_year

    @classmethod
    def parse(cls, table: object) -> WorkingCalendar:
        """From the ``[calendar]`` config table: TOML dates (``2026-07-03``) or the same as text;
        a bad value or an unknown key is named."""
        if not isinstance(table, dict):
            raise InvalidInput("[calendar] in the config must be a table of settings")
        known = {"holidays", "last_day_of_instruction", "first_day_of_next_year"}
        if unknown := sorted(set(table) - known):
            raise InvalidInput(
                f"Unknown [calendar] setting(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        holidays = table.get("holidays", [])
        if not isinstance(holidays, list):
            raise InvalidInput("[calendar] holidays must be a list of dates like 2026-07-03")
        last, first = (
            _day(table[key], key) if key in table else None
            for key in ("last_day_of_instruction", "first_day_of_next_year")
        )
        return cls(
            [_day(value, "holidays") for value in holidays],
            last_day_of_instruction=last,
            first_day_of_next_year=first,
        )

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

    def working_days_between(self, start: date, end: date) -> int:
        """How many working days fall after ``start`` up to and including ``end``."""
        return sum(self.is_working_day(start + _DAY * n) for n in range(1, (end - start).days + 1))

    def after_instruction(self, received: date) -> bool:
        """Received after the year's last day of instruction and before the next year starts."""
        last, first = self.last_day_of_instruction, self.first_day_of_next_year
        return last is not None and first is not None and last < received < first

    def deadline(self, program: Program, received: date) -> date:
        """The last day the SSRs received on ``received`` may reach families (see module text)."""
        if self.after_instruction(received):
            assert self.first_day_of_next_year is not None
            days = (
                CAASPP_WORKING_DAYS if program is Program.CAASPP else ELPAC_NEXT_YEAR_WORKING_DAYS
            )
            return self.add(self.first_day_of_next_year - _DAY, days)  # its first day is day 1
        if program is Program.CAASPP:
            return self.add(received, CAASPP_WORKING_DAYS)
        return received + timedelta(days=ELPAC_CALENDAR_DAYS)

    def latest_receipt(self, program: Program, due_by: date) -> date:
        """The last receipt day whose deadline falls on ``due_by`` or earlier."""
        day = due_by
        while self.deadline(program, day) > due_by and due_by - day < _SEARCH:
            day -= _DAY
        return day


def receipt_moment(day: date) -> datetime:
    """The moment stored for SSRs received on ``day`` when only the day is known: noon UTC, which
    is the same calendar day in UTC (where the reports count receipt days) and in California."""
    return datetime.combine(day, time(12), UTC)


def _day(value: object, key: str) -> date:
    """A TOML date, or an ISO date written as text."""
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise InvalidInput(
            f"[calendar] {key}: {value!r} is not a date like 2026-07-03; fix the config"
        ) from None
