"""Importing SSR PDFs: TOMS bulk downloads (zips, nested zips, folders, merged per-grade PDFs).

Every file ends one of three ways: stored (a new report or a new version of one), recognised as
already stored (nothing happens), or refused with a reason in ``import_exception``; one bad file
never stops the rest. A report is tied to a student by the SSID printed on its first page; the
file name (a configurable pattern) supplies program, test, year and language, and an SSID in the
name must agree with the one in the PDF. Merged files are split with pikepdf at each page whose
SSID changes. Work is committed in batches with the run's counts, so a screen can follow it from
the database, and memory stays flat however many reports a batch holds. An import that stops on an
error (a full disk, a database that went away) keeps what it committed, marks its run failed with
those counts, and says how many reports were stored: never "nothing was changed".
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import multiprocessing
import os
import re
import socket
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import IO, Any, cast

import pikepdf
from sqlalchemy import Select, and_, bindparam, delete, func, insert, update
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from services.access.permissions import Permission, require, school_scope
from services.access.tables import Operator
from services.audit import log as audit
from services.audit.log import SYSTEM_ACTOR, Actor
from services.core.columns import as_utc, utcnow
from services.core.errors import ConsoleError, DatabaseUnavailable, InvalidInput, NotFound
from services.core.private_files import make_dirs
from services.core.programs import Program, test_code
from services.core.settings import Settings
from services.core.validation import language as canonical_language
from services.core.working_days import receipt_moment
from services.intake.pdf_checks import Verdict, check_single, limit_memory, open_checked
from services.intake.records import ImportException, ImportRun, Reason, ReportReceipt, RunStatus
from services.intake.report_store import ReportStore, sha256_of
from services.intake.score_reports import ScoreReport
from services.intake.ssid_extract import UnreadablePdf, page_ssids, report_ranges
from services.intake.toms_api import BadListing, ForeignLink, TomsApiError, TomsClient, shown
from services.intake.zip_safety import MiB, Refusal, ZipLimits, read_zip
from services.roster.tables import LEA, School, Student

log = logging.getLogger(__name__)

DEFAULT_NAME_PATTERN = (
    r"^(?:(?P<ssid>\d{10})_|[^_]*_)?(?P<program>CAASPP|ELPAC)_(?P<test>.+?)_(?P<year>\d{4})"
    r"_(?P<language>[a-z]{2,3}(?:_[a-z]+)?)\.pdf$"
)
"""``<ssid>_<program>_<test>_<year>_<lang>.pdf`` for one SSR, ``<anything>_<program>_...`` for a
merged file (no SSID: it is split by the SSIDs on its pages). Matched case-insensitively."""


@dataclass(frozen=True)
class IntakeOptions:
    """The knobs of an import; ``from_settings`` reads them from the ``[intake]`` config table."""

    name_pattern: str = DEFAULT_NAME_PATTERN
    max_pdf_bytes: int = 20 * MiB
    max_merged_bytes: int = 1024 * MiB
    zip_limits: ZipLimits = field(default_factory=ZipLimits)
    version_reason: str = ""
    commit_every: int = 500
    workers: int = 1  # processes checking single-SSR PDFs; 1 checks them in this process
    keep_free_bytes: int = 64 * MiB  # an import stops before the store's disk has less free
    received_on: date | None = None
    """When the files' SSRs became available to the LEA (``import --received``), the day the
    statutory deadlines count from (``services.core.working_days``); None: the day of import."""

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> IntakeOptions:
        table = settings.extra.get("intake", {})
        values: dict[str, Any] = {}
        if isinstance(table, dict):
            if "name_pattern" in table:
                values["name_pattern"] = str(table["name_pattern"])
            if "max_pdf_mb" in table:
                values["max_pdf_bytes"] = int(table["max_pdf_mb"]) * MiB
            if "max_merged_mb" in table:
                values["max_merged_bytes"] = int(table["max_merged_mb"]) * MiB
            if "workers" in table:
                values["workers"] = max(1, int(table["workers"]))
            if "keep_free_mb" in table:
                values["keep_free_bytes"] = max(0, int(table["keep_free_mb"])) * MiB
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def as_request(self) -> dict[str, str]:
        """The options an operator chose for this run (``import --pattern`` and the like), for
        the run's request: a resumed run reads its files the same way."""
        chosen = {
            "name_pattern": self.name_pattern if self.name_pattern != DEFAULT_NAME_PATTERN else "",
            "version_reason": self.version_reason,
            "received_on": self.received_on.isoformat() if self.received_on else "",
        }
        return {key: value for key, value in chosen.items() if value}

    @classmethod
    def from_request(cls, settings: Settings, request: dict[str, Any]) -> IntakeOptions:
        received = request.get("received_on")
        return cls.from_settings(
            settings,
            name_pattern=request.get("name_pattern"),
            version_reason=request.get("version_reason"),
            received_on=date.fromisoformat(received) if received else None,
        )

    def compiled_pattern(self) -> re.Pattern[str]:
        try:
            pattern = re.compile(self.name_pattern, re.IGNORECASE)
        except re.error as error:
            raise InvalidInput(
                f"The file-name pattern is not a valid regular expression: {error}"
            ) from None
        missing = {"program", "test", "year", "language"} - set(pattern.groupindex)
        if missing:
            raise InvalidInput(
                "The file-name pattern needs the named groups program, test, year and language "
                f"(missing: {', '.join(sorted(missing))})"
            )
        return pattern


