"""How long a batch takes to send through the relay, and whether it ends before the SSRs are due.

A relay caps messages per minute and per day (``[smtp] per_minute``, ``per_day``); many district
relays allow about 10,000 recipients a day, so a 180,000-family district (360,000 messages) needs
weeks through one. The coordinator sees, before creating a batch and while it runs, the time it
needs (at the rate measured, held to the caps), how many days the daily cap spreads it over, and
a warning when the last day passes the earliest delivery deadline of the SSRs it carries:
20 working days (CAASPP) or 30 calendar days (ELPAC) from receipt, 5 CCR § 863 and § 11518.15(b)
(``services.core.working_days``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from services.core.programs import Program
from services.core.scope import report_filters
from services.core.working_days import WorkingCalendar
from services.delivery.delivered import report_undelivered
from services.delivery.ledger import SendQuota
from services.intake.score_reports import ScoreReport, as_date, receipt_day
from services.roster.tables import Student


@dataclass(frozen=True)
class SendingTime:
    """The sending of ``messages`` messages, as the caps and the measured rate allow."""

    messages: int
    per_minute_cap: int
    per_day_cap: int
    rate_per_minute: float | None  # the rate the estimate goes by (measured, or the minute cap)
    duration: timedelta | None  # None: neither a measured rate nor a minute cap to go by
    days: int  # UTC days the sending spans, today included
    last_day: date
    deadline: date | None  # the earliest deadline of the SSRs still to be delivered

    @property
    def late(self) -> bool:
        """The sending would end after some SSRs are due."""
        return self.deadline is not None and self.last_day > self.deadline

    def text(self) -> str:
        """The dry run's lines: how long, how many days, and the warning (no markup in them)."""
        if self.duration is None:
            how_long = "no rate yet (no minute cap and nothing sent to measure)"
        else:
            how_long = f"about {_words(self.duration)} at {self.rate_per_minute:,.0f} a minute"
        return "\n".join([f"Sending {self.messages:,} messages: {how_long}.", *self.notes()])

    def notes(self) -> list[str]:
        """The days the daily cap needs, and the warning when they pass the deadline."""
        lines = []
        if self.per_day_cap:
            lines.append(
                f"The relay's daily cap of {self.per_day_cap:,} messages spreads it over "
                f"{self.days:,} day(s), until {self.last_day:%Y-%m-%d} (UTC)."
            )
        if self.late and self.deadline is not None:
            lines.append(
                f"WARNING: that is after the SSRs' delivery deadline of {self.deadline:%Y-%m-%d}: "
                "raise the relay's daily cap, add a relay, or deliver some families another way."
            )
        return lines


def sending_time(
    messages: int,
    *,
    per_minute_cap: int,
    per_day_cap: int,
    rate_per_minute: float | None,
    sent_today: int,
    now: datetime,
    deadline: date | None,
) -> SendingTime:
    """``messages`` sent at the measured rate (else the minute cap), held to both caps; with a
    daily cap, what does not fit in today's remainder waits for the next UTC days."""
    rate = rate_per_minute or 0.0
    if per_minute_cap:
        rate = min(rate, per_minute_cap) if rate > 0 else float(per_minute_cap)
    if per_day_cap:
        today_left = max(0, per_day_cap - sent_today)
        later = max(0, messages - today_left)
        days = 1 + math.ceil(later / per_day_cap)
        last = later - (days - 2) * per_day_cap if later else messages
    else:
        days, last = 1, messages
    duration = None
    if rate > 0:
        sending = timedelta(minutes=last / rate)
        if days > 1:
            midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
            duration = midnight + timedelta(days=days - 1) - now + sending
        else:
            duration = sending
            days = (now + sending).date().toordinal() - now.date().toordinal() + 1
    return SendingTime(
        messages=messages,
        per_minute_cap=per_minute_cap,
        per_day_cap=per_day_cap,
        rate_per_minute=rate or None,
        duration=duration,
        days=days,
        last_day=now.date() + timedelta(days=days - 1),
        deadline=deadline,
    )


def relay_rate(engine: Engine, now: datetime) -> float | None:
    """Messages a minute the relay took in the last hour's busy minutes (the quota's minute
    windows, ``services.delivery.mailer.Quota``), the current minute left out; None if idle."""
    first = f"m:{now - timedelta(hours=1):%Y%m%d%H%M}"
    with Session(engine) as session:
        busy, sent = session.exec(
            select(func.count(), func.coalesce(func.sum(SendQuota.count), 0)).where(
                col(SendQuota.window) >= first,
                col(SendQuota.window) < f"m:{now:%Y%m%d%H%M}",
                col(SendQuota.window).like("m:%"),
            )
        ).one()
    return sent / busy if busy else None


def earliest_deadline(
    engine: Engine,
    calendar: WorkingCalendar,
    lea_id: int,
    school_id: int | None = None,
    grade: int | None = None,
    program: str | None = None,
    admin_year: int | None = None,
) -> date | None:
    """The first deadline among the scope's SSRs not yet with their family (their receipt day
    per program, in SQL: a handful of rows however many SSRs)."""
    with Session(engine) as session:
        day = receipt_day(session.get_bind())
        rows = session.execute(
            select(col(ScoreReport.program), func.min(day))
            .join(Student, col(Student.id) == col(ScoreReport.student_id))
            .where(
                *report_filters(lea_id, school_id, grade, program, admin_year),
                report_undelivered(),
            )
            .group_by(col(ScoreReport.program))
        ).all()
    dates = [
        calendar.deadline(Program(p), as_date(received))
        for p, received in rows
        if received is not None
    ]
    return min(dates) if dates else None


def _words(span: timedelta) -> str:
    minutes = max(1, round(span.total_seconds() / 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days} d"] if days else []
    parts += [f"{hours} h"] if hours else []
    parts += [f"{minutes} min"] if minutes and not days else []
    return " ".join(parts) or "1 min"
