"""Which column of the SIS contacts CSV holds what: the ``[roster.columns]`` mapping.

OneRoster 1.1 carries no home language, English language acquisition status, mailing address,
correspondence language, custody or parent-portal use, so districts export those from their SIS
as one CSV, a row per student and contact (a student-only row leaves the guardian column empty).
The mapping names that file's columns; ``console.config`` reads it and hands it here as plain
values.

Only a generic preset is provided. The public documentation searched (Aeries' Ed-Fi field
mappings, support.aeries.com/support/solutions/articles/14000156833, which lists STU.ID, STU.FN,
STU.LN but not the contact export's column headings; PowerSchool and Infinite Campus pages
returned nothing citable) does not give the header names of a contacts export, and a preset must
not be guessed: map your export's headers in ``[roster.columns]``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from services.core.errors import InvalidInput


@dataclass(frozen=True)
class SisColumns:
    """Header names in the SIS contacts CSV; an empty name means "the file has no such column"."""

    ssid: str = "ssid"
    guardian_id: str = "guardian_id"  # the contact's OneRoster sourcedId (users.csv)
    home_language: str = "home_language"  # CALPADS code, 2-digit or 3-letter
    elas: str = "elas"  # EO, IFEP, EL, RFEP, TBD (ADEL)
    address_line1: str = "mail_address"
    address_line2: str = "mail_address2"
    city: str = "mail_city"
    state: str = "mail_state"
    zip_code: str = "mail_zip"
    correspondence_language: str = "correspondence_language"  # CALPADS code or en/es/...
    receives_records: str = "receives_records"  # custody: Y/N
    do_not_contact: str = "do_not_contact"  # Y/N: never sent anything
    uses_portal: str = "portal_user"  # Y/N

    @property
    def required(self) -> tuple[str, ...]:
        return (self.ssid,)


PRESETS: dict[str, SisColumns] = {"generic": SisColumns()}
"""Named starting points; ``[roster.columns]`` keys override single columns."""


def from_config(preset: str, overrides: dict[str, object]) -> SisColumns:
    """The mapping for a preset name and ``[roster.columns]`` overrides, refused with a sentence."""
    if preset not in PRESETS:
        raise InvalidInput(f"Unknown [roster] preset {preset!r}; known: {', '.join(PRESETS)}")
    known = {f.name for f in fields(SisColumns)}
    if unknown := sorted(set(overrides) - known):
        raise InvalidInput(
            f"Unknown [roster.columns] key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    if bad := [k for k, v in overrides.items() if not isinstance(v, str)]:
        raise InvalidInput(f"[roster.columns] {', '.join(bad)} must be column names (text)")
    return replace(PRESETS[preset], **overrides)  # type: ignore[arg-type]