@dataclass(frozen=True)
class ReportMeta:
    """What a file name (or an API listing) says about a report; ``ssid`` is None for merged files."""

    program: Program
    test: str
    admin_year: int
    language: str
    ssid: str | None = None
    received_at: datetime | None = None  # when the API says it became available to the LEA


@dataclass(frozen=True)
class Refused:
    source: str
    reason: Reason
    detail: str
    ssid: str | None = None


@dataclass
class Progress:
    """Running counts of one import, handed to the progress callback (a copy each time)."""

    run_id: int
    files: int = 0
    reports: int = 0
    stored: int = 0
    duplicates: int = 0
    new_versions: int = 0
    exceptions: int = 0
    bytes_stored: int = 0
    elapsed: float = 0.0
    refused: tuple[Refused, ...] = ()  # refusals since the previous callback

    @property
    def files_per_s(self) -> float:
        return self.files / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def reports_per_s(self) -> float:
        return self.reports / self.elapsed if self.elapsed > 0 else 0.0


@dataclass(frozen=True)
class GroupCount:
    school: str
    grade: int
    reports: int


@dataclass(frozen=True)
class ImportSummary:
    """The outcome of a run: its counts, reports stored per school and grade, refusals by reason."""

    progress: Progress
    status: str
    by_school_grade: tuple[GroupCount, ...]
    reasons: dict[str, int]

    def __str__(self) -> str:
        p = self.progress
        lines = [
            f"import run {p.run_id} {self.status}: {p.files} files, {p.reports} reports, "
            f"{p.stored} stored ({p.new_versions} new versions), {p.duplicates} already stored, "
            f"{p.exceptions} exceptions in {p.elapsed:.1f}s ({p.files_per_s:.0f} files/s)"
        ]
        lines += [f"  {g.school}, grade {g.grade}: {g.reports}" for g in self.by_school_grade]
        lines += [f"  refused {count}: {reason}" for reason, count in sorted(self.reasons.items())]
        return "\n".join(lines)


@dataclass(frozen=True)
class Scope:
    """Who imports and which students their reports may belong to."""

    actor: Actor
    lea_id: int | None
    school_id: int | None = None


ProgressCallback = Callable[[Progress], None]


class ImportStopped(ConsoleError):
    """An import ended on an error after it began: the message says what was kept."""


def scope_for(engine: Engine, operator: Operator | None, lea_cds: str | None = None) -> Scope:
    """The import scope: an operator's LEA (and school for a site coordinator), or a named LEA.

    Every import works its scope out here from the operator, never from its caller. No operator
    is the server account itself (``ssr-console import`` run without one), which may name any LEA."""
    lea_id = None
    if lea_cds:
        with Session(engine) as session:
            lea_id = session.exec(select(LEA.id).where(LEA.cds_code == lea_cds.strip())).first()
        if lea_id is None:
            raise NotFound(f"No LEA with CDS code {lea_cds}")
    if operator is None:
        return Scope(SYSTEM_ACTOR, lea_id)
    require(operator, Permission.IMPORT_REPORTS, lea_id=lea_id)
    return Scope(Actor.of(operator), operator.lea_id, school_scope(operator))


INBOX = "inbox"
"""The intake folder in the data directory when ``[intake] folders`` names none."""


def intake_folders(settings: Settings) -> tuple[Path, ...]:
    """The folders imports may read: ``[intake] folders``, else ``<data_dir>/inbox`` (created
    owner-only). Everything else on the server is out of reach of an import, whoever asks."""
    table = settings.extra.get("intake", {})
    listed = table.get("folders") if isinstance(table, dict) else None
    if listed is None:
        return (make_dirs(settings.data_dir / INBOX).resolve(),)
    if not isinstance(listed, list) or not listed or not all(isinstance(f, str) for f in listed):
        raise InvalidInput("[intake] folders must be a list of folder paths")
    return tuple(Path(folder).expanduser().resolve() for folder in listed)


def intake_path(path: str | Path, folders: tuple[Path, ...]) -> Path:
    """``path`` (relative: to the first intake folder) with links and ``..`` resolved, if it lies
    in an intake folder and exists; otherwise a sentence, which never says whether a path
    outside the folders exists."""
    if not _utf8(str(path)):
        raise InvalidInput(f"{_shown(str(path))} is not a valid UTF-8 name: rename it first")
    resolved = (folders[0] / Path(path).expanduser()).resolve()
    if not any(resolved.is_relative_to(folder) for folder in folders):
        raise InvalidInput(
            f"{path} is outside the intake folders ({', '.join(map(str, folders))}): copy the "
            "files into one of them, or ask the technology coordinator to add a folder to "
            "[intake] folders"
        )
    if not resolved.exists():
        raise InvalidInput(f"No such file or folder: {path}")
    return resolved


