"""`ssr-console import`: progress, refusals with reasons, and a summary per school and grade."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from console.cli import main
from services.core.settings import Settings
from tests.intake_fixtures import LEA_CDS, SSIDS, STRANGER, name, seed_roster, ssr


def test_import_command_prints_summary_and_refusals(
    engine: Engine, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_roster(engine)
    inbox = settings.data_dir / "inbox"  # the default intake folder
    inbox.mkdir(parents=True)
    for ssid in (SSIDS[0], SSIDS[3], STRANGER):
        (inbox / name(ssid)).write_bytes(ssr(ssid))
    base = ["--database-url", settings.database_url, "--data-dir", str(settings.data_dir)]
    assert main([*base, "import", str(inbox), "--lea", LEA_CDS]) == 0
    out, err = capsys.readouterr()
    assert "2 stored (0 new versions), 0 already stored, 1 exceptions" in out
    assert "Alder Elementary, grade 5: 1" in out and "Birch Middle, grade 8: 1" in out
    assert "refused 1: unknown_ssid" in out
    assert f"{name(STRANGER)}: SSID is not a known student" in err
    assert main([*base, "import", str(inbox / "nowhere")]) == 2
    assert "No such file or folder" in capsys.readouterr().err
    assert main([*base, "import", str(inbox), "--lea", "0000000"]) == 2
    assert "No LEA with CDS code 0000000" in capsys.readouterr().err
