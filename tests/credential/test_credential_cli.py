"""``ssr-console credential`` and ``import --api`` as real processes, against TOMS-style servers on
loopback: the right secret (verified), a wrong one (refused with TOMS's answer), TOMS down
(unverified, then verified), and an API import that uses the recorded credential."""

from __future__ import annotations

import subprocess
import sys
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

from services.core import vault
from services.credential import lifecycle as credentials
from tests import credentials_world
from tests.credentials_world import TokenServer, free_port, token_url
from tests.intake.test_toms_api import SECRET, USERNAME, Toms, handler_for
from tests.intake_fixtures import LEA_CDS, SSIDS, seed_roster, ssr


def _cli(
    settings, config: Path, *args: str, secret: str | None = None
) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "-m",
        "console.cli",
        "--config",
        str(config),
        "--database-url",
        settings.database_url,
        "--data-dir",
        str(settings.data_dir),
        "--operator",
        "caaspp",
        *args,
    ]
    return subprocess.run(command, input=secret, capture_output=True, text=True, timeout=120)


def _config(tmp_path: Path, base_url: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[toms]\nurl = "{base_url}"\n')
    path.chmod(0o600)
    return path


def _record(settings, config, secret: str, *extra: str) -> subprocess.CompletedProcess:
    return _cli(
        settings,
        config,
        "credential",
        "record",
        "--username",
        USERNAME,
        "--secret-file",
        "-",
        *extra,
        secret=secret + "\n",
    )


def test_record_right_wrong_and_down_then_verify(engine, settings, tmp_path):
    world = credentials_world.build(engine)
    port = free_port()
    config = _config(tmp_path, token_url(port).removesuffix("/api/v1/token"))

    with TokenServer(port, accepted=(USERNAME, SECRET)) as toms:
        wrong = _record(settings, config, "Wrong0000Wrong0000XX")
        assert wrong.returncode == 1
        assert "TOMS refused this username and secret key: Refused (HTTP 401, invalid_client)" in (
            wrong.stderr
        )
        assert "Wrong0000" not in wrong.stdout + wrong.stderr
        assert toms.requests == 1
    assert credentials.status(engine, world.lea_id).credential_id is None

    down = _record(settings, config, SECRET, "--generated", "2026-11-20")  # nothing listens
    assert down.returncode == 0, down.stderr
    assert "Recorded UNVERIFIED" in down.stdout and "Expires 2027-11-20" in down.stdout
    assert credentials.status(engine, world.lea_id).verified_at is None

    with TokenServer(port, accepted=(USERNAME, SECRET)) as toms:
        verified = _cli(settings, config, "credential", "verify")
        assert verified.returncode == 0 and verified.stdout.startswith("Verified: Token issued")
        again = _record(settings, config, SECRET)  # a valid one is live: a reset is needed
        assert again.returncode == 1 and "coordinated reset" in again.stderr
        assert toms.requests == 1  # refused before TOMS was asked
    state = credentials.status(engine, world.lea_id)
    assert state.verified and f"{state.expires_at:%Y-%m-%d}" == "2027-11-20"
    status = _cli(settings, config, "credential", "status")
    assert "TOMS credential active" in status.stdout
    for run in (down, verified, wrong, again, status):
        assert SECRET not in run.stdout + run.stderr


def test_right_secret_is_verified_at_once(engine, settings, tmp_path):
    world = credentials_world.build(engine)
    with TokenServer(accepted=(USERNAME, SECRET)) as toms:
        config = _config(tmp_path, toms.url.removesuffix("/api/v1/token"))
        secret_file = tmp_path / "toms-secret"
        secret_file.write_text(SECRET + "\n")
        secret_file.chmod(0o600)
        done = _cli(
            settings,
            config,
            "credential",
            "record",
            "--username",
            USERNAME,
            "--secret-file",
            str(secret_file),
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Recorded and verified")
    assert credentials.api_credential(engine, world.lea_id, vault.load(settings)) == (
        USERNAME,
        SECRET,
    )


def test_import_api_without_secret_flags_uses_the_recorded_credential(engine, settings, tmp_path):
    seed_roster(engine)
    state = Toms({f"{ssid}.pdf": ssr(ssid) for ssid in SSIDS[:3]})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(state))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        config = _config(tmp_path, f"http://127.0.0.1:{server.server_address[1]}")
        from sqlmodel import select

        from services.access import operators
        from services.access.tables import Operator, Role
        from services.core.db import session_scope
        from services.roster.tables import LEA

        with session_scope(engine) as session:
            lea_id = session.exec(select(LEA.id).where(LEA.cds_code == LEA_CDS)).one()
            session.add(
                Operator(username="caaspp", display_name="Ana", role=Role.LEA_CAASPP, lea_id=lea_id)
            )
        assert operators.resolve(engine, "caaspp").lea_id == lea_id
        # TOMS answers the first token request 503: recorded unverified, still usable
        recorded = _record(settings, config, SECRET)
        assert "Recorded UNVERIFIED" in recorded.stdout, recorded.stderr
        done = _cli(settings, config, "import", "--api")
        assert done.returncode == 0, done.stderr
        assert "3 stored" in done.stdout and SECRET not in done.stdout + done.stderr
        assert state.tokens_issued >= 1
    finally:
        server.shutdown()
        server.server_close()


def test_the_scheduler_verifies_what_was_recorded_while_toms_was_down(engine, settings, tmp_path):
    world = credentials_world.build(engine)
    port = free_port()
    config = _config(tmp_path, token_url(port).removesuffix("/api/v1/token"))
    assert "Recorded UNVERIFIED" in _record(settings, config, SECRET).stdout
    with TokenServer(port, accepted=(USERNAME, SECRET)) as toms:
        scan = _cli(settings, config, "scheduler", "--once")
        assert scan.returncode == 0, scan.stderr
        assert toms.requests == 1
    state = credentials.status(engine, world.lea_id)
    assert state.verified and SECRET not in scan.stdout + scan.stderr
    [entry] = credentials.history(engine, world["caaspp"], world.lea_id)
    assert entry.verified_by == "scheduler"
