"""Print locally (option C): print-ready PDFs of families' SSRs, each behind a cover sheet.

``create`` records a print batch (``services.channels.batches``): the families chosen (the plan's
print families, everyone in a scope, or the uncovered), one item per student. ``run`` then
streams the batch's reports from the database in hand-out or mailing order, one family at a
time, and writes:

- PDF files of whole families, each family's cover sheet (``services.channels.cover_sheet``) followed by
  its children's SSRs and, when that makes an odd number of pages, a blank page: each family
  starts on a new sheet of a duplex printer, never on the back of another family's report; a new file started before one would pass ``split_bytes`` (print shops cap
  uploads; 50 MB by default), so memory holds at most one file's pages;
- ``manifest.csv``: per family its reference, guardian, language, SSIDs, pages, file and page
  range, and a status: printed, or why not (no usable address for a mailing, an unreadable SSR),
  so no family is silently dropped.

Order: by school, then grade, then family name (to hand out or to mail from each school), or by
ZIP code then family name (presorted bulk mail). A family with children in several schools or
grades is printed once, under its first child's. Cost: every page (covers included) at the
print rate, plus envelope and postage per mailed family (``services.plan.advisor.Rates``).

Measured with bench/print.py on two busy cores: about 150 families a second (covers rendered 50
to a document, so their fonts are embedded once per 50), and a peak RSS of about 200 MB with
10 MB files, the same for 1,000 and 5,000 students: memory follows the file size, not the batch.
"""

from __future__ import annotations

import enum
import itertools
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from io import BytesIO
from pathlib import Path
from typing import Any, TextIO

import pikepdf
import sqlalchemy as sa
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from services.access import operators
from services.access.permissions import Permission, require
from services.access.tables import Operator
from services.audit import log as audit
from services.audit.log import Actor
from services.channels import batches as channel_batches
from services.channels import cover_sheet
from services.channels.batches import ChannelBatch, ChannelItem, ChannelItemState, Scope
from services.core import csv_export, private_files
from services.core.channels import Option
from services.core.db import is_sqlite, session_scope
from services.core.errors import ConsoleError, InvalidInput
from services.core.scope import report_filters
from services.core.settings import Settings
from services.core.validation import plain_text
from services.delivery.ledger import BatchStatus, DeliveryWorker
from services.intake.report_store import ReportStore
from services.intake.score_reports import ScoreReport
from services.plan import coverage
from services.plan.advisor import Rates
from services.roster.facts import HAS_ADDRESS
from services.roster.tables import LEA, Guardian, School, Student

MB = 1024 * 1024
DEFAULT_SPLIT_MB = 50
COVER_CHUNK = 50
"""Families whose cover sheets are rendered as one document, sharing its embedded fonts."""
PROGRESS_EVERY = 200
"""Families listed without printing (no address) between two commits, while no file is open."""
ZIP_PATTERN = r"^\d{5}(-\d{4})?$"
MANIFEST_FIELDS = (
    "family",
    "guardian",
    "language",
    "ssids",
    "reports",
    "pages",
    "file",
    "first_page",
    "last_page",
    "status",
)


class Order(enum.StrEnum):
    SCHOOL = "school"  # school, grade, family name
    ZIP = "zip"  # ZIP code, family name: presorted bulk mail


class Handling(enum.StrEnum):
    MAIL = "mail"  # mailed in #10 window envelopes: needs a usable address
    HAND_OUT = "hand_out"  # handed out at school: printed whatever the address


class Status(enum.StrEnum):
    PRINTED = "printed"
    NO_ADDRESS = "no usable address"
    UNREADABLE = "SSR file unreadable"


def configured_split_mb(settings: Settings) -> int:
    """``print_split_mb`` from the configuration: the size at which print files are split."""
    raw = settings.extra.get("print_split_mb", DEFAULT_SPLIT_MB)
    if isinstance(raw, int) and not isinstance(raw, bool) and 1 <= raw <= 2000:
        return raw
    raise InvalidInput(
        f"print_split_mb must be a whole number of MB from 1 to 2,000; using {DEFAULT_SPLIT_MB}"
    )


