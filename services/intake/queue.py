"""Imports queued in the database and run by ``ssr-console worker``, outside any SSH session.

The import screen queues a run (its ``request`` says what to import); the worker claims it and
runs it through ``importer``, which commits its counts as it goes, so the screen follows it from
the database and closing the session or the console stops nothing. A run whose process died is
marked interrupted (``importer.interrupt_abandoned``); resuming queues it again under the same
number, and the worker reads the same files again: what it stored before counts as stored, and
nothing is stored twice. ``ssr-console import`` runs in its own process and writes the same run
record (with its request), so a run it left interrupted can be resumed here too.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from services.access import operators
from services.access.tables import Operator
from services.audit import log as audit
from services.audit.log import Actor
from services.core import toms, vault
from services.core.columns import utcnow
from services.core.db import session_scope
from services.core.errors import ConsoleError, InvalidInput
from services.core.settings import Settings
from services.credential import lifecycle as credentials
from services.intake import importer
from services.intake.importer import ImportStopped, IntakeOptions, Scope
from services.intake.records import ImportRun, RunStatus
from services.intake.toms_api import TomsClient

log = logging.getLogger(__name__)

RESUMABLE = (RunStatus.INTERRUPTED.value, RunStatus.FAILED.value)


def queue_paths(engine: Engine, settings: Settings, operator: Operator, paths: list[str]) -> int:
    """Queue an import of files, folders and zips for the worker; returns the run's number.
    Paths outside the intake folders, or missing, are refused now, with a sentence."""
    scope = importer.scope_for(engine, operator)
    targets = importer.checked_paths(settings, paths)
    request = {"paths": [str(p) for p in targets]}
    return _queue(engine, scope, ", ".join(p.name or str(p) for p in targets), request)


def queue_api(engine: Engine, settings: Settings, operator: Operator) -> int:
    """Queue a fetch of every in-scope student's SSRs from the TOMS API, with the LEA's
    recorded credential; refused now when no API is configured."""
    scope = importer.scope_for(engine, operator)
    url = toms.api_url(settings)
    if url is None:
        raise InvalidInput("No TOMS API is configured: set [toms] url")
    return _queue(engine, scope, f"API {url}", {"api": True})


def _queue(engine: Engine, scope: Scope, source: str, request: dict[str, Any]) -> int:
    with session_scope(engine) as session:
        run = ImportRun(
            operator=scope.actor.name,
            lea_id=scope.lea_id,
            source=source[:500],
            status=RunStatus.QUEUED.value,
            request=json.dumps(request),
        )
        session.add(run)
        session.flush()
        assert run.id is not None
        audit.record(
            session, scope.actor, "import.queued", f"import_run:{run.id}", {}, lea_id=scope.lea_id
        )
        return run.id


def resume(engine: Engine, operator: Operator, run_id: int) -> None:
    """Queue an interrupted (or failed) run again, under its number, for the worker."""
    importer.visible_run(engine, operator, run_id)  # NotFound for a run not theirs
    with session_scope(engine) as session:
        run = session.get(ImportRun, run_id, with_for_update=True)
        assert run is not None
        if run.status not in RESUMABLE:
            raise InvalidInput(f"Import run {run_id} is {run.status}: nothing to resume")
        if run.request is None:
            raise InvalidInput(
                f"Import run {run_id} used a credential typed at the command line: run "
                "`ssr-console import` again"
            )
        run.status = RunStatus.QUEUED.value
        session.add(run)
        audit.record(
            session,
            Actor.of(operator),
            "import.resumed",
            f"import_run:{run_id}",
            {},
            lea_id=run.lea_id,
        )


def latest(engine: Engine, operator: Operator) -> ImportRun | None:
    """The run the import screen shows: the operator's LEA's latest (a site coordinator's own)."""
    return importer.latest_run(engine, operator)


def waiting(engine: Engine) -> bool:
    """Whether an import is queued (``worker --once`` waits for it)."""
    with Session(engine) as session:
        found = session.exec(
            select(ImportRun.id).where(ImportRun.status == RunStatus.QUEUED.value).limit(1)
        ).first()
    return found is not None


def _claim(engine: Engine) -> ImportRun | None:
    """Take the oldest queued run: this process runs it from now on."""
    with session_scope(engine) as session:
        run = session.exec(
            select(ImportRun)
            .where(ImportRun.status == RunStatus.QUEUED.value)
            .order_by(col(ImportRun.id))
            .limit(1)
            .with_for_update(skip_locked=True)
        ).first()
        if run is None:
            return None
        session.execute(
            update(ImportRun)
            .where(col(ImportRun.id) == run.id, col(ImportRun.status) == RunStatus.QUEUED.value)
            .values(
                status=RunStatus.RUNNING.value,
                host=socket.gethostname()[:255],
                pid=os.getpid(),
                heartbeat_at=utcnow(),
            )
        )
        session.expunge(run)
        return run


def run_queued(engine: Engine, settings: Settings) -> int:
    """Run every queued import, oldest first; returns how many ran. In ``ssr-console worker``,
    as the operator who queued each (their permissions hold now, not only when they asked)."""
    count = 0
    while (run := _claim(engine)) is not None:
        assert run.id is not None
        count += 1
        try:
            _run(engine, settings, run)
        except ImportStopped as stopped:  # the run is marked failed; its counts are kept
            log.warning("%s", stopped)
        except ConsoleError as refused:  # refused before it began (an operator disabled...)
            _refuse(engine, run.id, str(refused))
    return count


def _run(engine: Engine, settings: Settings, run: ImportRun) -> None:
    assert run.id is not None
    request = json.loads(run.request or "{}")
    operator = operators.resolve(engine, run.operator)
    options = IntakeOptions.from_request(settings, request)
    if request.get("api"):
        asyncio.run(_from_api(engine, settings, operator, options, run.id))
    else:
        importer.import_paths(
            engine, settings, request.get("paths", []), operator, options, run_id=run.id
        )


async def _from_api(
    engine: Engine, settings: Settings, operator: Operator, options: IntakeOptions, run_id: int
) -> None:
    url = toms.api_url(settings)
    if url is None:
        raise InvalidInput("No TOMS API is configured: set [toms] url")
    username, secret = credentials.api_credential(engine, operator.lea_id, vault.load(settings))
    hosts = toms.download_hosts(settings)
    async with TomsClient(
        url, username, secret, download_hosts=hosts, deadline=toms.request_deadline(settings)
    ) as client:
        await importer.import_from_api(
            engine, settings, client, operator, options=options, run_id=run_id
        )


def _refuse(engine: Engine, run_id: int, reason: str) -> None:
    """A run that could not begin: failed, with the sentence, for the screen to show."""
    with session_scope(engine) as session:
        run = session.get(ImportRun, run_id)
        assert run is not None
        run.status, run.finished_at = RunStatus.FAILED.value, utcnow()
        session.add(run)
        audit.record(
            session,
            audit.SYSTEM_ACTOR,
            "import.run",
            f"import_run:{run_id}",
            {"status": RunStatus.FAILED.value, "error": reason[:300]},
            lea_id=run.lea_id,
        )
    log.warning("import run %s not started: %s", run_id, reason)
