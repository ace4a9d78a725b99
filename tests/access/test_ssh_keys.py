"""The authorized-keys list: which key signs in as which operator, and clear refusals of bad lines."""

from __future__ import annotations

import base64
import struct
from pathlib import Path

import pytest

from services.access import ssh_keys
from services.core.errors import InvalidInput


def blob(key_type: str = "ssh-ed25519", body: bytes = b"k" * 32) -> bytes:
    name = key_type.encode()
    return struct.pack(">I", len(name)) + name + struct.pack(">I", len(body)) + body


def encoded(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_operator_from_option_or_comment() -> None:
    one, two = blob(body=b"1" * 32), blob(body=b"2" * 32)
    keys = ssh_keys.parse(
        "# coordinators\n"
        f'operator="caaspp",restrict,from="10.0.0.1,10.0.0.2" ssh-ed25519 {encoded(one)} maria@pc\n'
        "\n"
        f"ssh-ed25519 {encoded(two)} helpdesk laptop\n"
    )
    assert len(keys) == 2
    assert keys.operator_for(one) == "caaspp"
    assert keys.operator_for(two) == "helpdesk"
    assert keys.operator_for(blob(body=b"3" * 32)) is None
    assert keys.operators == {"caaspp", "helpdesk"}


def test_fingerprint_matches_openssh(tmp_path: Path) -> None:
    import subprocess

    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")])
    line = (tmp_path / "k.pub").read_text().strip()
    expected = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(tmp_path / "k.pub")],
        capture_output=True,
        text=True,
    ).stdout.split()[1]
    key = ssh_keys.parse_line(f'operator="caaspp" {line}')
    assert key.fingerprint == expected


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (f"ssh-ed25519 {encoded(blob())}", "no operator named"),
        (f"ssh-dss {encoded(blob('ssh-dss'))} caaspp", "unsupported key type"),
        ("ssh-ed25519 not*base64 caaspp", "not valid base64"),
        (f"ssh-ed25519 {encoded(blob('ssh-rsa'))} caaspp", "does not match its type"),
        (f'operator="caa spp" ssh-ed25519 {encoded(blob())}', "not a valid operator"),
        (f'operator="caaspp ssh-ed25519 {encoded(blob())}', "no closing double quote"),
        (f"operator=caaspp ssh-ed25519 {encoded(blob())}", "cannot read the options"),
        ("restrict", "expected a key type"),
    ],
)
def test_bad_line_is_refused_with_its_number(line: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        ssh_keys.parse(f"# header\n{line}\n", source="keys.txt")
    assert "keys.txt, line 2" in str(caught.value)


def test_a_key_may_name_one_operator_only() -> None:
    key = encoded(blob())
    with pytest.raises(InvalidInput, match="already listed on line 1"):
        ssh_keys.parse(f"ssh-ed25519 {key} caaspp\nssh-ed25519 {key} helpdesk\n")


def test_missing_file_explains_the_format(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match='operator="USERNAME"'):
        ssh_keys.load(tmp_path / "absent")