@dataclass(frozen=True)
class PrintOptions:
    """How a print batch is laid out; kept with the batch so a rerun prints the same way."""

    order: Order = Order.SCHOOL
    handling: Handling = Handling.MAIL
    split_mb: int = DEFAULT_SPLIT_MB

    def __post_init__(self) -> None:
        if self.order is Order.ZIP and self.handling is Handling.HAND_OUT:
            raise InvalidInput("ZIP order is for mailing; hand-outs go by school and grade")
        if not 1 <= self.split_mb <= 2000:
            raise InvalidInput("Split files at 1 to 2,000 MB")

    def as_detail(self) -> dict[str, Any]:
        return {
            "order": self.order.value,
            "handling": self.handling.value,
            "split_mb": self.split_mb,
        }

    @classmethod
    def from_detail(cls, detail: dict[str, Any]) -> PrintOptions:
        return cls(Order(detail["order"]), Handling(detail["handling"]), int(detail["split_mb"]))


def create(
    engine: Engine,
    operator: Operator,
    *,
    name: str,
    scope: Scope | None = None,
    who: coverage.Who = coverage.Who.PLAN,
    exclude: Iterable[int] = (),
    options: PrintOptions | None = None,
    only: Iterable[int] | None = None,
) -> ChannelBatch:
    """Record a print batch for the chosen families, queued for ``ssr-console worker`` to print."""
    require(operator, Permission.RUN_BATCHES, lea_id=operator.lea_id)
    scope, students = coverage.choose(engine, operator, Option.PRINT, scope, who, exclude, only)
    options = options or PrintOptions()
    with session_scope(engine) as session:
        return channel_batches.create(
            session,
            operator,
            Option.PRINT,
            name=name,
            source=who.value,
            scope=scope,
            students=students,
            detail={**options.as_detail(), "print": PrintState.QUEUED.value},
        )


class PrintState(enum.StrEnum):
    """Where a print batch stands with the worker (``detail["print"]``): the screen shows it."""

    QUEUED = "queued"  # waiting for ``ssr-console worker``
    PRINTING = "printing"  # a worker (``detail["printer"]``) is printing it
    FAILED = "failed"  # the run stopped with ``detail["error"]``; queue it again to resume


def queue(engine: Engine, operator: Operator, batch_id: int) -> None:
    """Ask the worker to print (or resume) a batch; the session that asked may then close."""
    batch = channel_batches.get(engine, operator, batch_id)
    if batch.channel != Option.PRINT.value:
        raise InvalidInput(f"Batch {batch_id} is not a print batch")
    if batch.status is not BatchStatus.RUNNING:
        raise InvalidInput(f"Batch {batch_id} is {batch.status.value}: nothing to print")
    with session_scope(engine) as session:
        row = session.get(ChannelBatch, batch_id, with_for_update=True)
        assert row is not None
        detail = channel_batches.details(row)
        if detail.get("print") == PrintState.PRINTING.value:
            raise InvalidInput(f"Batch {batch_id} is being printed by the worker already")
        detail.pop("error", None)
        _save_detail(session, row, {**detail, "print": PrintState.QUEUED.value})
        audit.record(
            session,
            Actor.of(operator),
            "channel_batch.print_queued",
            channel_batches.target(row),
            {},
            lea_id=row.lea_id,
        )


def _save_detail(session: Session, batch: ChannelBatch, detail: dict[str, Any]) -> None:
    batch.detail = json.dumps(detail, sort_keys=True)
    session.add(batch)


def _claim(engine: Engine, worker_id: str) -> int | None:
    """Take the oldest queued print batch, or one whose worker is gone (it resumes)."""
    with session_scope(engine) as session:
        alive = set(session.exec(select(DeliveryWorker.id)).all()) | {worker_id}
        candidates = session.exec(
            select(ChannelBatch)
            .where(
                col(ChannelBatch.channel) == Option.PRINT.value,
                col(ChannelBatch.status) == BatchStatus.RUNNING,
            )
            .order_by(col(ChannelBatch.id))
            .with_for_update(skip_locked=True)
        )
        for batch in candidates:
            detail = channel_batches.details(batch)
            state, printer = detail.get("print"), detail.get("printer")
            # On SQLite one worker runs: a printer that is not us died (as in ledger.recover).
            dead = printer != worker_id and (is_sqlite(engine) or printer not in alive)
            if state == PrintState.QUEUED.value or (state == PrintState.PRINTING.value and dead):
                _save_detail(
                    session,
                    batch,
                    {**detail, "print": PrintState.PRINTING.value, "printer": worker_id},
                )
                return batch.id
    return None


