"""Packaging: AES-256 (R=6) encryption checked by qpdf and pdftotext, passphrases, all-or-nothing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pikepdf
import pytest
from reportlab.pdfgen import canvas

from services.delivery import packaging
from services.delivery.packaging import PackagingError


def make_pdf(path: Path, text: str = "SSID 1234567890") -> Path:
    page = canvas.Canvas(str(path))
    page.drawString(72, 700, text)
    page.save()
    return path


def test_passphrases_are_typeable_strong_and_short_enough_for_every_reader() -> None:
    words = set(packaging.word_list())
    assert len(words) == 2048
    phrases = {packaging.passphrase() for _ in range(500)}
    assert len(phrases) == 500
    for phrase in phrases:
        parts = phrase.split("-")
        assert len(parts) == 6 and set(parts) <= words
        assert len(phrase) <= packaging.MAX_PASSWORD_LENGTH and phrase.isascii()
    assert packaging.passphrase_bits() >= 60


def test_encrypted_pdf_is_aes256_r6_and_opens_only_with_the_password(tmp_path: Path) -> None:
    source = make_pdf(tmp_path / "in.pdf")
    password = packaging.passphrase()
    second = make_pdf(tmp_path / "in2.pdf", "SSID 2345678901")
    result = packaging.package([source, second], tmp_path / "out.pdf", password)
    assert result.pages == 2
    shown = subprocess.run(
        ["qpdf", f"--password={password}", "--show-encryption", str(tmp_path / "out.pdf")],
        capture_output=True,
        text=True,
    )
    assert "R = 6" in shown.stdout and "AESv3" in shown.stdout
    assert "Supplied password is user password" in shown.stdout  # the owner password differs
    text = subprocess.run(
        ["pdftotext", "-upw", password, str(tmp_path / "out.pdf"), "-"],
        capture_output=True,
        text=True,
    )
    assert "1234567890" in text.stdout and "2345678901" in text.stdout
    locked = subprocess.run(["pdftotext", str(tmp_path / "out.pdf"), "-"], capture_output=True)
    assert locked.returncode != 0
    with pytest.raises(pikepdf.PasswordError):
        pikepdf.open(tmp_path / "out.pdf", password="wrong-words-here")


def test_verify_refuses_a_pdf_that_opens_without_a_password(tmp_path: Path) -> None:
    plain = make_pdf(tmp_path / "plain.pdf")
    with pytest.raises(PackagingError, match="opens without a password"):
        packaging.verify(plain, "any", [b""])


def test_verify_checks_the_password_the_cipher_and_every_page(tmp_path: Path) -> None:
    """verify derives the key itself (not with the qpdf that wrote the file) and reads every page."""
    sources = [make_pdf(tmp_path / "a.pdf"), make_pdf(tmp_path / "b.pdf", "SSID 2345678901")]
    password = packaging.passphrase()
    out = tmp_path / "family.pdf"
    packaging.package(sources, out, password)
    with pikepdf.open(sources[0]) as first, pikepdf.open(sources[1]) as second:
        contents = [packaging.page_content(first.pages[0]), packaging.page_content(second.pages[0])]
    assert b"1234567890" in contents[0]
    assert packaging.verify(out, password, contents) == 2
    with pytest.raises(PackagingError, match="does not open with its password"):
        packaging.verify(out, password[:-1], contents)
    with pytest.raises(PackagingError, match="page 2 does not read back"):
        packaging.verify(out, password, [contents[0], contents[0]])
    with pytest.raises(PackagingError, match="has 2 pages instead of the SSRs' 1"):
        packaging.verify(out, password, contents[:1])
    weak = tmp_path / "weak.pdf"
    with pikepdf.open(sources[0]) as pdf:
        pdf.save(weak, encryption=pikepdf.Encryption(user=password, owner="o" * 20, R=4, aes=True))
    with pytest.raises(PackagingError, match="not AES-256 encrypted"):
        packaging.verify(weak, password, contents[:1])


def test_a_damaged_source_fails_cleanly_and_leaves_nothing(tmp_path: Path) -> None:
    good = make_pdf(tmp_path / "good.pdf")
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"%PDF-1.7\nthis is not a pdf")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(PackagingError, match="bad.pdf could not be packaged"):
        packaging.package([good, bad], out / "family.pdf", packaging.passphrase())
    assert list(out.iterdir()) == [], "a partial package was left behind"


def test_a_missing_source_is_a_packaging_error(tmp_path: Path) -> None:
    with pytest.raises(PackagingError, match="gone.pdf"):
        packaging.package([tmp_path / "gone.pdf"], tmp_path / "o.pdf", packaging.passphrase())
    with pytest.raises(PackagingError, match="non-empty password"):
        packaging.package([tmp_path / "gone.pdf"], tmp_path / "o.pdf", "")
