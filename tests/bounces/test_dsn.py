"""Bounce reports of each real-world shape are read right: kind, address, code, original message."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from services.bounces.dsn import Kind, parse
from tests.bounces import samples

MID = "<1780354800.4242.123456789.ssr@district.org>"
TO = "wrong.parent@example.org"
RETURN = "bounces@district.org"

Shape = Callable[[str, str, str], bytes]


@pytest.mark.parametrize(
    ("shape", "status"),
    [
        (samples.postfix_dsn, "5.1.1"),
        (samples.gmail_dsn, "5.1.1"),
        (samples.exchange_ndr, "5.1.10"),
        (samples.exim_failure, "550"),
        (samples.qmail_failure, "5.1.1"),
    ],
)
def test_hard_bounces_of_every_shape_name_the_address_and_the_original(
    shape: Shape, status: str
) -> None:
    report = parse(shape(MID, TO, RETURN))
    assert report.kind is Kind.HARD
    assert report.recipient == TO
    assert report.status == status
    assert MID in report.message_ids
    assert report.reason
    assert RETURN in report.sent_to


def test_a_delayed_report_is_soft() -> None:
    report = parse(samples.postfix_dsn(MID, TO, RETURN, delayed=True))
    assert (report.kind, report.status) == (Kind.SOFT, "4.2.2")
    assert "Mailbox full" in report.reason


def test_a_report_without_the_original_still_names_where_it_was_sent() -> None:
    report = parse(samples.bare_dsn(TO, "bounces+12.0123456789@district.org"))
    assert (report.kind, report.status, report.message_ids) == (Kind.HARD, "5.2.1", ())
    assert report.sent_to == ("bounces+12.0123456789@district.org",)


@pytest.mark.parametrize("shape", [samples.out_of_office, samples.vacation_reply])
def test_out_of_office_replies_are_not_bounces(shape: Shape) -> None:
    report = parse(shape(MID, TO, RETURN))
    assert report.kind is Kind.AUTO_REPLY
    assert not report.is_bounce


def test_a_person_answering_is_not_a_bounce() -> None:
    assert parse(samples.parent_reply(MID, TO, RETURN)).kind is Kind.OTHER


def test_garbage_is_other_not_an_error() -> None:
    assert parse(b"\x00\xff not a message at all").kind is Kind.OTHER
    assert parse(b"").kind is Kind.OTHER