def waiting(engine: Engine) -> bool:
    """Whether a print batch is queued or being printed (``worker --once`` waits for it)."""
    with Session(engine) as session:
        details = session.exec(
            select(ChannelBatch.detail).where(
                col(ChannelBatch.channel) == Option.PRINT.value,
                col(ChannelBatch.status) == BatchStatus.RUNNING,
            )
        )
        busy = {PrintState.QUEUED.value, PrintState.PRINTING.value}
        return any(json.loads(d or "{}").get("print") in busy for d in details)


def print_queued(engine: Engine, settings: Settings, worker_id: str) -> int:
    """Print every queued batch into ``data_dir/print/batch-<id>``; returns how many were run.

    Runs in ``ssr-console worker``, as the operator who created the batch (their permissions
    hold). A failure is written to the batch for the screen to show, and the batch waits there
    until an operator queues it again (it then resumes).
    """
    try:
        rates = channel_batches.configured_rates(settings)
    except InvalidInput:
        rates = Rates()  # as the print screen warns: a bad [advisor] table falls back to defaults
    store = ReportStore(settings.report_store)
    try:
        sender = configured_return_address(settings)
    except InvalidInput as error:
        sender, problem = (), str(error)
    else:
        problem = ""
    count = 0
    while (batch_id := _claim(engine, worker_id)) is not None:
        count += 1
        with Session(engine) as session:
            batch = session.get(ChannelBatch, batch_id)
            assert batch is not None
            creator = batch.created_by
        folder = settings.data_dir / "print" / f"batch-{batch_id}"
        failed = problem or None  # no cover goes out without the LEA's return address
        try:
            if not problem:
                run(
                    engine,
                    operators.resolve(engine, creator),
                    batch_id,
                    folder,
                    store,
                    rates=rates,
                    return_address=sender,
                )
        except ConsoleError as failure:
            failed = str(failure)
        with session_scope(engine) as session:
            batch = session.get(ChannelBatch, batch_id)
            assert batch is not None
            detail = channel_batches.details(batch)
            detail.pop("printer", None)
            if failed:
                detail.update(print=PrintState.FAILED.value, error=failed)
                audit.record(
                    session,
                    audit.SYSTEM_ACTOR,
                    "channel_batch.print_failed",
                    channel_batches.target(batch),
                    {"error": failed},
                    lea_id=batch.lea_id,
                )
            else:
                detail.pop("print", None)
            _save_detail(session, batch, detail)
    return count


MAX_RETURN_LINES = 3


def configured_return_address(settings: Settings) -> tuple[str, ...]:
    """The LEA's return address for cover sheets, under its name: ``[print] return_address``, a
    list of up to three lines (none configured: the LEA's name alone)."""
    table = settings.extra.get("print") or {}
    if not isinstance(table, dict) or set(table) - {"return_address"}:
        raise InvalidInput("[print] takes one setting: return_address, a list of lines")
    lines = table.get("return_address", [])
    if (
        not isinstance(lines, list)
        or len(lines) > MAX_RETURN_LINES
        or not all(isinstance(line, str) and 0 < len(line) <= 80 for line in lines)
    ):
        raise InvalidInput(
            f"[print] return_address must be a list of 1 to {MAX_RETURN_LINES} lines of text, "
            'like ["100 Main Street", "Sampletown, CA 95000"]'
        )
    return tuple(plain_text(line, "the return address") for line in lines)


@dataclass(frozen=True)
class ReportRow:
    """One SSR of one family, as streamed from the database in print order."""

    guardian_id: int
    household: str  # one envelope per household (services.roster.households)
    family_name: str
    language: str
    address: tuple[str, ...]
    ssid: str
    student: str
    grade: int
    school: str
    year: int
    file_path: str


@dataclass
class PrintResult:
    """What a run wrote: files, manifest, figures."""

    batch_id: int
    files: list[Path] = field(default_factory=list)
    manifest: Path | None = None
    families: int = 0
    printed: int = 0
    not_printed: int = 0
    pages: int = 0
    reports: int = 0
    mailed: int = 0
    cost: Decimal = Decimal(0)


