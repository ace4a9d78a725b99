"""The SSR deadlines of 5 CCR § 863 (CAASPP) and 5 CCR § 11518.15(b) (ELPAC), counted on the
school calendar of the config's ``[calendar]`` table."""

from __future__ import annotations

import re
from datetime import date

import pytest

from console import config
from services.core.errors import InvalidInput
from services.core.programs import Program
from services.core.working_days import WorkingCalendar

LABOR_DAY, THANKSGIVING, FRIDAY_AFTER = date(2026, 9, 7), date(2026, 11, 26), date(2026, 11, 27)
CALENDAR = WorkingCalendar(
    [LABOR_DAY, THANKSGIVING, FRIDAY_AFTER],
    last_day_of_instruction=date(2026, 6, 4),  # a Thursday
    first_day_of_next_year=date(2026, 8, 12),  # a Wednesday
)


def test_caaspp_mid_year_is_20_working_days_skipping_weekends_and_holidays() -> None:
    # Monday Nov 16: 17-20 (4), 23-25 (7), Thanksgiving and the Friday after are holidays,
    # 30 (8), Dec 1-4 (12), 7-11 (17), 14-16 (20)
    assert CALENDAR.deadline(Program.CAASPP, date(2026, 11, 16)) == date(2026, 12, 16)
    plain = WorkingCalendar()  # the same weeks without the two holidays
    assert plain.deadline(Program.CAASPP, date(2026, 11, 16)) == date(2026, 12, 14)


def test_elpac_mid_year_is_30_calendar_days_holidays_or_not() -> None:
    assert CALENDAR.deadline(Program.ELPAC, date(2026, 11, 16)) == date(2026, 12, 16)
    assert CALENDAR.deadline(Program.ELPAC, date(2026, 11, 1)) == date(2026, 12, 1)


def test_received_on_the_last_day_of_instruction_is_still_mid_year() -> None:
    assert CALENDAR.deadline(Program.CAASPP, date(2026, 6, 4)) == date(2026, 7, 2)
    assert CALENDAR.deadline(Program.ELPAC, date(2026, 6, 4)) == date(2026, 7, 4)


@pytest.mark.parametrize("received", [date(2026, 6, 5), date(2026, 7, 20), date(2026, 8, 11)])
def test_caaspp_after_instruction_is_the_20th_working_day_of_the_next_year(received) -> None:  # type: ignore[no-untyped-def]
    # Wed Aug 12 is day 1: 12-14 (3), 17-21 (8), 24-28 (13), 31 (14), Sep 1-4 (18),
    # Labor Day, 8 (19), 9 (20)
    assert CALENDAR.deadline(Program.CAASPP, received) == date(2026, 9, 9)


@pytest.mark.parametrize("received", [date(2026, 6, 5), date(2026, 7, 20), date(2026, 8, 11)])
def test_elpac_after_instruction_is_15_working_days_into_the_next_year(received) -> None:  # type: ignore[no-untyped-def]
    assert CALENDAR.deadline(Program.ELPAC, received) == date(2026, 9, 1)  # day 15, as above


def test_received_once_the_next_year_began_is_mid_year_again() -> None:
    assert CALENDAR.deadline(Program.CAASPP, date(2026, 8, 12)) == date(2026, 9, 10)
    assert CALENDAR.deadline(Program.ELPAC, date(2026, 8, 12)) == date(2026, 9, 11)


def test_latest_receipt_inverts_the_deadline_across_the_summer() -> None:
    assert CALENDAR.latest_receipt(Program.CAASPP, date(2026, 9, 9)) == date(2026, 8, 11)
    assert CALENDAR.latest_receipt(Program.CAASPP, date(2026, 9, 8)) == date(2026, 6, 4)
    assert CALENDAR.latest_receipt(Program.ELPAC, date(2026, 12, 16)) == date(2026, 11, 16)


def test_the_calendar_is_read_typed_and_checked_from_the_config(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "config.toml"
    path.write_text(
        "[calendar]\nlast_day_of_instruction = 2026-06-04\n"
        'first_day_of_next_year = "2026-08-12"\nholidays = [2026-09-07, 2026-11-26, 2026-11-27]\n'
    )
    path.chmod(0o600)
    loaded = config.load(path).calendar
    assert loaded.last_day_of_instruction == date(2026, 6, 4)
    assert loaded.first_day_of_next_year == date(2026, 8, 12)
    assert loaded.holidays == CALENDAR.holidays
    for text, error in [
        ('[calendar]\nholidays = ["July 4th"]\n', "holidays: 'July 4th' is not a date"),
        ("[calendar]\nlast_day_of_instruction = 2026-06-04\n", "needs both"),
        (
            "[calendar]\nlast_day_of_instruction = 2026-06-04\nfirst_day_of_next_year = 2026-06-01\n",
            "must come after",
        ),
        ("[calendar]\nlast_day = 2026-06-04\n", "[calendar] last_day is not a setting"),
        ("[scheduler]\nholidays = [2026-07-03]\n", "holidays belong in [calendar]"),
    ]:
        path.write_text(text)
        with pytest.raises(InvalidInput, match=re.escape(error)):
            config.load(path)
