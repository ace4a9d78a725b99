"""Print locally (option C) on the demo LEA, read back with poppler (pdfinfo, pdftotext, pdffonts).

Checks the order of families, cover pages with the address inside the #10 window, the SSRs that
follow each cover, page counts and ranges against the manifest, split files, the families left
without an address, Chinese and Vietnamese notes with embedded fonts, and refusals.
"""

from __future__ import annotations

import csv
import re
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
from reportlab.pdfbase import pdfmetrics
from sqlalchemy import update
from sqlmodel import Session, col, select

from services.channels import batches as channel_batches
from services.channels import cover_sheet, print_batch
from services.channels.batches import ChannelItem, ChannelItemState
from services.channels.print_batch import Handling, Order, PrintOptions
from services.core.errors import ConsoleError, InvalidInput, PermissionDenied
from services.delivery.ledger import BatchStatus
from services.plan import coverage
from services.roster.tables import Guardian, School, Student, StudentGuardian
from tests.channel_world import World, pdf_pages, pdftotext, world

INCH = 72


@pytest.fixture
def demo(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> World:
    return world(tmp_path_factory.getbasetemp(), tmp_path)


def families(w: World) -> dict[int, list[Student]]:
    """Each family (primary guardian, lowest id) and its students, computed here in Python."""
    with Session(w.engine) as session:
        links = session.exec(select(StudentGuardian)).all()
        students = {s.id: s for s in session.exec(select(Student)).all()}
    chosen: dict[int, int] = {}
    for link in sorted(links, key=lambda k: (not k.is_primary, k.guardian_id)):
        chosen.setdefault(link.student_id, link.guardian_id)
    out: dict[int, list[Student]] = {}
    for sid, gid in chosen.items():
        out.setdefault(gid, []).append(students[sid])
    return out


def guardians(w: World) -> dict[int, Guardian]:
    with Session(w.engine) as session:
        return {g.id: g for g in session.exec(select(Guardian)).all()}  # type: ignore[misc]


def set_guardian(w: World, gid: int, **values: object) -> None:
    with Session(w.engine) as session:
        session.execute(update(Guardian).where(col(Guardian.id) == gid).values(**values))
        session.commit()


def manifest(result: print_batch.PrintResult) -> list[dict[str, str]]:
    assert result.manifest is not None
    with result.manifest.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def flat(text: str) -> str:
    return " ".join(text.split())


def test_mail_batch_in_school_order_with_covers_addresses_and_split_files(demo: World) -> None:
    w, out = demo, demo.folder / "print"
    family = families(w)
    ids = sorted(family)
    no_address = ids[3]
    set_guardian(w, no_address, address_line1=None)
    operator = w.operator()
    batch = print_batch.create(
        w.engine,
        operator,
        name="Spring mailing",
        who=coverage.Who.ALL,
        options=PrintOptions(split_mb=1),
    )
    result = print_batch.run(w.engine, operator, batch.id, out, w.store)
    rows = manifest(result)
    people = guardians(w)
    with Session(w.engine) as session:
        school_names = {s.id: s.name for s in session.exec(select(School)).all()}

    # Every family is in the manifest, in school / grade / family-name order.
    def key(gid: int) -> tuple[object, ...]:
        kids = family[gid]
        g = people[gid]
        return (min(school_names[k.school_id] for k in kids), min(k.grade for k in kids),
                g.last_name, g.first_name, gid)  # fmt: skip

    assert [int(r["family"]) for r in rows] == sorted(family, key=key)
    # The family without an address is listed, not dropped, and not covered.
    skipped = [r for r in rows if r["status"] != "printed"]
    assert [(int(r["family"]), r["status"], r["file"]) for r in skipped] == [
        (no_address, "no usable address", "")
    ]
    assert result.not_printed == 1 and result.printed == len(family) - 1

    # Split files: several, each under the limit plus one family, page ranges contiguous.
    assert len(result.files) >= 2
    by_file: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        if r["file"]:
            by_file.setdefault(r["file"], []).append(r)
    assert sorted(by_file) == sorted(p.name for p in result.files)
    for name, printed in by_file.items():
        expected_first = 1
        for r in printed:
            assert int(r["first_page"]) == expected_first
            assert int(r["last_page"]) - int(r["first_page"]) + 1 == int(r["pages"])
            last = int(r["last_page"])
            expected_first = last + 1 + last % 2  # a blank page makes an odd family even
        assert pdf_pages(out / name) == expected_first - 1

    # Each cover shows the guardian's address; the pages after it are the family's SSRs, in order.
    for r in rows:
        if not r["file"]:
            continue
        path, first, last = out / r["file"], int(r["first_page"]), int(r["last_page"])
        g = people[int(r["family"])]
        cover = pdftotext(path, first)
        for line in (
            f"{g.first_name} {g.last_name}",
            g.address_line1,
            f"{g.city}, CA {g.zip_code}",
        ):
            assert line in cover
        assert f"family {g.id}" in cover
        seen = [
            m.group(1)
            for page in range(first + 1, last + 1)
            for m in re.finditer(r"SSID: (\d{10})", pdftotext(path, page))
        ]
        ssids = r["ssids"].split()
        assert sorted(set(seen)) == ssids and seen == sorted(seen)
        assert ssids == sorted(k.ssid for k in family[g.id])

    # The address sits inside a #10 window (4 1/2" x 1 1/8", 7/8" from the left, tri-fold).
    first_row = next(r for r in rows if r["file"])
    g = people[int(first_row["family"])]
    words = _words(out / first_row["file"], int(first_row["first_page"]))
    address_words = [w for w in words if w[4] in {*g.address_line1.split(), g.zip_code}]
    assert address_words
    for x0, y0, x1, y1, _ in address_words:
        assert x0 >= 0.875 * INCH and x1 <= 5.375 * INCH
        assert y0 >= 2.04 * INCH and y1 <= 3.17 * INCH

    # Figures, states and cost agree with the files.
    assert result.pages == sum(int(r["pages"]) for r in rows)
    assert result.cost == Decimal("0.10") * result.pages + Decimal("0.83") * result.printed
    states = channel_batches.progress(w.engine, operator, batch.id)
    assert states[ChannelItemState.NO_ADDRESS] == len(family[no_address])
    assert states[ChannelItemState.PRINTED] == sum(len(v) for v in family.values()) - len(
        family[no_address]
    )
    final = channel_batches.get(w.engine, operator, batch.id)
    assert final.status is BatchStatus.FINISHED and final.pages == result.pages
    assert final.cost_cents == int(result.cost * 100)
    listed = coverage.uncovered(w.engine, operator)
    assert {u.guardian_id for u in listed} == {no_address}
    assert {u.why for u in listed} == {coverage.Why.NO_ADDRESS}


def _words(path: Path, page: int) -> list[tuple[float, float, float, float, str]]:
    """Words of one page with their boxes (points from the top-left), as pdftotext -bbox reads."""
    html = subprocess.run(
        ["pdftotext", "-bbox", "-f", str(page), "-l", str(page), str(path), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    pattern = r'xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>'
    return [
        (float(a), float(b), float(c), float(d), word)
        for a, b, c, d, word in re.findall(pattern, html)
    ]


def _fonts(path: Path, page: int) -> list[tuple[str, str]]:
    """(font name, embedded yes/no) for the fonts one page uses, as pdffonts reads them."""
    listing = subprocess.run(
        ["pdffonts", "-f", str(page), "-l", str(page), str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()[2:]
    return [(line.split()[0], line.split()[-5]) for line in listing if line.strip()]


@pytest.mark.parametrize(
    ("language", "font", "joiner"),
    [
        ("zh_Hans", "WenQuanYi", ""),
        ("zh_Hant", "WenQuanYi", ""),
        ("ko", "WenQuanYi", " "),
        ("vi", "DejaVuSans", " "),
    ],
)
def test_chinese_korean_and_vietnamese_notes_extract_as_written(
    demo: World, language: str, font: str, joiner: str
) -> None:
    w = demo
    gid = sorted(families(w))[0]
    set_guardian(w, gid, preferred_language=language)
    operator = w.operator()
    batch = print_batch.create(
        w.engine,
        operator,
        name=f"{language} family",
        who=coverage.Who.ALL,
        exclude=[g for g in families(w) if g != gid],
    )
    result = print_batch.run(w.engine, operator, batch.id, w.folder / "print", w.store)
    (row,) = manifest(result)
    assert row["language"] == language and row["status"] == "printed"
    path = w.folder / "print" / row["file"]
    text = pdftotext(path, 1)
    note = cover_sheet.note_text(language, 2026)
    assert joiner.join(note.split()) in joiner.join(text.split())
    assert cover_sheet.text(language, cover_sheet.HEADING) in text
    assert "grade" not in text and "report page" not in text  # the review found these in English
    fonts = _fonts(path, 1)
    assert fonts and all(embedded == "yes" for _, embedded in fonts)
    assert any(font in name for name, _ in fonts)
    # No glyph box: every character of the note has a glyph in the font that drew it.
    drawn = cover_sheet.script(language).font
    glyphs = pdfmetrics.getFont(drawn).face.charToGlyph
    assert [ch for ch in note if ch != " " and ord(ch) not in glyphs] == []


def test_zip_order_for_bulk_mail_and_hand_out_prints_families_without_address(
    demo: World,
) -> None:
    w = demo
    operator = w.operator()
    gid = sorted(families(w))[1]
    set_guardian(w, gid, zip_code=None)
    by_zip = print_batch.create(
        w.engine, operator, name="Bulk mail", who=coverage.Who.ALL,
        options=PrintOptions(order=Order.ZIP),
    )  # fmt: skip
    rows = manifest(print_batch.run(w.engine, operator, by_zip.id, w.folder / "zip", w.store))
    people = guardians(w)
    zips = [people[int(r["family"])].zip_code for r in rows if r["status"] == "printed"]
    assert zips == sorted(zips)
    assert [int(r["family"]) for r in rows if r["status"] != "printed"] == [gid]

    # The family left out of the mailing is handed out at school instead.
    hand_out = print_batch.create(
        w.engine, operator, name="Hand out", who=coverage.Who.ALL,
        options=PrintOptions(handling=Handling.HAND_OUT),
    )  # fmt: skip
    result = print_batch.run(w.engine, operator, hand_out.id, w.folder / "hand", w.store)
    (row,) = manifest(result)
    assert int(row["family"]) == gid and row["status"] == "printed"
    language = cover_sheet.note_language(people[gid].preferred_language)
    words = cover_sheet.text(language, cover_sheet.HAND_OUT)
    assert words in pdftotext(w.folder / "hand" / row["file"], 1)
    assert result.cost == Decimal("0.10") * result.pages  # no envelope, no postage
    assert coverage.summary(w.engine, operator).uncovered == 0


def test_refusals_leave_nothing_behind(demo: World) -> None:
    w = demo
    operator = w.operator()
    with pytest.raises(InvalidInput, match="1 to 2,000 MB"):
        PrintOptions(split_mb=0)
    with pytest.raises(InvalidInput, match="ZIP order is for mailing"):
        PrintOptions(order=Order.ZIP, handling=Handling.HAND_OUT)
    with pytest.raises(InvalidInput, match="no distribution plan"):
        print_batch.create(w.engine, operator, name="Plan")
    with pytest.raises(InvalidInput, match="needs a name"):
        print_batch.create(w.engine, operator, name="  ", who=coverage.Who.ALL)
    with pytest.raises(PermissionDenied):
        print_batch.create(w.engine, w.operator("helpdesk"), name="x", who=coverage.Who.ALL)
    with Session(w.engine) as session:
        assert session.exec(select(ChannelItem)).first() is None
    batch = print_batch.create(w.engine, operator, name="Once", who=coverage.Who.ALL)
    blocked = w.folder / "not-a-folder"
    blocked.write_text("a file where the print folder should be")
    with pytest.raises(ConsoleError, match="Could not write the print files"):
        print_batch.run(w.engine, operator, batch.id, blocked, w.store)
    assert channel_batches.get(w.engine, operator, batch.id).status is BatchStatus.RUNNING
    print_batch.run(w.engine, operator, batch.id, w.folder / "once", w.store)
    with pytest.raises(InvalidInput, match="finished, not waiting to print"):
        print_batch.run(w.engine, operator, batch.id, w.folder / "once", w.store)
    with pytest.raises(InvalidInput, match="No student with an SSR"):
        print_batch.create(w.engine, operator, name="Again", who=coverage.Who.ALL)


def test_a_run_that_stops_part_way_resumes_without_printing_twice(
    demo: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    w, out = demo, demo.folder / "print"
    operator = w.operator()
    batch = print_batch.create(
        w.engine, operator, name="Crashy", who=coverage.Who.ALL,
        options=PrintOptions(split_mb=1, handling=Handling.HAND_OUT),
    )  # fmt: skip
    real = cover_sheet.render
    calls = {"n": 0}

    def failing(covers: list[cover_sheet.Cover]) -> bytes:
        calls["n"] += 1
        if calls["n"] > 6:  # after 18 families, a file or more saved
            raise RuntimeError("the machine went away")
        return real(covers)

    monkeypatch.setattr(print_batch, "COVER_CHUNK", 3)
    monkeypatch.setattr(cover_sheet, "render", failing)
    with pytest.raises(RuntimeError):
        print_batch.run(w.engine, operator, batch.id, out, w.store)
    monkeypatch.setattr(cover_sheet, "render", real)
    saved = sorted(p.name for p in out.glob("print-*.pdf"))
    first_lines = manifest_lines(out / f"print-{batch.id}-manifest.csv")
    states = channel_batches.progress(w.engine, operator, batch.id)
    # Only the families of saved files are done, and only they are in the manifest so far.
    done_families = {int(r["family"]) for r in first_lines}
    assert saved and {r["file"] for r in first_lines} == set(saved)
    family = families(w)
    assert states[ChannelItemState.PRINTED] == sum(len(family[g]) for g in done_families)
    assert states.get(ChannelItemState.PENDING, 0) > 0

    result = print_batch.run(w.engine, operator, batch.id, out, w.store)
    lines = manifest_lines(out / f"print-{batch.id}-manifest.csv")
    listed = [int(r["family"]) for r in lines]
    assert len(listed) == len(set(listed)) == len(family)
    assert done_families.isdisjoint(int(r["family"]) for r in lines[len(first_lines) :])
    assert not {p.name for p in result.files} & set(saved)  # numbered after the first run
    for name in {r["file"] for r in lines}:
        last = max(int(r["last_page"]) for r in lines if r["file"] == name)
        assert pdf_pages(out / name) == last + last % 2  # the last family padded to a sheet
    final = channel_batches.get(w.engine, operator, batch.id)
    assert final.status is BatchStatus.FINISHED
    assert final.pages == sum(int(r["pages"]) for r in lines)
    assert set(channel_batches.progress(w.engine, operator, batch.id)) == {ChannelItemState.PRINTED}


def manifest_lines(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_printing_is_not_delivery_until_the_mailing_day_is_confirmed(demo: World) -> None:
    from services.core.columns import utcnow
    from services.core.working_days import WorkingCalendar
    from services.reports import deadlines

    w = demo
    operator = w.operator()

    def undelivered() -> int:
        found = deadlines.by_program(w.engine, operator, WorkingCalendar(), utcnow().date())
        return sum(p.undelivered for p in found)

    before = undelivered()
    batch = print_batch.create(w.engine, operator, name="Mail", who=coverage.Who.ALL)
    result = print_batch.run(w.engine, operator, batch.id, w.folder / "print", w.store)  # type: ignore[arg-type]
    assert result.printed and undelivered() == before, "printed is not delivered"
    moved = channel_batches.confirm_delivered(w.engine, operator, batch.id, utcnow().date())  # type: ignore[arg-type]
    assert moved == channel_batches.progress(w.engine, operator, batch.id)[ChannelItemState.DONE]  # type: ignore[arg-type]
    assert undelivered() < before


def test_each_family_starts_on_a_new_sheet_for_duplex_printers(demo: World) -> None:
    """A blank page follows any family whose cover and reports make an odd count, so a duplex
    printer never puts one family's cover on the back of another's report (qpdf and pdftotext
    read the files back)."""
    w = demo
    operator = w.operator()
    batch = print_batch.create(
        w.engine, operator, name="Hand out", who=coverage.Who.ALL,
        options=PrintOptions(handling=Handling.HAND_OUT),
    )  # fmt: skip
    result = print_batch.run(w.engine, operator, batch.id, w.folder / "print", w.store)  # type: ignore[arg-type]
    rows = [r for r in manifest(result) if r["status"] == "printed"]
    assert any(int(r["pages"]) % 2 for r in rows), "the demo has a family with an odd count"
    for path in result.files:
        count = subprocess.run(
            ["qpdf", "--show-npages", str(path)], capture_output=True, text=True, check=True
        )
        assert int(count.stdout) % 2 == 0, path
        mine = [r for r in rows if r["file"] == path.name]
        covers = {int(r["first_page"]) for r in mine}
        assert all(page % 2 == 1 for page in covers), "a cover on the back of a sheet"
        for r in mine:
            last = int(r["last_page"])
            if last % 2:  # padded: the next page is blank, and the next family's cover follows
                assert pdftotext(path, last + 1).strip() == ""
                assert last + 2 in covers or last + 1 == int(count.stdout)


def test_a_cover_is_wholly_in_the_familys_language_under_the_return_address(
    demo: World,
) -> None:
    w = demo
    gid = sorted(families(w))[0]
    set_guardian(w, gid, preferred_language="es")
    operator = w.operator()
    batch = print_batch.create(
        w.engine, operator, name="es", who=coverage.Who.ALL,
        exclude=[g for g in families(w) if g != gid],
        options=PrintOptions(handling=Handling.HAND_OUT),
    )  # fmt: skip
    settings = w.settings
    settings.extra["print"] = {"return_address": ["100 Main Street", "Sampletown, CA 95000"]}
    address = print_batch.configured_return_address(settings)
    result = print_batch.run(
        w.engine,
        operator,
        batch.id,
        w.folder / "print",
        w.store,
        return_address=address,  # type: ignore[arg-type]
    )
    (row,) = manifest(result)
    text = flat(pdftotext(w.folder / "print" / row["file"], 1))
    assert "100 Main Street" in text and "Sampletown, CA 95000" in text
    assert "Entregar en la escuela" in text and "grado" in text
    assert "1 página de informe" in text  # singular: ngettext, no "(s)"
    for english in ("Hand out at school", " grade ", "report page"):
        assert english not in text
    settings.extra["print"] = {"return_address": "100 Main Street"}
    with pytest.raises(InvalidInput, match="return_address"):
        print_batch.configured_return_address(settings)
