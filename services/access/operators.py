"""Finding the operator a session acts as, and listing who may sign in."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from services.access.tables import Operator
from services.core.errors import NotFound


def active(engine: Engine) -> list[Operator]:
    """Every operator who may sign in, by username, detached from the session that read them."""
    with Session(engine, expire_on_commit=False) as session:
        return list(
            session.exec(select(Operator).where(Operator.active).order_by(Operator.username))
        )


def resolve(engine: Engine, username: str | None) -> Operator:
    """The active operator named ``username``; a clear refusal names the known ones otherwise."""
    known = active(engine)
    for operator in known:
        if operator.username == username:
            return operator
    names = ", ".join(o.username for o in known) or (
        "none yet: run `ssr-console setup` for a real LEA, or `ssr-console demo` to try it"
    )
    if not username:
        raise NotFound(
            f"No operator chosen: set SSR_OPERATOR or `operator` in the config ({names})"
        )
    raise NotFound(f"Unknown operator {username!r} (known: {names})")


def active_ids(engine: Engine, operator_ids: Iterable[int]) -> set[int]:
    """Which of these operators are still active (the server ends the others' sessions)."""
    wanted = set(operator_ids)
    if not wanted:
        return set()
    with Session(engine) as session:
        rows = session.exec(
            select(Operator.id).where(col(Operator.id).in_(wanted), col(Operator.active))
        ).all()
    return {row for row in rows if row is not None}
