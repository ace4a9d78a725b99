"""Households: guardians of the same students at the same normalised mailing address.

Printing sends one envelope per household (``services.channels.print_batch``), so two parents
of the same children living together get one envelope, not two. The key is the normalised
address plus the lowest id among the guardian's students; a guardian without a usable address
is a household of their own (NULL).

Addresses are normalised the way the USPS standardises them (Publication 28: upper case, no
punctuation, street suffixes and unit designators abbreviated, e.g. STREET -> ST, AVENUE -> AVE,
APARTMENT -> APT, SUITE -> STE; ZIP+4 compared on its five-digit ZIP).
"""

from __future__ import annotations

import re
from typing import cast

from sqlalchemy import Connection, Table, bindparam, func, select, update

from services.roster.records import fold
from services.roster.tables import Guardian, StudentGuardian

PAGE = 5000
_ABBREVIATIONS = {
    "STREET": "ST",
    "AVENUE": "AVE",
    "ROAD": "RD",
    "DRIVE": "DR",
    "BOULEVARD": "BLVD",
    "LANE": "LN",
    "COURT": "CT",
    "PLACE": "PL",
    "CIRCLE": "CIR",
    "PARKWAY": "PKWY",
    "HIGHWAY": "HWY",
    "TERRACE": "TER",
    "WAY": "WAY",
    "APARTMENT": "APT",
    "UNIT": "APT",
    "#": "APT",
    "SUITE": "STE",
    "NORTH": "N",
    "SOUTH": "S",
    "EAST": "E",
    "WEST": "W",
}
_WORDS = re.compile(r"#|[^\W_]+")


def normalised_address(
    line1: str | None, line2: str | None, city: str | None, state: str | None, zip_code: str | None
) -> str | None:
    """The comparable form of a mailing address, or None without a street line and ZIP."""
    if not (line1 and line1.strip() and zip_code and zip_code.strip()):
        return None
    text = fold(" ".join(p for p in (line1, line2, city, state) if p)).upper()
    words = [_ABBREVIATIONS.get(w, w) for w in _WORDS.findall(text)]
    return f"{' '.join(words)} {zip_code.strip()[:5]}"


def assign(connection: Connection, lea_id: int) -> int:
    """Recompute every household key of the LEA's guardians; returns how many changed."""
    table = cast(Table, Guardian.__table__)  # type: ignore[attr-defined]
    links = cast(Table, StudentGuardian.__table__)  # type: ignore[attr-defined]
    g = table.c
    lowest = (
        select(func.min(links.c.student_id)).where(links.c.guardian_id == g.id).scalar_subquery()
    )
    changed = 0
    after = 0
    while True:
        page = connection.execute(
            select(
                g.id,
                g.address_line1,
                g.address_line2,
                g.city,
                g.state,
                g.zip_code,
                g.household,
                lowest,
            )  # fmt: skip
            .where(g.lea_id == lea_id, g.id > after)
            .order_by(g.id)
            .limit(PAGE)
        ).all()
        if not page:
            return changed
        updates = []
        for gid, line1, line2, city, state, zip_code, current, student in page:
            address = normalised_address(line1, line2, city, state, zip_code)
            key = f"{student}:{address}"[:255] if address and student is not None else None
            if key != current:
                updates.append({"b_id": gid, "household": key})
        if updates:
            connection.execute(
                update(table)
                .where(table.c.id == bindparam("b_id"))
                .values(household=bindparam("household")),
                updates,
            )
            changed += len(updates)
        after = page[-1][0]