def import_paths(
    engine: Engine,
    settings: Settings,
    paths: Iterable[str | Path],
    operator: Operator | None,
    options: IntakeOptions | None = None,
    progress: ProgressCallback | None = None,
    *,
    lea_cds: str | None = None,
    run_id: int | None = None,
) -> ImportSummary:
    """Import files, folders and zips from the intake folders for ``operator`` (``scope_for``);
    every path is checked to lie in one and to exist before anything starts. ``run_id``: run (or
    resume) that queued run."""
    scope_for(engine, operator, lea_cds)  # a refusal comes before any path is looked at
    targets = checked_paths(settings, paths)
    label = ", ".join(p.name or str(p) for p in targets)
    options = options or IntakeOptions.from_settings(settings)
    request = {"paths": [str(p) for p in targets], **options.as_request()}
    with Importer(
        engine,
        settings,
        operator,
        label,
        options,
        progress,
        lea_cds=lea_cds,
        run_id=run_id,
        request=request,
    ) as importer:
        for path in targets:
            importer.import_path(path)
    return importer.summary()


def checked_paths(settings: Settings, paths: Iterable[str | Path]) -> list[Path]:
    """The paths to import, each checked to lie in an intake folder and to exist."""
    given = list(paths)
    if not given:
        raise InvalidInput("Name at least one file or folder to import")
    folders = intake_folders(settings)
    return [intake_path(path, folders) for path in given]