def usable_address(guardian: Guardian) -> tuple[str, ...]:
    """A mailing address block, or () when a street, city, state or valid ZIP is missing."""
    parts = (guardian.address_line1, guardian.city, guardian.state, guardian.zip_code)
    if not all(p and p.strip() for p in parts):
        return ()
    if not re.match(ZIP_PATTERN, (guardian.zip_code or "").strip()):
        return ()
    lines = [f"{guardian.first_name} {guardian.last_name}", guardian.address_line1.strip()]  # type: ignore[union-attr]
    if guardian.address_line2 and guardian.address_line2.strip():
        lines.append(guardian.address_line2.strip())
    lines.append(f"{guardian.city.strip()}, {guardian.state.strip()} {guardian.zip_code.strip()}")  # type: ignore[union-attr]
    return tuple(lines)


HOUSEHOLD = func.coalesce(col(Guardian.household), sa.cast(col(Guardian.id), sa.String))
"""SQL: a guardian's household key; one without a shared household is their own."""


def _rows(session: Session, batch: ChannelBatch, order: Order) -> Iterator[ReportRow]:
    """Every pending item's SSRs in print order, streamed (one household's rows are adjacent)."""
    family_key = (
        sa.select(
            HOUSEHOLD.label("household"),
            func.min(School.name).label("school"),
            func.min(Student.grade).label("grade"),
            func.min(func.coalesce(Guardian.zip_code, "99999")).label("zip"),
            func.min(Guardian.last_name).label("last"),
            func.min(Guardian.first_name).label("first"),
            func.min(Guardian.id).label("gid"),
        )
        .select_from(ChannelItem)
        .join(Student, col(Student.id) == col(ChannelItem.student_id))
        .join(School, col(School.id) == col(Student.school_id))
        .join(Guardian, col(Guardian.id) == col(ChannelItem.guardian_id))
        .where(col(ChannelItem.batch_id) == batch.id)
        .group_by(HOUSEHOLD)
        .subquery("family_key")
    )
    ordering: list[Any] = (
        [family_key.c.school, family_key.c.grade] if order is Order.SCHOOL else [family_key.c.zip]
    )
    statement = (
        sa.select(
            Guardian,
            Student,
            col(School.name),
            col(ScoreReport.admin_year),
            col(ScoreReport.file_path),
        )
        .select_from(ChannelItem)
        .join(Student, col(Student.id) == col(ChannelItem.student_id))
        .join(School, col(School.id) == col(Student.school_id))
        .join(Guardian, col(Guardian.id) == col(ChannelItem.guardian_id))
        .join(family_key, family_key.c.household == HOUSEHOLD)
        .join(ScoreReport, col(ScoreReport.student_id) == col(Student.id))
        .where(
            col(ChannelItem.batch_id) == batch.id,
            col(ChannelItem.state) == ChannelItemState.PENDING,
            *report_filters(
                batch.lea_id, batch.school_id, batch.grade, batch.program, batch.admin_year
            ),
        )
        .order_by(
            *ordering,
            family_key.c.last,
            family_key.c.first,
            family_key.c.gid,
            col(Guardian.last_name),
            col(Guardian.first_name),
            col(Guardian.id),
            col(Student.ssid),
            col(ScoreReport.program),
            col(ScoreReport.test),
            col(ScoreReport.language),
        )
        .execution_options(yield_per=500)
    )
    for guardian, student, school, year, path in session.execute(statement):
        yield ReportRow(
            guardian_id=guardian.id,
            household=guardian.household or str(guardian.id),
            family_name=f"{guardian.last_name}, {guardian.first_name}",
            language=guardian.preferred_language,
            address=usable_address(guardian),
            ssid=student.ssid,
            student=f"{student.first_name} {student.last_name}",
            grade=student.grade,
            school=school,
            year=year,
            file_path=path,
        )


