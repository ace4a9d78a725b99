"""The configuration example in README.md is accepted by every section's parser.

Documentation that drifts from the code misleads the technology coordinator who installs the
console; this test reads the README's TOML block and hands it to the real config loader.
"""

from __future__ import annotations

import re
from pathlib import Path

from console import config
from console.scheduler import SchedulerConfig
from services.channels.batches import configured_rates
from services.channels.print_batch import configured_return_address
from services.core import toms
from services.credential.lifecycle import CredentialPolicy
from services.delivery.batches import PasswordPolicy
from services.delivery.mailer import MailConfig
from services.delivery.sms_gateway import SmsConfig
from services.delivery.worker import WorkerConfig
from services.intake.importer import IntakeOptions
from services.plan.advisor import Rates
from services.roster.sis_import import RosterOptions

README = Path(__file__).parents[2] / "README.md"


def test_readme_configuration_example_is_accepted(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    block = re.search(r"```toml\n(.*?)```", README.read_text(), re.S)
    assert block, "README.md lost its configuration example"
    secret = tmp_path / "smtp-password"
    secret.write_text("relay-secret\n")
    secret.chmod(0o600)
    monkeypatch.setenv("SSR_SMS_TOKEN", "gateway-token")
    path = tmp_path / "config.toml"
    path.write_text(block.group(1).replace("/etc/ssr-console/smtp-password", str(secret)))
    settings = config.load(path)
    assert MailConfig.from_settings(settings).password == "relay-secret"
    assert SmsConfig.from_settings(settings).token == "gateway-token"  # type: ignore[union-attr]
    assert settings.database_url.startswith("postgresql://")
    assert settings.operator == "caaspp"
    assert MailConfig.from_settings(settings).per_day == 10000
    assert configured_return_address(settings) == ("100 Main Street", "Sampletown, CA 95000")
    assert SmsConfig.from_settings(settings) is not None
    WorkerConfig.from_settings(settings)
    PasswordPolicy.from_settings(settings)
    assert CredentialPolicy.from_settings(settings) is not None
    assert SchedulerConfig.from_settings(settings).scan_minutes == 5
    IntakeOptions.from_settings(settings)
    assert isinstance(configured_rates(settings), Rates)
    assert settings.extra["ssh"]["port"] == 2222
    assert toms.download_hosts(settings) == ("ssr-storage.example.org",)
    roster = RosterOptions.from_settings(settings)
    assert roster.ssid_user_id_type == "SSID"
    assert roster.columns.home_language == "HomeLanguageCode" and roster.columns.ssid == "ssid"


def test_readme_configuration_lists_every_key() -> None:
    """Every key of the settings model appears in the README's example (commented out or set),
    under its own table, so the README stays the complete list a coordinator reads."""
    from services.core.settings import ConfigFile, Section

    block = re.search(r"```toml\n(.*?)```", README.read_text(), re.S)
    assert block
    tables: dict[str, str] = {"": ""}
    current = ""
    for line in block.group(1).splitlines():
        if header := re.match(r"\s*\[([a-z_.]+)\]", line):
            current = header.group(1)
            tables.setdefault(current, "")
        tables[current] += line + "\n"
    missing = []
    for name, info in ConfigFile.model_fields.items():
        kind = info.annotation
        sections = [k for k in getattr(kind, "__args__", (kind,)) if isinstance(k, type)]
        model = next((k for k in sections if issubclass(k, Section)), None)
        if model is None:
            if not re.search(rf"^#?\s*{name}\s*=", tables[""], re.M):
                missing.append(name)
            continue
        text = tables.get(name, "")
        for key in model.model_fields:
            wanted = rf"^\s*#?\s*{key}(_file|_env)?\s*="
            if not re.search(wanted, text, re.M) and not (
                key == "columns" and f"{name}.columns" in tables
            ):
                missing.append(f"[{name}] {key}")
    assert not missing, f"README's configuration example does not list: {', '.join(missing)}"