class Importer:
    """One import run: feed it paths or PDFs, then leave the ``with`` block to finish and audit it."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        operator: Operator | None,
        source: str,
        options: IntakeOptions | None = None,
        progress: ProgressCallback | None = None,
        *,
        lea_cds: str | None = None,
        run_id: int | None = None,
        request: dict[str, Any] | None = None,
    ) -> None:
        """A new run, saying ``request`` (what was asked, so it can be resumed); or with
        ``run_id``, a queued or interrupted run this process takes over: its counts start again
        and its refusals are recorded again, and what it stored before counts as stored, once."""
        self.engine = engine
        self.scope = scope = scope_for(engine, operator, lea_cds)
        self.options = options or IntakeOptions.from_settings(settings)
        self.pattern = self.options.compiled_pattern()
        self.store = ReportStore(settings.report_store, keep_free=self.options.keep_free_bytes)
        self.callback = progress
        self._versions_query = _versions_query(scope)
        interrupt_abandoned(engine)
        self.session = Session(engine, expire_on_commit=False)
        self.taken_over = run_id is not None
        if run_id is None:
            run = ImportRun(
                operator=scope.actor.name,
                lea_id=scope.lea_id,
                source=source[:500],
                host=socket.gethostname()[:255],
                pid=os.getpid(),
                heartbeat_at=utcnow(),
                request=json.dumps(request) if request is not None else None,
            )
            self.session.add(run)
            self.session.commit()
            assert run.id is not None
            run_id = run.id
        else:
            visible_run(engine, operator, run_id)  # only a run the operator may see is taken over
            self._take_over(run_id)
        self.progress = Progress(run_id)
        self.reasons: Counter[str] = Counter()
        self._committed = self._counts()  # what the database holds; the truth after a failure
        self._committed_reasons: Counter[str] = Counter()
        self.status = RunStatus.RUNNING
        self._started = time.monotonic()
        self._last_report = 0.0
        self._last_commit = self._started
        self._pending = 0
        self._refused: list[Refused] = []
        self._checks = _Checks(self.options.workers)

    def __enter__(self) -> Importer:
        return self

    def _take_over(self, run_id: int) -> None:
        zero = dict.fromkeys(
            ("files", "reports", "stored", "duplicates", "new_versions", "exceptions"), 0
        )
        self.session.execute(
            update(ImportRun)
            .where(col(ImportRun.id) == run_id)
            .values(
                status=RunStatus.RUNNING.value,
                host=socket.gethostname()[:255],
                pid=os.getpid(),
                heartbeat_at=utcnow(),
                finished_at=None,
                bytes_stored=0,
                **zero,
            )
        )
        self.session.execute(delete(ImportException).where(col(ImportException.run_id) == run_id))
        self.session.commit()

    def _stored_by_this_run(self, report_id: int) -> bool:
        receipt = self.session.get(ReportReceipt, report_id)
        return receipt is not None and receipt.run_id == self.progress.run_id

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, *_: object
    ) -> None:
        if kind is None:
            self._settle_checks(keep=0)
            self._checks.close()
            self.finish(RunStatus.FINISHED)
            return
        self.session.rollback()
        self._checks.close()
        read = self.progress.files
        self._restore_committed()
        reason = _reason(error)
        try:
            self.finish(RunStatus.FAILED, reason)
        except ConsoleError as unrecorded:
            self.session.close()
            marked = (
                f"The run could not be marked failed ({_reason(unrecorded)}); it reads "
                "interrupted once this process has ended."
            )
        else:
            marked = "The run is marked failed."
        if isinstance(error, Exception):
            raise ImportStopped(self._stopped(reason, read, marked)) from error

    def _restore_committed(self) -> None:
        """Back to the counts the database holds: the uncommitted rest was rolled back."""
        for name, value in self._committed.items():
            setattr(self.progress, name, value)
        self.reasons = Counter(self._committed_reasons)

    def _stopped(self, reason: str, read: int, marked: str) -> str:
        p = self.progress
        return (
            f"Import run {p.run_id} stopped: {reason}. {p.stored} reports were stored and are "
            f"kept ({p.duplicates} already stored, {p.exceptions} refused); the {read - p.files} "
            "files read after them were not recorded: import the same files again to finish "
            f"(reports already stored are recognised). {marked}"
        )

    # -- inputs ---------------------------------------------------------------------------------

    def import_path(self, path: Path) -> None:
        """A file or folder as given by the operator (a named symlink is followed, once); what
        it stored is committed when it is done, before the next path is opened."""
        if path.is_dir():
            for file in _walk(path, self):
                self._import_file(file)
        else:
            self._import_file(path)
        self._settle_checks(keep=0)
        self._commit()

    def _import_file(self, path: Path) -> None:
        name = path.name.lower()
        if name.endswith(".zip"):
            with path.open("rb") as handle:
                for item in read_zip(handle, str(path), self.store.spool, self.options.zip_limits):
                    if isinstance(item, Refusal):
                        self.progress.files += 1
                        self.refuse(item.source, item.reason, item.detail)
                    else:
                        self.import_document(item.stream, item.source, item.size, item.sha256)
        elif name.endswith(".pdf"):
            with path.open("rb") as handle:
                self.import_document(handle, str(path), os.fstat(handle.fileno()).st_size)
        else:
            self.progress.files += 1
            self.refuse(str(path), Reason.NOT_A_REPORT, "only .pdf and .zip files are imported")

    def import_document(
        self,
        stream: IO[bytes],
        source: str,
        size: int,
        sha: str | None = None,
        meta: ReportMeta | None = None,
    ) -> None:
        """Verify and store one PDF file (one SSR, or a merged file to split)."""
        self.progress.files += 1
        if meta is None:
            name = re.split(r"[!/\\]", source)[-1]
            if not name.lower().endswith(".pdf"):
                self.refuse(source, Reason.NOT_A_REPORT, "only .pdf and .zip files are imported")
                return
            meta = self._meta(name, source)
            if meta is None:
                return
        limit = self.options.max_pdf_bytes if meta.ssid else self.options.max_merged_bytes
        if size > limit:
            self.refuse(source, Reason.PDF_TOO_LARGE, f"{size} bytes; the limit is {limit}")
            return
        if meta.ssid:
            self._single(stream.read(), source, meta, sha)
        else:
            self._merged(stream, source, meta)
        self._tick()

    def _meta(self, name: str, source: str) -> ReportMeta | None:
        match = self.pattern.search(name)
        if match is None:
            self.refuse(source, Reason.BAD_NAME, f"{name!r} does not match the file-name pattern")
            return None
        try:
            return ReportMeta(
                program=(program := Program(match["program"].upper())),
                test=test_code(program, match["test"]),
                admin_year=int(match["year"]),
                language=canonical_language(match["language"]),
                ssid=match.groupdict().get("ssid"),
            )
        except (ValueError, InvalidInput) as error:
            self.refuse(source, Reason.BAD_NAME, str(error))
            return None

    def _single(self, data: bytes, source: str, meta: ReportMeta, sha: str | None) -> None:
        """Check the PDF (in a worker process when there is a pool) and store it once it passes."""
        assert meta.ssid is not None
        self.progress.reports += 1
        if self._checks.pool is None:
            self._settle(check_single(data, meta.ssid), data, source, meta, sha)
        else:
            self._checks.submit(data, meta.ssid, (data, source, meta, sha))
            self._settle_checks(keep=self._checks.window)

    def _settle_checks(self, keep: int) -> None:
        for verdict, (data, source, meta, sha) in self._checks.ready(keep):
            self._settle(verdict, data, source, meta, sha)

    def _settle(
        self, verdict: Verdict, data: bytes, source: str, meta: ReportMeta, sha: str | None
    ) -> None:
        if verdict.reason is None:
            self.accept(data, source, meta, sha)
        else:
            self.refuse(source, verdict.reason, verdict.detail, verdict.ssid or meta.ssid)

    def _merged(self, stream: IO[bytes], source: str, meta: ReportMeta) -> None:
        pdf, verdict = open_checked(stream)
        if pdf is None:
            self.progress.reports += 1
            self.refuse(source, verdict.reason or Reason.CORRUPT_PDF, verdict.detail)
            return
        with pdf:
            try:
                stream.seek(0)
                ssids = page_ssids(stream)
            except UnreadablePdf as error:
                self.progress.reports += 1
                self.refuse(source, Reason.CORRUPT_PDF, f"text cannot be read: {error}")
                return
            for ssid, first, stop in report_ranges(ssids):
                self.progress.reports += 1
                part = f"{source} pages {first + 1}-{stop}"
                if ssid is None:
                    self.refuse(part, Reason.NO_SSID, "pages before the first SSID")
                    continue
                data = _pages(pdf, first, stop)
                if len(data) > self.options.max_pdf_bytes:
                    self.refuse(part, Reason.PDF_TOO_LARGE, f"{len(data)} bytes", ssid)
                    continue
                self.accept(data, part, replace(meta, ssid=ssid))
                self._tick()

    # -- storing --------------------------------------------------------------------------------

    def accept(self, data: bytes, source: str, meta: ReportMeta, sha: str | None = None) -> None:
        """Store a verified report for ``meta.ssid``: new, a new version, or nothing if known."""
        found = self._versions(meta)
        if found is None:
            self.refuse(source, Reason.UNKNOWN_SSID, self._unknown_detail(), meta.ssid)
            return
        student, versions = found
        sha = sha or sha256_of(data)
        same = next((row for row in versions if row[2] == sha), None)
        if same is not None:
            if self.taken_over and self._stored_by_this_run(same[0]):
                # stored before this run was interrupted: counted again, never stored twice
                self.progress.stored += 1
                self.progress.new_versions += same[1] > 1
            else:
                self.progress.duplicates += 1
            return
        reason = ""
        if versions:
            latest_id, latest_version, *_ = versions[-1]
            receipt = self.session.get(ReportReceipt, latest_id)
            if receipt is not None and receipt.run_id == self.progress.run_id:
                self.refuse(
                    source, Reason.CONFLICT, f"differs from {receipt.source[-300:]}", meta.ssid
                )
                return
            reason = self.options.version_reason or (
                f"content differs from version {latest_version}"
            )
        relative = self.store.put(data, sha)
        version = versions[-1][1] + 1 if versions else 1
        report_id = self.session.execute(
            _INSERT_REPORT,
            {
                "student_id": student,
                "program": meta.program,
                "admin_year": meta.admin_year,
                "test": meta.test,
                "language": meta.language,
                "version": version,
                "file_path": relative,
                "sha256": sha,
                "size_bytes": len(data),
                "received_at": meta.received_at or self._received_at,
            },
        ).scalar_one()
        self.session.execute(
            _INSERT_RECEIPT,
            {
                "score_report_id": report_id,
                "run_id": self.progress.run_id,
                "source": source[-1000:],
                "reason": reason[:500],
            },
        )
        self.progress.stored += 1
        self.progress.new_versions += version > 1
        self.progress.bytes_stored += len(data)
        self._pending += 1

    @property
    def _received_at(self) -> datetime:
        """When a file's SSR became available to the LEA: ``--received``, else now."""
        day = self.options.received_on
        return receipt_moment(day) if day is not None else utcnow()

    def has_report(self, meta: ReportMeta) -> bool:
        """Whether the version the API lists is stored already, so API intake skips it (and a
        run resumes where it stopped): some version received when the API says this one became
        available, or later. A listing without that date is fetched and compared by content,
        since a corrected SSR may hide behind it."""
        if meta.received_at is None:
            return False
        found = self._versions(meta)
        return found is not None and any(
            as_utc(received) >= meta.received_at for *_, received in found[1]
        )

    def _versions(
        self, meta: ReportMeta
    ) -> tuple[int, list[tuple[int, int, str, datetime]]] | None:
        """The in-scope student with ``meta.ssid`` and the stored versions of this report (id,
        version, sha256, received), or None."""
        rows = self.session.execute(
            self._versions_query,
            {
                "ssid": meta.ssid,
                "program": meta.program,
                "admin_year": meta.admin_year,
                "test": meta.test,
                "language": meta.language,
            },
        ).all()
        if not rows:
            return None
        return rows[0][0], [(r[1], r[2], r[3], r[4]) for r in rows if r[1] is not None]

    def _unknown_detail(self) -> str:
        if self.scope.school_id is not None:
            return "no student with this SSID at your school"
        if self.scope.lea_id is not None:
            return "no student with this SSID in the LEA"
        return "no student with this SSID"

    def refuse(self, source: str, reason: Reason, detail: str, ssid: str | None = None) -> None:
        """Record a refusal; the import goes on with the next file."""
        self.session.add(
            ImportException(
                run_id=self.progress.run_id,
                source=source[-1000:],
                reason=reason.value,
                detail=detail[:500],
                ssid=ssid,
            )
        )
        log.info("import run %s refused %s: %s", self.progress.run_id, source, reason.value)
        self.progress.exceptions += 1
        self.reasons[reason.value] += 1
        if self.callback is not None:  # handed over (and cleared) at the next progress report
            self._refused.append(Refused(source, reason, detail, ssid))
        self._pending += 1

    # -- progress and finishing -----------------------------------------------------------------

    def _tick(self) -> None:
        now = time.monotonic()
        if self._pending >= self.options.commit_every or now - self._last_commit >= HEARTBEAT_S:
            self._commit()
        if self.callback is not None and (now - self._last_report >= 0.25 or self._refused):
            self._last_report = now
            self._report()

    def _report(self) -> None:
        self.progress.elapsed = time.monotonic() - self._started
        if self.callback is not None:
            self.callback(replace(self.progress, refused=tuple(self._refused)))
        self._refused.clear()

    def _commit(self) -> None:
        self.session.execute(
            update(ImportRun)
            .where(col(ImportRun.id) == self.progress.run_id)
            .values(heartbeat_at=utcnow(), **self._counts())
        )
        self.store.sync()
        self.session.commit()
        self.session.expunge_all()
        self._pending = 0
        self._last_commit = time.monotonic()
        self._committed = self._counts()
        self._committed_reasons = Counter(self.reasons)

    def _counts(self) -> dict[str, int]:
        p = self.progress
        return {
            "files": p.files,
            "reports": p.reports,
            "stored": p.stored,
            "duplicates": p.duplicates,
            "new_versions": p.new_versions,
            "exceptions": p.exceptions,
            "bytes_stored": p.bytes_stored,
        }

    def finish(self, status: RunStatus, error: str = "") -> None:
        """Write the final counts and the run's audit event in one transaction."""
        if self.status is not RunStatus.RUNNING:
            return
        self.status = status
        self.progress.elapsed = time.monotonic() - self._started
        self.session.execute(
            update(ImportRun)
            .where(col(ImportRun.id) == self.progress.run_id)
            .values(status=status.value, finished_at=utcnow(), **self._counts())
        )
        audit.record(
            self.session,
            self.scope.actor,
            "import.run",
            f"import_run:{self.progress.run_id}",
            {
                "status": status.value,
                **self._counts(),
                "refused": dict(self.reasons),
                **({"error": error[:300]} if error else {}),
            },
            lea_id=self.scope.lea_id,
        )
        self.store.sync()
        self.session.commit()
        self._report()
        self.session.close()

    def summary(self) -> ImportSummary:
        return ImportSummary(
            replace(self.progress, refused=()),
            self.status.value,
            tuple(_by_school_grade(self.engine, self.progress.run_id)),
            dict(self.reasons),
        )


