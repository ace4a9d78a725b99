"""Settings handed to services by ``console.config``; services never read files or env.

``ConfigFile`` is the one model of the configuration file: every section, every key and its type.
``console.config`` checks the whole file against it once, when a command starts, so a mistyped key
or a value of the wrong type stops the command with a sentence naming the key and the file, instead
of being ignored (a ``database_ur`` quietly meaning the local SQLite) or failing an hour later in
the worker. Sections whose values need more than a type (a regex, a time zone, a host name) are
checked again, for meaning, by the service that owns them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.core.errors import InvalidInput
from services.core.working_days import WorkingCalendar


class Section(BaseModel):
    """A table of the file: unknown keys refused, values of their own type only (no "5" for 5)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class DatabaseSection(Section):
    """``[database]``: how long the console waits on the database before it says so."""

    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    """PostgreSQL: give up connecting after this long (a server that does not answer)."""
    statement_timeout_seconds: float = Field(default=120.0, ge=0)
    """PostgreSQL: cancel one statement that runs longer (0: never); the session carries on."""
    long_work_statement_timeout_seconds: float = Field(default=0.0, ge=0)
    """PostgreSQL, for unattended long work (``worker``, ``import``, ``roster import``, ``seed``,
    ``db``): the same limit (0: never). A district-size batch or roster writes in statements that
    may rightly run for minutes, and a cancelled one there costs a restart, not a person's wait."""

    def for_long_work(self) -> DatabaseSection:
        """These timeouts, with the statement limit of unattended long work."""
        return self.model_copy(
            update={"statement_timeout_seconds": self.long_work_statement_timeout_seconds}
        )

    busy_timeout_seconds: float = Field(default=30.0, ge=0)
    """SQLite: wait this long for another process's write lock before saying it is busy."""


class DeliverySection(Section):
    """``[delivery]``: secure email batches and the worker that runs them."""

    password_channel: Literal["email", "sms"] = "email"  # noqa: S105 (a channel, not a secret)
    password_delay_minutes: float = Field(default=5.0, ge=0)
    lookahead: int = Field(default=64, ge=1)
    processes: int = Field(default=0, ge=0)  # encryption processes; 0: one per core
    poll_seconds: float = Field(default=0.5, gt=0)
    heartbeat_seconds: float = Field(default=10.0, gt=0)
    stale_after_seconds: float = Field(default=120.0, gt=0)
    once_horizon_seconds: float = Field(default=60.0, ge=0)
    reconnect_seconds: float = Field(default=0.5, gt=0)
    reconnect_max_seconds: float = Field(default=30.0, gt=0)
    vault_key: str | None = None  # from vault_key_file / vault_key_env (console.config)

    @property
    def password_delay(self) -> timedelta:
        return timedelta(minutes=self.password_delay_minutes)


