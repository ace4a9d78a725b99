"""Hostile zips, read directly: each refusal carries the exact reason, and nothing is extracted."""

from __future__ import annotations

import io
import random
import stat
import zipfile
from pathlib import Path

import pytest

from services.intake.records import Reason
from services.intake.report_store import ReportStore
from services.intake.zip_safety import MiB, Refusal, ZipEntry, ZipLimits, read_zip


def zip_bytes(entries: dict[str, bytes], infos: list[zipfile.ZipInfo] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for entry_name, data in entries.items():
            zf.writestr(entry_name, data)
        for info, data in infos or []:
            zf.writestr(info, data)
    return buffer.getvalue()


def mark_encrypted(data: bytes, entry: str) -> bytes:
    """Set the 'encrypted' flag of one entry in both its local and central headers."""
    raw = bytearray(data)
    encoded = entry.encode()
    for signature, flag_at, name_at in ((b"PK\x03\x04", 6, 30), (b"PK\x01\x02", 8, 46)):
        start = 0
        while (start := raw.find(signature, start)) >= 0:
            if raw[start + name_at : start + name_at + len(encoded)] == encoded:
                raw[start + flag_at] |= 0x01
            start += 4
    return bytes(raw)


def symlink_info(entry: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(entry)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def outcomes(data: bytes, store: ReportStore, limits: ZipLimits | None = None) -> dict[str, str]:
    result = {}
    for item in read_zip(io.BytesIO(data), "in.zip", store.spool, limits):
        if isinstance(item, Refusal):
            result[item.source] = item.reason.value
        else:
            assert isinstance(item, ZipEntry)
            result[item.source] = f"ok:{item.stream.read()!r}"
    return result


def test_each_hostile_entry_is_refused_with_its_reason(tmp_path: Path) -> None:
    store = ReportStore(tmp_path / "store")
    data = zip_bytes(
        {
            "/etc/cron.d/evil.pdf": b"x",
            "C:\\evil.pdf": b"x",
            "a/../../evil.pdf": b"x",
            "locked.pdf": b"secret",
            "bomb.pdf": b"\0" * (8 * MiB),
            "fine.pdf": b"hello",
        },
        [(symlink_info("link.pdf"), b"/etc/passwd")],
    )
    data = mark_encrypted(data, "locked.pdf")
    assert outcomes(data, store) == {
        "in.zip!/etc/cron.d/evil.pdf": Reason.ABSOLUTE_PATH.value,
        "in.zip!C:\\evil.pdf": Reason.ABSOLUTE_PATH.value,
        "in.zip!a/../../evil.pdf": Reason.PARENT_PATH.value,
        "in.zip!locked.pdf": Reason.ENCRYPTED_ZIP.value,
        "in.zip!bomb.pdf": Reason.ZIP_BOMB.value,
        "in.zip!fine.pdf": "ok:b'hello'",
        "in.zip!link.pdf": Reason.SYMLINK.value,
    }
    assert not (tmp_path / "evil.pdf").exists()
    assert not list((tmp_path / "store" / ".spool").iterdir())


def test_bomb_is_stopped_by_real_bytes_not_headers(tmp_path: Path) -> None:
    """A central directory claiming a tiny size cannot make the reader take the rest on trust."""
    store = ReportStore(tmp_path / "store")
    data = bytearray(zip_bytes({"bomb.pdf": b"\0" * (8 * MiB)}))
    central = data.find(b"PK\x01\x02")
    data[central + 24 : central + 28] = (100).to_bytes(4, "little")  # uncompressed size: 100
    assert outcomes(bytes(data), store) == {"in.zip!bomb.pdf": Reason.CORRUPT_ZIP.value}
    honest = zip_bytes({"bomb.pdf": b"\0" * (8 * MiB)})
    limits = ZipLimits(max_ratio=10_000, max_entry_bytes=2 * MiB)
    assert outcomes(honest, store, limits) == {"in.zip!bomb.pdf": Reason.ENTRY_TOO_LARGE.value}


def test_total_size_limit_stops_the_archive(tmp_path: Path) -> None:
    store = ReportStore(tmp_path / "store")
    blob = bytes(range(256)) * 4096  # 1 MiB, incompressible enough
    data = zip_bytes({"a.pdf": blob, "b.pdf": blob, "c.pdf": blob, "d.pdf": blob})
    result = outcomes(data, store, ZipLimits(max_total_bytes=int(1.5 * MiB), max_ratio=10_000))
    assert result["in.zip!a.pdf"].startswith("ok:")
    assert result["in.zip!b.pdf"] == Reason.TOTAL_TOO_LARGE.value
    assert result["in.zip"] == Reason.TOTAL_TOO_LARGE.value  # "2 further entries not imported"
    assert "in.zip!c.pdf" not in result


def test_nested_zips_and_depth_limit(tmp_path: Path) -> None:
    store = ReportStore(tmp_path / "store")
    level3 = zip_bytes({"deep.pdf": b"3"})
    level2 = zip_bytes({"l3.zip": level3, "two.pdf": b"2"})
    level1 = zip_bytes({"l2.zip": level2, "one.pdf": b"1", "broken.zip": b"not a zip"})
    assert outcomes(level1, store, ZipLimits(max_depth=2)) == {
        "in.zip!l2.zip!l3.zip": Reason.NESTED_TOO_DEEP.value,
        "in.zip!l2.zip!two.pdf": "ok:b'2'",
        "in.zip!one.pdf": "ok:b'1'",
        "in.zip!broken.zip": Reason.CORRUPT_ZIP.value,
    }


def test_not_a_zip(tmp_path: Path) -> None:
    store = ReportStore(tmp_path / "store")
    assert outcomes(b"PK\x03\x04 truncated", store) == {"in.zip": Reason.CORRUPT_ZIP.value}


def test_large_entries_spool_inside_the_store_only(tmp_path: Path) -> None:
    store = ReportStore(tmp_path / "store")
    blob = random.Random(1).randbytes(2 * MiB)  # incompressible, over the 1 MiB memory limit
    data = zip_bytes({"big.pdf": blob})
    items = read_zip(io.BytesIO(data), "in.zip", store.spool, ZipLimits(memory_bytes=MiB))
    entry = next(items)
    assert isinstance(entry, ZipEntry) and entry.size == len(blob)
    assert entry.stream.read() == blob
    assert list(items) == []
    assert {p.name for p in tmp_path.iterdir()} == {"store"}
    assert stat.S_IMODE((tmp_path / "store" / ".spool").stat().st_mode) == 0o700


def test_entry_count_limit(tmp_path: Path) -> None:
    store = ReportStore(tmp_path / "store")
    data = zip_bytes({f"{n}.pdf": b"x" for n in range(5)})
    assert outcomes(data, store, ZipLimits(max_entries=4)) == {
        "in.zip": Reason.TOTAL_TOO_LARGE.value
    }


class _Sink(io.RawIOBase):
    """A spool that keeps nothing and counts what was written to it."""

    def __init__(self) -> None:
        self.written = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.written += len(data)
        return len(data)


def lying_bomb(path: Path, inflated: int, claimed_compressed: int) -> int:
    """A zip of one entry that inflates to ``inflated`` zero bytes, whose headers tell the truth
    about that size but claim ``claimed_compressed`` compressed bytes (the real stream is about a
    thousand times smaller): the header ratio looks harmless. Written streaming; returns its size."""
    import struct
    import zlib

    squeeze, crc, block = zlib.compressobj(9, zlib.DEFLATED, -15), 0, bytes(MiB)
    name = b"grade5.pdf"
    with path.open("wb") as out:
        out.write(b"\0" * (30 + len(name)))  # the local header, written once sizes are known
        for _ in range(inflated // MiB):
            crc = zlib.crc32(block, crc)
            out.write(squeeze.compress(block))
        out.write(squeeze.flush())
        fields = (20, 0, 8, 0, 0, crc, claimed_compressed, inflated, len(name), 0)
        central_at = out.tell()
        made_by, after_name = 20, (len(name), 0, 0, 0, 0, 0, 0)  # no extra, comment; offset 0
        out.write(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", made_by, *fields[:8], *after_name))
        out.write(name)
        end = out.tell()
        out.write(
            struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, end - central_at, central_at, 0)
        )
        out.seek(0)
        out.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", *fields) + name)
        return out.seek(0, 2)


def test_a_bomb_whose_headers_lie_about_its_compressed_size_is_refused_early(
    tmp_path: Path,
) -> None:
    """About 1 MB of zip inflating to 1 GB, its headers claiming 20 MB compressed (50 times: a
    ratio that passes): refused by the bytes really read and inflated, after a few MiB, with
    memory flat; the 1 GB is never written anywhere."""
    import tracemalloc

    gigabyte = 1024 * MiB - MiB  # just under the default 1 GiB entry limit
    path = tmp_path / "bomb.zip"
    size = lying_bomb(path, gigabyte, claimed_compressed=20 * MiB)
    assert size < 3 * MiB
    spools: list[_Sink] = []

    def spool(_memory: int) -> _Sink:
        spools.append(_Sink())
        return spools[-1]

    tracemalloc.start()
    try:
        found = list(read_zip(str(path), "bomb.zip", spool))  # type: ignore[arg-type]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [(r.source, r.reason) for r in found if isinstance(r, Refusal)] == [
        ("bomb.zip!grade5.pdf", Reason.ZIP_BOMB)
    ]
    assert sum(s.written for s in spools) < 16 * MiB  # refused early: not 1 GB, nor 200 MB
    assert peak < 8 * MiB  # flat: a few read steps, whatever the zip expands to


def many_members(path: Path, count: int) -> None:
    """A zip of ``count`` tiny stored members (zip64 end records past 65,535 of them)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for number in range(count):
            zf.writestr(f"grade{number % 9 + 3}/{number:010d}_CAASPP_SB_2026_en.pdf", b"%PDF-")


@pytest.mark.slow(minutes=2)
def test_a_zip_of_100000_members_is_read_with_flat_memory(tmp_path: Path) -> None:
    """The central directory is read one record at a time (zipfile.ZipFile would hold all
    100,000 records, about 65 MB), so memory stays the same whatever the count."""
    import tracemalloc

    path = tmp_path / "district.zip"
    many_members(path, 100_000)
    store = ReportStore(tmp_path / "store")
    tracemalloc.start()
    try:
        seen = 0
        for item in read_zip(str(path), "district.zip", store.spool):  # type: ignore[arg-type]
            assert isinstance(item, ZipEntry) and item.stream.read() == b"%PDF-"
            seen += 1
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seen == 100_000
    assert peak < 4 * MiB