async def import_from_api(
    engine: Engine,
    settings: Settings,
    client: TomsClient,
    operator: Operator | None,
    ssids: Iterable[str] | None = None,
    options: IntakeOptions | None = None,
    progress: ProgressCallback | None = None,
    workers: int = 4,
    *,
    lea_cds: str | None = None,
    run_id: int | None = None,
    resumable: bool = True,
) -> ImportSummary:
    """Fetch every in-scope student's SSRs from the API. A listed report whose stored version is
    as recent as the API's ``available_at`` is skipped, so running it again after an interruption
    resumes where it stopped; a re-issued (corrected) one is fetched and kept as a new version,
    and one listed without a date is fetched and kept only if its content differs.
    ``resumable``: the run may be resumed by a worker with the LEA's recorded credential (not
    so for a credential given at the command line)."""
    options = options or IntakeOptions.from_settings(settings)
    request = {"api": True, **options.as_request()} if resumable else None
    with Importer(
        engine,
        settings,
        operator,
        f"API {client!r}",
        options,
        progress,
        lea_cds=lea_cds,
        run_id=run_id,
        request=request,
    ) as importer:
        queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=workers * 4)

        async def produce() -> None:
            for ssid in ssids if ssids is not None else _students_in_scope(engine, importer.scope):
                await queue.put(ssid)
            for _ in range(workers):
                await queue.put(None)

        async def work() -> None:
            while (ssid := await queue.get()) is not None:
                await _fetch_student(importer, client, ssid)

        await asyncio.gather(produce(), *(work() for _ in range(workers)))
    return importer.summary()


