"""Revision i19_household_items, on SQLite and PostgreSQL: a print batch may hold a student once
per household after it; going back keeps each student's first item, and forward again works."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from services.core import db

BEFORE = "i21_import_queue"
ROWS = [
    "INSERT INTO lea (id, cds_code, name, county) VALUES (1, '1234567', 'L', 'C')",
    "INSERT INTO school (id, lea_id, cds_code, name) VALUES (1, 1, '12345670000001', 'S')",
    "INSERT INTO student (id, ssid, lea_id, school_id, first_name, last_name, name_key, grade,"
    " primary_language, english_learner) VALUES (1, '0000000001', 1, 1, 'a', 'b', 'b a', 5, 'en',"
    " false)",
    *(
        "INSERT INTO guardian (id, lea_id, first_name, last_name, name_key, preferred_language,"
        f" uses_portal, do_not_contact) VALUES ({g}, 1, 'g', 'h', 'h g', 'en', false, false)"
        for g in (1, 2)
    ),
    "INSERT INTO channel_batch (id, lea_id, channel, name, source, status, families, students,"
    " ssrs, pages, cost_cents, detail, created_by, created_at) VALUES (1, 1, 'C', 'print', 'lea',"
    " 'running', 2, 1, 1, 0, 0, '{}', 'op', '2026-06-01')",
]
ITEM = (
    "INSERT INTO channel_item (batch_id, student_id, guardian_id, state, updated_at)"
    " VALUES (1, 1, {g}, 'pending', '2026-06-01')"
)


def _items(engine) -> list[int]:  # type: ignore[no-untyped-def]
    with engine.connect() as connection:
        return list(
            connection.execute(text("SELECT guardian_id FROM channel_item ORDER BY id")).scalars()
        )


def test_two_households_items_survive_a_downgrade_as_one_and_upgrade_again(any_url: str) -> None:
    engine = db.make_engine(any_url)
    db.upgrade(engine)
    with engine.begin() as connection:
        for statement in [*ROWS, ITEM.format(g=1), ITEM.format(g=2)]:
            connection.execute(text(statement))
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(text(ITEM.format(g=2)))  # one household twice: still refused
    db.downgrade(engine, BEFORE)
    assert _items(engine) == [1]
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(text(ITEM.format(g=2)))  # before: one item per student
    db.upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text(ITEM.format(g=2)))
    assert _items(engine) == [1, 2]
    engine.dispose()
