"""A small world for the credential tests: two LEAs, each with the five kinds of operator.

Built directly (not through the demo seeder) so the credential tests need no PDFs and stay fast.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from services.db import session_scope
from services.models import LEA, Operator, Role, School


@dataclass
class World:
    lea_id: int
    other_lea_id: int
    ops: dict[str, Operator]  # caaspp, elpac, site, tech, helpdesk, other_caaspp

    def __getitem__(self, name: str) -> Operator:
        return self.ops[name]


def build(engine: Engine) -> World:
    with session_scope(engine) as session:
        lea = LEA(cds_code="1964733", name="Los Ranchos Unified", county="Los Angeles")
        other = LEA(cds_code="3467439", name="Sacramento County Office", county="Sacramento")
        session.add_all([lea, other])
        session.flush()
        assert lea.id is not None and other.id is not None
        school = School(lea_id=lea.id, cds_code="19647336012345", name="Vista Elementary")
        session.add(school)
        session.flush()
        people = {
            "caaspp": Operator(
                username="caaspp", display_name="Ana CAASPP", role=Role.LEA_CAASPP, lea_id=lea.id
            ),
            "elpac": Operator(
                username="elpac", display_name="Eli ELPAC", role=Role.LEA_ELPAC, lea_id=lea.id
            ),
            "site": Operator(
                username="site",
                display_name="Sam Site",
                role=Role.SITE,
                lea_id=lea.id,
                school_id=school.id,
            ),
            "tech": Operator(
                username="tech", display_name="Tia Tech", role=Role.TECH, lea_id=lea.id
            ),
            "helpdesk": Operator(
                username="helpdesk", display_name="Hal Help", role=Role.HELPDESK, lea_id=lea.id
            ),
            "other_caaspp": Operator(
                username="other_caaspp",
                display_name="Olga Other",
                role=Role.LEA_CAASPP,
                lea_id=other.id,
            ),
            "other_elpac": Operator(
                username="other_elpac",
                display_name="Omar Other",
                role=Role.LEA_ELPAC,
                lea_id=other.id,
            ),
        }
        session.add_all(people.values())
        session.flush()
        for operator in people.values():
            session.expunge(operator)
        return World(lea.id, other.id, people)