_API_REASONS = {BadListing: Reason.BAD_LISTING, ForeignLink: Reason.FOREIGN_LINK}


async def _fetch_student(importer: Importer, client: TomsClient, ssid: str) -> None:
    """One student's reports; whatever the API answers for them is refused with a reason, and the
    run goes on with the next student."""
    try:
        listed = await client.reports(ssid)
    except TomsApiError as error:
        _refuse_from_api(importer, f"report list of {ssid}", error, ssid)
        return
    for item in listed:
        meta = ReportMeta(
            item.program, item.test, item.admin_year, item.language, ssid, item.available_at
        )
        if importer.has_report(meta):
            importer.progress.duplicates += 1
            continue
        source = shown(item.pdf_url)  # never a pre-signed link's signature
        try:
            data = await client.download(item.pdf_url)
        except TomsApiError as error:
            _refuse_from_api(importer, source, error, ssid)
            continue
        importer.import_document(io.BytesIO(data), source, len(data), meta=meta)


def _refuse_from_api(importer: Importer, source: str, error: TomsApiError, ssid: str) -> None:
    importer.progress.files += 1
    reason = _API_REASONS.get(type(error), Reason.DOWNLOAD_FAILED)
    importer.refuse(source, reason, str(error), ssid)


def _students_in_scope(engine: Engine, scope: Scope, page: int = 1000) -> Iterator[str]:
    """SSIDs of the students an import may reach, paged by id so memory stays flat."""
    last = 0
    while True:
        query = select(col(Student.id), Student.ssid).where(col(Student.id) > last)
        if scope.lea_id is not None:
            query = query.where(Student.lea_id == scope.lea_id)
        if scope.school_id is not None:
            query = query.where(Student.school_id == scope.school_id)
        with Session(engine) as session:
            rows = session.exec(query.order_by(col(Student.id)).limit(page)).all()
        if not rows:
            return
        yield from (ssid for _, ssid in rows)
        last = cast(int, rows[-1][0])


