"""How long a batch takes through the relay's caps, the days its daily cap needs, and the warning
when those days pass the SSRs' delivery deadline (issue 22); the dry run that shows them is in
``tests/console/test_batch_cli.py``."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from services.delivery.sending_time import sending_time

NOON = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


def test_a_district_through_a_10000_a_day_relay_needs_weeks_and_is_warned() -> None:
    # 180,000 families, two messages each, through a relay allowing 10,000 a day
    sending = sending_time(
        360_000,
        per_minute_cap=0,
        per_day_cap=10_000,
        rate_per_minute=600.0,
        sent_today=4_000,
        now=NOON,
        deadline=date(2026, 5, 29),
    )
    # 6,000 fit today; 354,000 need 36 more days (the last one partly)
    assert sending.days == 37
    assert sending.last_day == date(2026, 6, 9)
    assert sending.late
    text = sending.text()
    assert "37 day(s), until 2026-06-09" in text
    assert "WARNING" in text and "2026-05-29" in text


def test_a_batch_that_fits_in_the_day_ends_today_at_the_rate_held_to_the_minute_cap() -> None:
    sending = sending_time(
        1_200,
        per_minute_cap=100,
        per_day_cap=10_000,
        rate_per_minute=250.0,  # faster than the cap allows: the cap holds it
        sent_today=0,
        now=NOON,
        deadline=date(2026, 5, 29),
    )
    assert sending.duration == timedelta(minutes=12)
    assert sending.days == 1 and not sending.late
    assert "WARNING" not in sending.text()


def test_without_a_rate_or_a_minute_cap_the_days_still_come_from_the_daily_cap() -> None:
    sending = sending_time(
        25_000,
        per_minute_cap=0,
        per_day_cap=10_000,
        rate_per_minute=None,
        sent_today=0,
        now=NOON,
        deadline=None,
    )
    assert sending.duration is None and sending.days == 3 and not sending.late
    assert "no rate yet" in sending.text()
