"""The demo district's SIS export: OneRoster 1.1 CSV and a contacts CSV, written as an SIS would.

``services.demo.district`` writes these files and imports them with the district's own roster
import (``services.roster.sis_import``), so every demo goes through the door a real LEA uses.
The columns are OneRoster 1.1's (orgs, users, demographics; /work/wt/FACTS.md) and the generic
contacts layout (``services.roster.sis_columns``). Home languages alternate between CALPADS'
legacy two-digit codes and its three-letter codes by SSID, so both forms are exercised.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from services.core import private_files
from services.roster.records import GuardianIn, StudentIn
from services.roster.sis_columns import SisColumns

ORGS = ("sourcedId", "status", "dateLastModified", "name", "type", "identifier", "parentSourcedId")
USERS = (
    "sourcedId",
    "status",
    "dateLastModified",
    "enabledUser",
    "orgSourcedIds",
    "role",
    "username",
    "userIds",
    "givenName",
    "familyName",
    "middleName",
    "identifier",
    "email",
    "sms",
    "phone",
    "agentSourcedIds",
    "grades",
    "password",
)
DEMOGRAPHICS = ("sourcedId", "status", "dateLastModified", "birthDate")
MODIFIED = "2026-08-01T00:00:00Z"
ROLES = {"parent": "parent", "guardian": "guardian", "grandparent": "relative"}
"""Demo relationships as OneRoster roles (a grandparent is a ``relative``)."""
LEGACY = {"en": "00", "es": "01", "vi": "02", "fil": "05", "zh_Hans": "07"}
CURRENT = {"en": "eng", "es": "spa", "vi": "vie", "fil": "fil", "zh_Hans": "cmn"}
"""CALPADS home language codes, legacy and since 2023-24 (``services.roster.calpads``)."""


@dataclass(frozen=True, slots=True)
class Family:
    """A family as the SIS knows it: guardians (with their role) and children (with school
    sourcedId); the first guardian is the primary contact."""

    guardians: list[tuple[str, GuardianIn, str]]  # (sourcedId, guardian, relationship)
    children: list[tuple[str, StudentIn, str]]  # (sourcedId, student, school sourcedId)


def elas(student: StudentIn) -> str:
    """English learners are EL; other speakers of another language were reclassified (RFEP) or
    initially fluent (IFEP); English speakers are EO."""
    if student.english_learner:
        return "EL"
    if student.primary_language == "en":
        return "EO"
    return "RFEP" if int(student.grade) >= 6 else "IFEP"


class Writer:
    """Streams a district's families into the export files in ``folder`` (each 0600)."""

    def __init__(
        self, folder: Path, district: tuple[str, str], schools: Iterable[tuple[str, str, str]]
    ) -> None:
        self.folder = private_files.make_dirs(folder)
        self.oneroster = private_files.make_dirs(folder / "oneroster")
        self.contacts_path = folder / "contacts.csv"
        self._files: list[TextIO] = []
        orgs = self._open(self.oneroster / "orgs.csv", ORGS)
        lea_cds, lea_name = district
        orgs.writerow(["district", "active", MODIFIED, lea_name, "district", lea_cds, ""])
        for sourced_id, cds, name in schools:
            orgs.writerow([sourced_id, "active", MODIFIED, name, "school", cds, "district"])
        self.users = self._open(self.oneroster / "users.csv", USERS)
        self.demographics = self._open(self.oneroster / "demographics.csv", DEMOGRAPHICS)
        columns = SisColumns()
        self.contacts = self._open(
            self.contacts_path,
            (
                columns.ssid,
                columns.guardian_id,
                columns.home_language,
                columns.elas,
                columns.address_line1,
                columns.address_line2,
                columns.city,
                columns.state,
                columns.zip_code,
                columns.correspondence_language,
                columns.receives_records,
                columns.do_not_contact,
                columns.uses_portal,
            ),
        )

    def _open(self, path: Path, header: tuple[str, ...]) -> Any:  # a csv writer
        stream = open(path, "w", newline="", encoding="utf-8", opener=private_files.opener)  # noqa: SIM115 - closed in close()
        self._files.append(stream)
        writer = csv.writer(stream)
        writer.writerow(header)
        return writer

    @property
    def paths(self) -> list[Path]:
        return [self.oneroster, self.contacts_path]

    def family(self, family: Family) -> None:
        guardian_ids = ",".join(g for g, _, _ in family.guardians)
        child_ids = ",".join(c for c, _, _ in family.children)
        for sourced_id, student, school in family.children:
            self.users.writerow(
                [
                    sourced_id, "active", MODIFIED, "true", school, "student", "", "",
                    student.first_name, student.last_name, "", student.ssid, "", "", "",
                    guardian_ids, f"{int(student.grade):02d}", "",
                ]
            )  # fmt: skip
            if student.birth_date:
                self.demographics.writerow(
                    [sourced_id, "active", MODIFIED, student.birth_date.isoformat()]
                )
            codes = LEGACY if int(student.ssid) % 2 else CURRENT
            for guardian_id, guardian, _ in family.guardians:
                self.contacts.writerow(
                    [
                        student.ssid, guardian_id, codes[student.primary_language],
                        elas(student), guardian.address_line1 or "", guardian.address_line2 or "",
                        guardian.city or "", guardian.state or "", guardian.zip_code or "",
                        CURRENT[guardian.preferred_language], "Y", "N",
                        "Y" if guardian.uses_portal else "N",
                    ]
                )  # fmt: skip
        for sourced_id, guardian, role in family.guardians:
            self.users.writerow(
                [
                    sourced_id, "active", MODIFIED, "true", family.children[0][2], ROLES[role],
                    "", "", guardian.first_name, guardian.last_name, "", "",
                    guardian.email or "", "", guardian.phone or "", child_ids, "", "",
                ]
            )  # fmt: skip

    def close(self) -> None:
        for stream in self._files:
            stream.close()