_INSERT_REPORT = insert(ScoreReport).returning(col(ScoreReport.id))
_INSERT_RECEIPT = insert(ReportReceipt)


def _versions_query(scope: Scope) -> Select[int | None, int | None, int, str, datetime]:
    """One query, built once per run: the in-scope student left-joined to the stored versions of
    one report, so an unknown SSID gives no row and a report not yet stored one row of NULLs."""
    same_report = and_(
        col(ScoreReport.student_id) == col(Student.id),
        col(ScoreReport.program) == bindparam("program"),
        col(ScoreReport.admin_year) == bindparam("admin_year"),
        col(ScoreReport.test) == bindparam("test"),
        col(ScoreReport.language) == bindparam("language"),
    )
    query = (
        sa_select(
            col(Student.id),
            col(ScoreReport.id),
            col(ScoreReport.version),
            col(ScoreReport.sha256),
            col(ScoreReport.received_at),
        )
        .outerjoin(ScoreReport, same_report)
        .where(col(Student.ssid) == bindparam("ssid"))
        .order_by(col(ScoreReport.version))
    )
    if scope.lea_id is not None:
        query = query.where(col(Student.lea_id) == scope.lea_id)
    if scope.school_id is not None:
        query = query.where(col(Student.school_id) == scope.school_id)
    return query


def _reason(error: BaseException | None) -> str:
    """What stopped an import, in one line; a database error by its own words (the console's
    sentence around it says "nothing was changed", which is not true of a run half done)."""
    cause = error.__cause__ if isinstance(error, DatabaseUnavailable) else error
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror.lower() + (f" ({cause.filename})" if cause.filename else "")
    lines = str(cause or "interrupted").strip().splitlines()
    return lines[0] if lines else type(cause).__name__


def by_school_grade(engine: Engine, operator: Operator | None, run_id: int) -> list[GroupCount]:
    """Reports a run the operator may see (``visible_run``) stored, per school and grade."""
    return _by_school_grade(engine, visible_run(engine, operator, run_id))


def _by_school_grade(engine: Engine, run_id: int) -> list[GroupCount]:
    """Reports a run stored, counted per school and grade (an aggregate query, not a row walk)."""
    with Session(engine) as session:
        rows = session.exec(
            select(School.name, Student.grade, func.count())
            .select_from(ReportReceipt)
            .join(ScoreReport, ScoreReport.id == ReportReceipt.score_report_id)  # type: ignore[arg-type]
            .join(Student, Student.id == ScoreReport.student_id)  # type: ignore[arg-type]
            .join(School, School.id == Student.school_id)  # type: ignore[arg-type]
            .where(ReportReceipt.run_id == run_id)
            .group_by(col(School.name), col(Student.grade))
            .order_by(col(School.name), col(Student.grade))
        ).all()
    return [GroupCount(school, grade, count) for school, grade, count in rows]


def _runs_of(operator: Operator | None) -> list[Any]:
    """The runs an operator may see: their LEA's, a site coordinator only their own (a run of
    the LEA names other schools' students); no operator (the server account): every run."""
    if operator is None:
        return []
    require(operator, Permission.IMPORT_REPORTS)
    conditions: list[Any] = [col(ImportRun.lea_id) == operator.lea_id]
    if school_scope(operator) is not None:
        conditions.append(col(ImportRun.operator) == operator.username)
    return conditions


def latest_run(engine: Engine, operator: Operator | None) -> ImportRun | None:
    """The most recent import the operator may see (``_runs_of``), for the import screen to
    show; a run whose process died reads interrupted, not running."""
    interrupt_abandoned(engine)
    query = select(ImportRun).where(*_runs_of(operator))
    with Session(engine, expire_on_commit=False) as session:
        return session.exec(query.order_by(col(ImportRun.id).desc()).limit(1)).first()


def visible_run(engine: Engine, operator: Operator | None, run_id: int) -> int:
    """``run_id`` if the operator may see that run, else ``NotFound`` (never "not yours")."""
    with Session(engine) as session:
        found = session.exec(
            select(ImportRun.id).where(col(ImportRun.id) == run_id, *_runs_of(operator))
        ).first()
    if found is None:
        raise NotFound(f"No import run {run_id}")
    return run_id


HEARTBEAT_S = 60.0
"""A running import writes its counts at least this often (and every ``commit_every`` reports,
and after each path it was given), which shows it is alive; the import screen reads them."""
STALE_AFTER = timedelta(minutes=15)
"""A run silent this long is abandoned, wherever it ran (another machine's processes cannot be
asked)."""


