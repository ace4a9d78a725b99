"""The session's Dovecot (a real IMAP server on loopback) for the bounce tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bounces.dovecot import DOVECOT, Dovecot, make_certificate


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def dovecot_server(
    tmp_path_factory: pytest.TempPathFactory, certificate: tuple[Path, Path]
) -> Iterator[Dovecot]:
    """One Dovecot for the session, with its throwaway configuration, stopped at the end."""
    if not DOVECOT.exists():
        pytest.fail("dovecot-imapd is not installed: run `make system-tools`")
    server = Dovecot(tmp_path_factory.mktemp("dovecot"), *certificate).start()
    yield server
    server.stop()


@pytest.fixture
def dovecot(dovecot_server: Dovecot) -> Dovecot:
    """The session's Dovecot with an empty mailbox."""
    dovecot_server.empty()
    return dovecot_server