class SmtpSection(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    starttls: bool = False
    implicit_tls: bool = False
    username: str | None = None
    password: str | None = None
    validate_certs: bool = True
    from_address: str = "ssr-reports@localhost"
    from_name: str = ""
    connections: int = Field(default=4, ge=1)
    per_minute: int = Field(default=0, ge=0)
    per_day: int = Field(default=0, ge=0)
    timeout: float = Field(default=60.0, gt=0)
    max_attempts: int = Field(default=8, ge=1)
    backoff_seconds: float = Field(default=30.0, ge=0)
    backoff_max_seconds: float = Field(default=3600.0, ge=0)


class SmsSection(Section):
    url: str
    token: str | None = None
    timeout: float = Field(default=30.0, gt=0)


class CredentialSection(Section):
    lifetime_days: int | None = Field(default=None, ge=1)


class SchedulerSection(Section):
    timezone: str = "America/Los_Angeles"
    scan_minutes: float = Field(default=5, gt=0)
    heartbeat_seconds: float = Field(default=30, gt=0)
    audit_anchor: bool = True


Day = date | str
"""A TOML date (``2026-07-03``) or the same as text; ``WorkingCalendar.parse`` reads its meaning."""


class CalendarSection(Section):
    last_day_of_instruction: Day | None = None
    first_day_of_next_year: Day | None = None
    holidays: list[Day] = []


class IntakeSection(Section):
    name_pattern: str | None = None
    max_pdf_mb: int = Field(default=20, ge=1)
    max_merged_mb: int = Field(default=1024, ge=1)
    workers: int = Field(default=1, ge=1)
    keep_free_mb: int = Field(default=64, ge=0)
    folders: list[str] | None = None


class TomsSection(Section):
    url: str | None = None
    download_hosts: list[str] = []
    request_deadline_seconds: float = Field(default=120.0, gt=0)


class RosterSection(Section):
    preset: str = "generic"
    ssid_user_id_type: str | None = None
    columns: dict[str, str] = {}


class AdvisorSection(Section):
    """Rates; money as a TOML number or text (``"1.48"``), read exactly by the advisor."""

    ets_per_ssr: float | str | None = None
    ets_stuffed_per_ssr: float | str | None = None
    ets_stuffed: bool | None = None
    ets_offered: bool | None = None
    print_per_page: float | str | None = None
    pages_per_ssr: int | None = Field(default=None, ge=1)
    envelope: float | str | None = None
    postage: float | str | None = None


class PrintSection(Section):
    return_address: list[str] = []


class SshSection(Section):
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    host_key: str | None = None
    authorized_keys: str | None = None
    idle_minutes: float | None = Field(default=None, gt=0)
    max_sessions: int | None = Field(default=None, ge=1)
    max_sessions_per_operator: int | None = Field(default=None, ge=1)
    connection_burst: int | None = Field(default=None, ge=1)
    connections_per_minute: float | None = Field(default=None, gt=0)


class BouncesSection(Section):
    """``[bounces]``: the mailbox bounces come back to (``services.bounces.mailbox``)."""

    protocol: Literal["imap", "IMAP", "pop3", "POP3"] = "imap"
    host: str = ""
    port: int = Field(default=993, ge=1, le=65535)
    user: str = ""
    password: str = ""
    folder: str = "INBOX"
    processed_folder: str = "Processed"
    interval_seconds: float = Field(default=300.0, gt=0)
    timeout: float = Field(default=30.0, gt=0)
    ca_file: str = ""
    validate_certs: bool = True
    address: str = ""
    verp: bool = False
    alert_rate: float = Field(default=0.05, gt=0, le=1)
    alert_minimum: int = Field(default=5, ge=1)


class ConfigFile(Section):
    """The whole configuration file (after ``*_file`` / ``*_env`` secrets were read in)."""

    database_url: str | None = Field(default=None, min_length=1)
    data_dir: str | None = Field(default=None, min_length=1)
    store_dir: str | None = Field(default=None, min_length=1)
    operator: str | None = Field(default=None, min_length=1)
    print_split_mb: int = Field(default=50, ge=1, le=2000)
    database: DatabaseSection = DatabaseSection()
    delivery: DeliverySection = DeliverySection()
    smtp: SmtpSection = SmtpSection()
    sms: SmsSection | None = None
    credential: CredentialSection = CredentialSection()
    scheduler: SchedulerSection = SchedulerSection()
    calendar: CalendarSection = CalendarSection()
    intake: IntakeSection = IntakeSection()
    toms: TomsSection = TomsSection()
    roster: RosterSection = RosterSection()
    advisor: AdvisorSection = AdvisorSection()
    print: PrintSection = PrintSection()
    ssh: SshSection = SshSection()
    bounces: BouncesSection = BouncesSection()


def check_file(values: dict[str, Any], where: str) -> ConfigFile:
    """The file's values as the model, or ``InvalidInput`` naming the first bad key and ``where``
    (the file). Every problem is listed, so one edit fixes them all."""
    try:
        return ConfigFile.model_validate(values)
    except ValidationError as error:
        problems = [_problem(item) for item in error.errors()]
        raise InvalidInput(f"{where}: {'; '.join(problems)}") from None


def _problem(item: Any) -> str:
    """One pydantic error as words: ``[delivery] lookahead must be a whole number (got "64")``."""
    path = [str(part) for part in item["loc"]]
    key = _key_name(path)
    if item["type"] == "extra_forbidden":
        return f"{key} is not a setting SSR Console knows (a typo?)"
    given = item.get("input")
    return f"{key} {_wanted(item)} (got {given!r})"


def _key_name(path: list[str]) -> str:
    """``[delivery] lookahead`` for a key in a table, ``database_url`` for a top-level one."""
    tables = [p for p in path[:-1] if not p.isdigit()]
    last = path[-1] if not path[-1].isdigit() else f"{path[-2]}[{path[-1]}]"
    if not last.replace("[", "").replace("]", "").isidentifier():
        last = repr(last)  # a key with a space or a dot in it shows where it went wrong
    if path[-1].isdigit():
        tables = tables[:-1]
    return f"[{'.'.join(tables)}] {last}" if tables else last


_WANTED = {
    "int_type": "must be a whole number",
    "float_type": "must be a number",
    "bool_type": "must be true or false",
    "string_type": "must be text in quotes",
    "date_type": "must be a date like 2026-07-03",
    "list_type": "must be a list",
    "dict_type": "must be a table",
    "model_type": "must be a table",
    "literal_error": "must be one of the listed values",
    "missing": "is required",
}


def _wanted(item: Any) -> str:
    kind = str(item["type"])
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        return str(item["msg"]).lower().replace("input should be", "must be")
    if kind == "string_too_short":
        return "cannot be empty"
    if kind == "literal_error":
        return str(item["msg"]).lower().replace("input should be", "must be")
    return _WANTED.get(kind, "is not valid: " + str(item["msg"]).lower())


@dataclass(frozen=True)
class Settings:
    database_url: str
    data_dir: Path
    operator: str | None = None
    store_dir: Path | None = None
    extra: dict[str, object] = field(default_factory=dict)
    """The file's other tables, already checked against ``ConfigFile``, for the service that owns
    each (``[smtp]``, ``[ssh]``...)."""
    calendar: WorkingCalendar = field(default_factory=WorkingCalendar)
    """The school calendar of ``[calendar]`` that the SSR deadlines count on."""

    @property
    def report_store(self) -> Path:
        """Where SSR PDFs live, content-addressed (``services.intake.report_store``), imported or demo."""
        return self.store_dir or self.data_dir / "reports"

    @cached_property
    def delivery(self) -> DeliverySection:
        """``[delivery]``, typed (the worker, password policy and vault read it here)."""
        return section_of(DeliverySection, self.extra.get("delivery"), "delivery")

    @cached_property
    def database(self) -> DatabaseSection:
        """``[database]``, typed: the timeouts of ``services.core.db.make_engine``."""
        return section_of(DatabaseSection, self.extra.get("database"), "database")


SectionType = TypeVar("SectionType", bound=Section)


def section_of(model: type[SectionType], table: object, name: str) -> SectionType:
    """A section from its table; a program (or a test) that built Settings by hand is held to
    the same model as the file."""
    try:
        return model.model_validate(table or {})
    except ValidationError as error:
        problems = [_problem({**item, "loc": (name, *item["loc"])}) for item in error.errors()]
        raise InvalidInput("; ".join(problems)) from None