def interrupt_abandoned(engine: Engine) -> int:
    """Mark interrupted the runs left running by a process that died: on this machine, its pid
    is gone; anywhere, it has not written for ``STALE_AFTER``. Returns how many were marked."""
    host, now = socket.gethostname()[:255], utcnow()
    with Session(engine) as session:
        running = session.exec(
            select(ImportRun).where(ImportRun.status == RunStatus.RUNNING.value)
        ).all()
        abandoned = [
            run
            for run in running
            if (run.host == host and run.pid is not None and not _alive(run.pid))
            or now - (run.heartbeat_at or run.started_at) > STALE_AFTER
        ]
        for run in abandoned:
            counts = {"files": run.files, "stored": run.stored, "exceptions": run.exceptions}
            session.execute(
                update(ImportRun)
                .where(col(ImportRun.id) == run.id, col(ImportRun.status) == RunStatus.RUNNING)
                .values(status=RunStatus.INTERRUPTED.value, finished_at=run.heartbeat_at or now)
            )
            audit.record(
                session,
                SYSTEM_ACTOR,
                "import.run",
                f"import_run:{run.id}",
                {"status": RunStatus.INTERRUPTED.value, "pid": run.pid, **counts},
                lea_id=run.lea_id,
            )
        session.commit()
    return len(abandoned)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another account's process: alive
        return True
    return True


def exceptions(
    engine: Engine, operator: Operator | None, run_id: int, limit: int = 200, offset: int = 0
) -> list[Refused]:
    """A page of the refusals of a run the operator may see (``visible_run``), oldest first."""
    visible_run(engine, operator, run_id)
    with Session(engine) as session:
        rows = session.exec(
            select(ImportException)
            .where(ImportException.run_id == run_id)
            .order_by(ImportException.id)  # type: ignore[arg-type]
            .offset(offset)
            .limit(limit)
        ).all()
    return [Refused(r.source, Reason(r.reason), r.detail, r.ssid) for r in rows]


def _walk(folder: Path, importer: Importer) -> Iterator[Path]:
    """Files under ``folder`` in directory order, streamed: a folder of 300,000 SSRs is never
    listed into memory (sorting it would be). Symlinks inside it are refused, never followed."""
    with os.scandir(folder) as listing:
        for entry in listing:
            path = Path(entry.path)
            if not _utf8(entry.name):
                importer.progress.files += 1
                importer.refuse(_shown(entry.path), Reason.BAD_NAME, "the name is not valid UTF-8")
            elif entry.is_symlink():
                importer.progress.files += 1
                importer.refuse(str(path), Reason.SYMLINK, "links are not followed inside a folder")
            elif entry.is_dir(follow_symlinks=False):
                yield from _walk(path, importer)
            elif entry.is_file(follow_symlinks=False):
                yield path


def _utf8(name: str) -> bool:
    """Whether a file name decoded from the file system is text (bytes that are not UTF-8 come
    back as lone surrogates, which neither the database nor a terminal can take)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _shown(name: str) -> str:
    """A file name that is not UTF-8, with its odd bytes written as ``\\xff``."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _pages(pdf: pikepdf.Pdf, first: int, stop: int) -> bytes:
    """Pages ``first..stop`` as a PDF of their own, byte-for-byte the same on every run."""
    part = pikepdf.new()
    part.pages.extend(pdf.pages[first:stop])
    buffer = io.BytesIO()
    part.save(buffer, deterministic_id=True)
    part.close()
    return buffer.getvalue()


class _Checks:
    """A bounded window of PDF checks running in worker processes, settled in submission order.

    The window is counted in files and bytes, so memory stays flat; a worker that dies on a
    hostile PDF fails only the checks in flight (refused, never lost) and the pool is renewed.
    """

    MAX_BYTES = 64 * MiB

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.window = workers * 8
        self.pool = self._new_pool() if workers > 1 else None
        self._flight: deque[tuple[Future[Verdict], Any]] = deque()
        self._bytes = 0

    def _new_pool(self) -> ProcessPoolExecutor:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["services.intake.pdf_checks"])
        return ProcessPoolExecutor(self.workers, mp_context=context, initializer=limit_memory)

    def submit(
        self, data: bytes, ssid: str, payload: tuple[bytes, str, ReportMeta, str | None]
    ) -> None:
        assert self.pool is not None
        self._flight.append((self.pool.submit(check_single, data, ssid), payload))
        self._bytes += len(data)

    def ready(
        self, keep: int
    ) -> Iterator[tuple[Verdict, tuple[bytes, str, ReportMeta, str | None]]]:
        while self._flight and (len(self._flight) > keep or self._bytes > self.MAX_BYTES):
            future, payload = self._flight.popleft()
            self._bytes -= len(payload[0])
            try:
                verdict = future.result()
            except BrokenProcessPool:
                verdict = Verdict(Reason.CORRUPT_PDF, "the PDF reader process failed on this batch")
                self._renew()
            except MemoryError:
                verdict = Verdict(
                    Reason.PDF_TOO_LARGE, "checking it needs more memory than allowed"
                )
            yield verdict, payload

    def _renew(self) -> None:
        if self.pool is not None and getattr(self.pool, "_broken", False):
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = self._new_pool()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
