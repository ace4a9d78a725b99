"""The district of the whole-season test (``tests/test_season.py``): a small SIS export written as
an SIS would write it, the SSR PDFs TOMS would hand out, a TOMS-style API on loopback, and the
real ``ssr-console`` run as a separate process on one configuration file.

Twelve students in two schools and fifteen guardians: siblings with two guardians at one
address, parents at two addresses who each receive the records, a contact who must never be
written to, one without custody, and families without an email address (printed, or ordered on
paper from ETS for the student whose report TOMS never had).
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from services.demo.ssr_pdf import ScoreLine, SsrInput, render

LEA_CDS = "1964733"
LEA_NAME = "Sierra Vista Unified"
SCHOOLS = {
    "sch-a": ("19647330000011", "Alder Elementary"),
    "sch-b": ("19647330000029", "Birch Middle"),
}
YEAR = 2026
TOMS_USER, TOMS_SECRET = "svusd-sis-1964733", "k7Q2mX9rT4pL8vB3nW6z"


@dataclass(frozen=True)
class Child:
    sourced_id: str
    ssid: str
    first: str
    last: str
    school: str  # sourcedId in orgs.csv
    grade: int
    language: str  # CALPADS home language code
    source: str  # where TOMS has the SSR: "zip", "api" or "" (never made available)

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"

    @property
    def school_cds(self) -> str:
        return SCHOOLS[self.school][0]


@dataclass(frozen=True)
class Contact:
    sourced_id: str
    first: str
    last: str
    email: str
    language: str  # correspondence language (CALPADS code or en/es/...)
    address: str
    children: tuple[str, ...]  # sourcedIds, the first guardian listed first in the student row
    receives_records: bool = True
    do_not_contact: bool = False

    @property
    def addressable(self) -> bool:
        """May be written to (a notice), by email: entitled and not "do not contact"."""
        return bool(self.email) and self.receives_records and not self.do_not_contact


def _children() -> list[Child]:
    rows = [
        ("Ana", "Reyes", "sch-a", 5, "00", "zip"),
        ("Luis", "García", "sch-a", 5, "01", "zip"),
        ("Sofía", "García", "sch-b", 8, "01", "zip"),
        ("Minh", "Nguyễn", "sch-a", 5, "vie", "zip"),
        ("Wei", "Chen", "sch-b", 8, "cmn", "zip"),
        ("Owen", "Park", "sch-b", 8, "eng", "zip"),
        ("Mia", "Jones", "sch-a", 5, "00", "api"),
        ("Diego", "Soto", "sch-b", 8, "spa", "api"),
        ("Ella", "Brown", "sch-a", 5, "eng", "api"),
        ("Jose", "Santos", "sch-b", 8, "05", "api"),
        ("Liam", "Ward", "sch-a", 5, "00", ""),
        ("Zoe", "Hall", "sch-b", 8, "eng", "api"),
    ]
    return [
        Child(f"stu-{n:02d}", f"{2000000000 + n}", first, last, school, grade, language, source)
        for n, (first, last, school, grade, language, source) in enumerate(rows, start=1)
    ]


def _contacts() -> list[Contact]:
    return [
        Contact("g01", "Rosa", "Reyes", "rosa.reyes@families.example", "en", "1 Oak St", ("stu-01",)),
        Contact("g02", "Carmen", "García", "carmen@families.example", "es", "2 Elm St", ("stu-02", "stu-03")),
        Contact("g03", "Jorge", "García", "jorge@families.example", "es", "2 Elm St", ("stu-02", "stu-03")),
        Contact("g04", "Lan", "Nguyễn", "lan.nguyen@families.example", "vi", "4 Pine St", ("stu-04",)),
        Contact("g05", "Li", "Chen", "li.chen@families.example", "zh_Hans", "5 Ash St", ("stu-05",)),
        Contact("g06", "Grace", "Park", "grace.park@families.example", "en", "6 Fir St", ("stu-06",)),
        Contact("g07", "Tom", "Jones", "", "en", "7 Bay St", ("stu-07",)),
        Contact("g08", "Ines", "Soto", "", "es", "8 Cove St", ("stu-08",)),
        Contact("g09", "Kate", "Brown", "kate.brown@families.example", "en", "9 Hill St", ("stu-09",)),
        Contact("g10", "Ben", "Santos", "ben.santos@families.example", "en", "10 Lake St", ("stu-10",)),
        Contact("g11", "Maria", "Santos", "maria.santos@families.example", "fil", "11 Mesa St", ("stu-10",)),
        Contact("g12", "Sam", "Ward", "", "en", "12 Ridge St", ("stu-11",)),
        Contact("g13", "Paul", "Hall", "paul.hall@families.example", "en", "13 Vale St", ("stu-12",), receives_records=False),
        Contact("g14", "Nina", "Hall", "nina.hall@families.example", "en", "14 Glen St", ("stu-12",)),
        Contact("g15", "Vic", "Park", "vic.park@families.example", "en", "6 Fir St", ("stu-06",), do_not_contact=True),
    ]  # fmt: skip


@dataclass
class District:
    """Who is in the SIS export, and what each family is owed."""

    children: list[Child] = field(default_factory=_children)
    contacts: list[Contact] = field(default_factory=_contacts)

    def child(self, sourced_id: str) -> Child:
        return next(c for c in self.children if c.sourced_id == sourced_id)

    def guardians_of(self, child: Child) -> list[Contact]:
        return [g for g in self.contacts if child.sourced_id in g.children]

    def by_email(self, email: str) -> Contact:
        return next(g for g in self.contacts if g.email == email)

    def children_of(self, contact: Contact) -> list[Child]:
        return [self.child(c) for c in contact.children]

    def households_of(self, child: Child) -> list[Contact]:
        """The guardians a child's reports go to (``services.roster.facts.recipient``): those who
        may receive them, one per household (the same children at the same address), the
        first listed (the SIS's primary contact) representing it."""
        households: dict[tuple[str, tuple[str, ...]], Contact] = {}
        for g in self.guardians_of(child):
            if g.receives_records and not g.do_not_contact:
                households.setdefault((g.address, g.children), g)
        return list(households.values())

    @property
    def told(self) -> list[Contact]:
        """The guardians a notice batch writes to: everyone with an email address who may be
        written to (custody and "do not contact", from the SIS), both parents of a household."""
        return [g for g in self.contacts if g.addressable]

    @property
    def emailed(self) -> dict[str, list[Child]]:
        """Email address -> children whose imported reports the plan's secure email sends there:
        each household of a child gets its own delivery."""
        families: dict[str, list[Child]] = {}
        for child in self.children:
            for family in self.households_of(child):
                if child.source and family.email:
                    families.setdefault(family.email, []).append(child)
        return families

    @property
    def on_paper(self) -> list[Child]:
        """Children none of whose guardians has an email address."""
        return [c for c in self.children if not any(g.email for g in self.guardians_of(c))]

    def write_sis(self, folder: Path) -> list[Path]:
        """A OneRoster 1.1 CSV zip and the generic SIS contacts CSV (README "Roster import")."""
        orgs = _csv(
            ["sourcedId", "status", "dateLastModified", "name", "type", "identifier", "parentSourcedId"],
            [["district", "active", "2026-08-01", LEA_NAME, "district", LEA_CDS, ""]]
            + [[s, "active", "2026-08-01", n, "school", cds, "district"] for s, (cds, n) in SCHOOLS.items()],
        )  # fmt: skip
        users = [
            [
                c.sourced_id, "active", "student", c.school, c.first, c.last, c.ssid, "", "",
                ",".join(g.sourced_id for g in self.guardians_of(c)), f"{c.grade:02d}",
            ]
            for c in self.children
        ] + [
            [
                g.sourced_id, "active", "guardian" if g.receives_records else "relative",
                self.child(g.children[0]).school, g.first, g.last, "", g.email, "", "", "",
            ]
            for g in self.contacts
        ]  # fmt: skip
        header = ["sourcedId", "status", "role", "orgSourcedIds", "givenName", "familyName"]
        header += ["identifier", "email", "phone", "agentSourcedIds", "grades"]
        archive = folder / "oneroster.zip"
        with zipfile.ZipFile(archive, "w") as out:
            out.writestr("orgs.csv", orgs)
            out.writestr("users.csv", _csv(header, users))
        contacts = [
            [
                c.ssid, g.sourced_id, c.language, "EL" if c.language not in ("00", "eng") else "EO",
                g.address, "Sierra Vista", "CA", "93001", g.language,
                "Y" if g.receives_records else "N", "Y" if g.do_not_contact else "N", "N",
            ]
            for c in self.children
            for g in self.guardians_of(c)
        ]  # fmt: skip
        sis = folder / "contacts.csv"
        sis.write_text(
            _csv(
                ["ssid", "guardian_id", "home_language", "elas", "mail_address", "mail_city"]
                + ["mail_state", "mail_zip", "correspondence_language", "receives_records"]
                + ["do_not_contact", "portal_user"],
                contacts,
            ),
            encoding="utf-8",
        )
        return [archive, sis]


def _csv(header: list[str], rows: Iterable[list[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def ssr(child: Child, score: int = 2480) -> bytes:
    """The child's CAASPP Smarter Balanced SSR, with their name and SSID printed on it."""
    cds, school = SCHOOLS[child.school]
    return render(
        SsrInput(
            program="CAASPP",
            test="SB",
            admin_year=YEAR,
            language="en",
            report_title="Student Score Report",
            student_name=child.name,
            ssid=child.ssid,
            grade=child.grade,
            school=school,
            lea=LEA_NAME,
            lea_cds=LEA_CDS,
            scores=(ScoreLine("English Language Arts/Literacy", score, "Standard Met"),),
            address=(f"Parent of {child.first}", "1 Main St", "Sierra Vista, CA 93001"),
        )
    )


def ssr_name(child: Child) -> str:
    return f"{child.ssid}_CAASPP_SB_{YEAR}_en.pdf"


def ssr_zip(path: Path, children: Iterable[Child], score: int = 2480) -> Path:
    """A TOMS bulk download: the children's SSRs in a zip."""
    with zipfile.ZipFile(path, "w") as out:
        for child in children:
            out.writestr(ssr_name(child), ssr(child, score))
    return path


class TomsApi:
    """A TOMS-style API on loopback: ``POST /api/v1/token`` (HTTP Basic, client credentials),
    ``GET /api/v1/students/<ssid>/reports`` and the PDFs it links, behind the bearer token."""

    def __init__(self, reports: dict[str, bytes], available_at: str) -> None:
        self.reports = reports  # SSID -> PDF
        self.available_at = available_at
        self.token_requests = 0
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: object) -> None:
                pass

            def reply(self, status: int, body: bytes = b"", kind: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                api.token_requests += 1
                basic = base64.b64encode(f"{TOMS_USER}:{TOMS_SECRET}".encode()).decode()
                if self.path != "/api/v1/token":
                    return self.reply(404)
                if self.headers.get("Authorization") != f"Basic {basic}":
                    return self.reply(401, b'{"error": "invalid_client"}')
                return self.reply(200, b'{"access_token": "season-token", "token_type": "Bearer"}')

            def do_GET(self) -> None:  # noqa: N802
                if self.headers.get("Authorization") != "Bearer season-token":
                    return self.reply(401)
                parts = self.path.strip("/").split("/")
                if parts[:3] == ["api", "v1", "students"] and parts[4:] == ["reports"]:
                    if parts[3] not in api.reports:
                        return self.reply(404)
                    listing = [
                        {
                            "report_type": "SB",
                            "year": YEAR,
                            "language": "en",
                            "pdf": f"/pdf/{parts[3]}.pdf",
                            "available_at": api.available_at,
                        }
                    ]
                    return self.reply(200, json.dumps(listing).encode())
                if parts[0] == "pdf" and parts[1].removesuffix(".pdf") in api.reports:
                    pdf = api.reports[parts[1].removesuffix(".pdf")]
                    return self.reply(200, pdf, "application/pdf")
                return self.reply(404)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> TomsApi:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


CONSOLE = Path(sys.executable).with_name("ssr-console")
"""The installed command, as a coordinator's cron job or shell script runs it."""


@dataclass
class Console:
    """``ssr-console`` as separate processes on one configuration file (``$SSR_CONSOLE_CONFIG``),
    run from ``cwd`` (not the repository), with nothing else of the test's environment."""

    config: Path
    cwd: Path

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SSR_")}
        env["SSR_CONSOLE_CONFIG"] = str(self.config)
        return env

    def run(
        self, *args: str, operator: str | None = None, stdin: str = "", timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        who = ["--operator", operator] if operator else []
        return subprocess.run(
            [str(CONSOLE), *who, *args],
            cwd=self.cwd,
            env=self.env(),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def ok(self, *args: str, operator: str | None = None, stdin: str = "") -> str:
        """Run a step that must succeed; its standard output."""
        done = self.run(*args, operator=operator, stdin=stdin)
        assert done.returncode == 0, (args, done.returncode, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, done.stderr
        return done.stdout

    def start(self, *args: str, cwd: Path, log: Path) -> subprocess.Popen[bytes]:
        """A long-running command (the worker), from another working directory."""
        with open(log, "wb") as out:
            return subprocess.Popen(
                [str(CONSOLE), *args], cwd=cwd, env=self.env(), stdout=out, stderr=subprocess.STDOUT
            )
