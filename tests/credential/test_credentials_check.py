"""Test connection against real sockets on loopback: accepted, refused, timeout, closed port, TLS."""

from __future__ import annotations

import socket

import pytest

from services.core.errors import InvalidInput
from services.credential import check as credential_check
from tests.credentials_world import TokenServer


@pytest.fixture
def token_server():
    with TokenServer() as server:
        yield server


def test_accepted_and_refused(token_server):
    token_server.accepted = ("ssr-1964733-abcd", "K" * 24)
    ok = credential_check.request_token(token_server.url, "ssr-1964733-abcd", "K" * 24)
    assert ok.ok and ok.status_code == 200 and "accepts" in ok.message
    refused = credential_check.request_token(token_server.url, "ssr-1964733-abcd", "W" * 24)
    assert not refused.ok and refused.status_code == 401 and refused.refused
    assert refused.message.startswith("Refused (HTTP 401, invalid_client)")


def test_wrong_path_is_an_unexpected_answer(token_server):
    url = token_server.url.replace("/api/v1/token", "/api/v2/token")
    result = credential_check.request_token(url, "u", "s" * 24)
    assert not result.ok and result.message == "Unexpected answer: HTTP 404, not_found"
    assert result.reached and not result.refused


def test_closed_port_is_connection_refused():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = credential_check.request_token(f"http://127.0.0.1:{port}/api/v1/token", "u", "s")
    assert not result.ok and result.message.startswith("Connection refused")
    assert not result.reached


def test_silent_server_times_out():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # connections complete in the backlog but nothing ever answers
        port = silent.getsockname()[1]
        result = credential_check.request_token(
            f"http://127.0.0.1:{port}/api/v1/token", "u", "s", timeout=0.3
        )
    assert not result.ok and "timeout" in result.message


def test_tls_to_a_plain_http_server_is_a_tls_failure(token_server):
    url = token_server.url.replace("http://", "https://")
    result = credential_check.request_token(url, "u", "s")
    assert not result.ok and result.message.startswith("TLS handshake failed")


def test_remote_plain_http_is_refused_before_sending_the_secret():
    with pytest.raises(InvalidInput, match="https"):
        credential_check.request_token("http://portal.example/api/v1/token", "u", "s")