class _Part:
    """The print file being filled; saved and closed before the next one starts.

    Its pages stay linked to their source documents until it is saved, so it keeps them open:
    the families' SSRs, and the cover documents it took pages from.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pdf = pikepdf.new()
        self.sources: list[pikepdf.Pdf] = []
        self.covers: list[pikepdf.Pdf] = []
        self.bytes = 0

    @property
    def pages(self) -> int:
        return len(self.pdf.pages)

    def add(
        self, cover: pikepdf.Page, covers: pikepdf.Pdf, reports: list[pikepdf.Pdf], size: int
    ) -> None:
        """Append a family: its cover, its reports, and a blank page when that makes an odd
        count, so on a duplex printer the next family starts on a sheet of its own."""
        self.pdf.pages.append(cover)
        for report in reports:
            self.pdf.pages.extend(report.pages)
        if self.pages % 2:
            self.pdf.add_blank_page(page_size=(cover_sheet.PAGE_WIDTH, cover_sheet.PAGE_HEIGHT))
        self.sources.extend(reports)
        if not any(c is covers for c in self.covers):
            self.covers.append(covers)
        self.bytes += size

    def uses(self, covers: pikepdf.Pdf) -> bool:
        return any(c is covers for c in self.covers)

    def save(self, keep: pikepdf.Pdf | None) -> None:
        """Write the file and close every source but ``keep`` (the cover document still in use)."""
        with open(self.path, "wb", opener=private_files.opener) as file:
            self.pdf.save(file)
        self.pdf.close()
        for source in self.sources:
            source.close()
        for covers in self.covers:
            if covers is not keep:
                covers.close()
        self.sources.clear()
        self.covers.clear()


def run(
    engine: Engine,
    operator: Operator,
    batch_id: int,
    out_dir: Path,
    store: ReportStore,
    *,
    rates: Rates | None = None,
    return_address: Sequence[str] = (),
) -> PrintResult:
    """Print a batch's pending families into ``out_dir``, their SSRs read from ``store``, each
    cover sheet under the LEA's name and ``return_address`` (``configured_return_address``).

    Item states, figures and manifest lines are committed each time a print file is saved, never
    before: a run that stops part way (a crash, a closed session) leaves the families of saved
    files done and the rest pending, and running the batch again prints only the rest, into new
    files numbered after the existing ones, its lines appended to the same manifest.
    """
    require(operator, Permission.RUN_BATCHES, lea_id=operator.lea_id)
    batch = channel_batches.get(engine, operator, batch_id)
    if batch.channel != Option.PRINT.value:
        raise InvalidInput(f"Batch {batch_id} is not a print batch")
    if batch.status is not BatchStatus.RUNNING:
        raise InvalidInput(f"Batch {batch_id} is {batch.status.value}, not waiting to print")
    options = PrintOptions.from_detail(channel_batches.details(batch))
    rates = rates or Rates()
    manifest_path = out_dir / f"print-{batch_id}-manifest.csv"
    result = PrintResult(batch_id, manifest=manifest_path)
    with Session(engine) as session:
        lea = session.get(LEA, batch.lea_id)
        sender = ((lea.name,) if lea else ()) + tuple(return_address)
    resumed = manifest_path.exists()
    try:
        private_files.make_dirs(out_dir)
        with (
            open(
                manifest_path, "a", newline="", encoding="utf-8", opener=private_files.opener
            ) as manifest,
            Session(engine) as s,
        ):
            table = csv_export.SafeWriter(manifest)
            if not resumed:
                table.writerow(MANIFEST_FIELDS)
            writer = _Writer(engine, batch, options, out_dir, store, sender, result, manifest)
            rows = _rows(s, batch, options.order)
            for _household, family in itertools.groupby(rows, key=lambda r: r.household):
                writer.family(list(family))
            writer.close()
    except OSError as error:
        raise ConsoleError(
            f"Could not write the print files in {out_dir} ({error.strerror or error}); "
            "free the space or fix the folder, then print the batch again: it resumes"
        ) from error
    with session_scope(engine) as session:
        final = session.get(ChannelBatch, batch_id)
        assert final is not None
        mailed = 0
        if options.handling is Handling.MAIL:
            mailed = session.execute(
                select(func.count(func.distinct(HOUSEHOLD)))
                .select_from(ChannelItem)
                .join(Guardian, col(Guardian.id) == col(ChannelItem.guardian_id))
                .where(
                    col(ChannelItem.batch_id) == batch_id,
                    col(ChannelItem.state) == ChannelItemState.PRINTED,
                )
            ).scalar_one()
        result.cost = rates.print_per_page * final.pages + (rates.envelope + rates.postage) * int(
            mailed
        )
        final.cost_cents = int((result.cost * 100).to_integral_value())
        channel_batches.finish(
            session,
            final,
            Actor.of(operator),
            families=result.families,
            printed=result.printed,
            not_printed=result.not_printed,
            pages=final.pages,
            files=len(result.files),
            cost=str(result.cost),
            resumed=resumed,
        )
    return result


class _Writer:
    """Appends families to split files; commits their states and manifest lines per saved file."""

    def __init__(
        self,
        engine: Engine,
        batch: ChannelBatch,
        options: PrintOptions,
        out_dir: Path,
        store: ReportStore,
        sender: tuple[str, ...],
        result: PrintResult,
        manifest: TextIO,
    ) -> None:
        self.engine = engine
        self.batch = batch
        self.options = options
        self.out_dir = out_dir
        self.store = store
        self.sender = sender
        self.result = result
        self.manifest = manifest
        self.table = csv_export.SafeWriter(manifest)
        self.part: _Part | None = None
        self.numbered = len(list(out_dir.glob(f"print-{batch.id}-[0-9]*.pdf")))
        self.lines: list[list[object]] = []  # manifest lines of the families not yet committed
        self.states: dict[ChannelItemState, list[int]] = {}
        self.pages = self.reports = 0  # of the part being filled
        self.waiting: list[list[ReportRow]] = []  # families queued for the next cover document
        self.current: pikepdf.Pdf | None = None  # the cover document being printed from

    def family(self, rows: list[ReportRow]) -> None:
        """Queue one family; every ``COVER_CHUNK`` families are printed together."""
        self.waiting.append(rows)
        if len(self.waiting) >= COVER_CHUNK:
            self._drain()

    def _drain(self) -> None:
        """Print the queued families in order, their covers rendered as one document."""
        mail = self.options.handling is Handling.MAIL
        ready: list[tuple[list[ReportRow], list[bytes], list[pikepdf.Pdf]] | Status] = []
        covers: list[cover_sheet.Cover] = []
        for rows in self.waiting:
            first = rows[0]
            if mail and not first.address:
                ready.append(Status.NO_ADDRESS)
                continue
            try:
                # Read into memory: an open file per report would run out of descriptors on a
                # 50 MB part (~1,000 SSRs); memory stays bounded by the split size instead.
                data = [self.store.read(r.file_path) for r in rows]
                reports = [pikepdf.open(BytesIO(d)) for d in data]
            except (OSError, pikepdf.PdfError):
                ready.append(Status.UNREADABLE)
                continue
            ready.append((rows, data, reports))
            covers.append(self._cover(rows, sum(len(r.pages) for r in reports), mail))
        rendered = cover_sheet.render(covers) if covers else b""
        document = pikepdf.open(BytesIO(rendered)) if covers else None
        self.current = document
        share = len(rendered) // max(len(covers), 1)
        printed = 0
        for rows, outcome in zip(self.waiting, ready, strict=True):
            if isinstance(outcome, Status):
                state = (
                    ChannelItemState.NO_ADDRESS
                    if outcome is Status.NO_ADDRESS
                    else ChannelItemState.FAILED
                )
                self._skip(rows, outcome, state)
                continue
            assert document is not None
            _, data, reports = outcome
            self._print(
                rows, document, document.pages[printed], reports, share + sum(map(len, data))
            )
            printed += 1
        self.waiting = []
        self.current = None
        if document is not None and not (self.part and self.part.uses(document)):
            document.close()

    def _cover(self, rows: list[ReportRow], report_pages: int, mail: bool) -> cover_sheet.Cover:
        first = rows[0]
        ssids = sorted({r.ssid for r in rows})
        children = {r.ssid: cover_sheet.Child(r.student, r.ssid, r.grade, r.school) for r in rows}
        return cover_sheet.Cover(
            sender=self.sender,
            address=first.address if mail else (),
            language=first.language,
            year=first.year,
            children=tuple(children[s] for s in ssids),
            pages=report_pages,
            reference=f"Print batch {self.batch.id} · family {first.guardian_id}",
            corrected=self.batch.source == coverage.Who.CORRECTIONS.value,
        )

    def _base(self, rows: list[ReportRow]) -> list[object]:
        first = rows[0]
        self.result.families += 1
        return [
            first.guardian_id,
            first.family_name,
            cover_sheet.note_language(first.language),
            " ".join(sorted({r.ssid for r in rows})),
            len(rows),
        ]

    def _print(
        self,
        rows: list[ReportRow],
        document: pikepdf.Pdf,
        cover: pikepdf.Page,
        reports: list[pikepdf.Pdf],
        size: int,
    ) -> None:
        base = self._base(rows)
        part = self._part_for(size)
        start = part.pages + 1
        part.add(cover, document, reports, size)
        pages = 1 + sum(len(r.pages) for r in reports)
        self.result.printed += 1
        self.result.pages += pages
        self.result.reports += len(rows)
        self.result.mailed += int(self.options.handling is Handling.MAIL)
        self.pages += pages
        self.reports += len(rows)
        # Printed is not delivered: the operator confirms the day the envelopes went out.
        self.states.setdefault(ChannelItemState.PRINTED, []).extend(_guardians(rows))
        self.lines.append(
            [*base, pages, part.path.name, start, start + pages - 1, Status.PRINTED.value]
        )

    def _skip(self, rows: list[ReportRow], status: Status, state: ChannelItemState) -> None:
        base = self._base(rows)
        self.result.not_printed += 1
        self.states.setdefault(state, []).extend(_guardians(rows))
        self.lines.append([*base, 0, "", "", "", status.value])
        if len(self.lines) >= PROGRESS_EVERY and self.part is None:
            self._commit()

    def _part_for(self, size: int) -> _Part:
        limit = self.options.split_mb * MB
        if self.part is not None and self.part.pages and self.part.bytes + size > limit:
            self._commit()
        if self.part is None:
            self.numbered += 1
            self.part = _Part(self.out_dir / f"print-{self.batch.id}-{self.numbered:03d}.pdf")
            self.result.files.append(self.part.path)
        return self.part

    def _commit(self) -> None:
        """Save the part being filled, then record its families as done, in one transaction."""
        name = None
        if self.part is not None:
            self.part.save(keep=self.current)
            name = self.part.path.name
            self.part = None
        with session_scope(self.engine) as session:
            for state, ids in self.states.items():
                channel_batches.set_items(session, self.batch.id, ids, state)  # type: ignore[arg-type]
            batch = session.get(ChannelBatch, self.batch.id)
            assert batch is not None
            batch.pages += self.pages
            batch.ssrs += self.reports
            if name:
                detail = channel_batches.details(batch)
                detail.update(folder=str(self.out_dir), files=[*detail.get("files", []), name])
                batch.detail = json.dumps(detail, sort_keys=True)
            session.add(batch)
        self.table.writerows(self.lines)
        self.manifest.flush()
        self.states, self.lines, self.pages, self.reports = {}, [], 0, 0

    def close(self) -> None:
        self._drain()
        self._commit()


def _guardians(rows: list[ReportRow]) -> list[int]:
    """The guardians of one envelope's items (a household may hold several)."""
    return sorted({r.guardian_id for r in rows})


@dataclass(frozen=True)
class PrintPreview:
    """What a print batch would hold, before anything is recorded."""

    families: int
    students: int
    without_address: int


def preview(
    engine: Engine,
    operator: Operator,
    *,
    scope: Scope | None = None,
    who: coverage.Who = coverage.Who.PLAN,
) -> PrintPreview:
    """Families and students a print batch would take, and how many lack a mailing address."""
    require(operator, Permission.RUN_BATCHES, lea_id=operator.lea_id)
    scope, students = coverage.choose(engine, operator, Option.PRINT, scope, who)
    chosen = students.subquery()
    with Session(engine) as session:
        families, students, without = session.execute(
            select(
                func.count(func.distinct(HOUSEHOLD)),
                func.count(),
                func.count(func.distinct(HOUSEHOLD)).filter(~HAS_ADDRESS),
            )
            .select_from(chosen)
            .join(Guardian, col(Guardian.id) == chosen.c.gid)
        ).one()
    return PrintPreview(int(families), int(students), int(without))
