"""``ssr-console report coverage | status | at-risk | cost`` against the seeded demo LEA: figures that
follow the batches made from the command line, CSV files a spreadsheet cannot run, names made
harmless on the terminal, and the screens' permissions (issue 20)."""

from __future__ import annotations

import csv
import stat

from sqlmodel import Session, col, select, update

from services.roster.tables import Guardian, School
from tests.console.conftest import Cli


def _name_first_family(cli: Cli, last: str, first: str) -> None:
    with Session(cli.engine) as session:
        session.execute(update(Guardian).values(last_name=last, first_name=first))
        session.commit()


def test_reports_follow_the_batches(demo_cli: Cli) -> None:
    before = demo_cli("report", "coverage", "--json").json()
    assert before["students"] > 0 and before["uncovered"] == before["students"]
    assert before["complete"] is False and before["by_channel"]["B"] == 0
    assert before["translated"] == 0 and before["english_fallback"] >= 0
    assert demo_cli("report", "status", "--json").json()["total"]["uncovered"] > 0

    demo_cli("batch", "create", "--channel", "email", "--scope", "grade", "5").ok()
    with Session(demo_cli.engine) as session:
        school = session.exec(select(School.cds_code).order_by(col(School.cds_code))).first()
    assert school is not None
    demo_cli("batch", "create", "--channel", "paper", "--scope", "school", school).ok()

    after = demo_cli("report", "coverage", "--json").json()
    assert after["by_channel"]["B"] > 0 and after["by_channel"]["D"] > 0
    assert after["uncovered"] == before["students"] - after["once"] - after["several"]
    by_channel = demo_cli("report", "status", "--by", "channel", "--json").json()
    labels = {row["label"]: row for row in by_channel["rows"]}
    assert labels["B Secure electronic"]["on_channel"] > 0
    assert labels["No channel"]["uncovered"] > 0
    assert by_channel["total"]["units"] == sum(r["units"] for r in by_channel["rows"])
    for dimension in ("school", "grade", "language", "program"):
        assert demo_cli("report", "status", "--by", dimension, "--json").json()["rows"]

    costs = {c["channel"]: c for c in demo_cli("report", "cost", "--json").json()}
    assert costs["B"]["batches"] == 1 and costs["B"]["cost"] == "0"
    assert costs["D"]["batches"] == 1 and float(costs["D"]["cost"]) > 0
    assert "Total: $" in demo_cli("report", "cost").ok()

    risky = demo_cli("report", "at-risk", "--json").json()  # the demo's SSRs came in June
    assert len(risky) == by_channel["at_risk"] > 0
    assert {"ssid", "deadline", "state"} <= set(risky[0])
    assert "oldest receipt first" in demo_cli("report", "at-risk").ok()


def test_csv_files_are_private_and_never_formulas(demo_cli: Cli) -> None:
    _name_first_family(demo_cli, '=HYPERLINK("http://x")', "Ana")
    folder = demo_cli.settings.data_dir
    for command, name in (
        (("report", "coverage"), "uncovered.csv"),
        (("report", "status", "--by", "grade"), "status.csv"),
        (("report", "at-risk"), "risk.csv"),
        (("report", "cost"), "cost.csv"),
    ):
        ran = demo_cli(*command, "--csv", str(folder / name))
        assert "rows written to" in ran.err, ran.err
        path = folder / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        rows = list(csv.reader(path.read_text(encoding="utf-8-sig").splitlines()))
        assert len(rows) > 1
    uncovered = list(csv.reader((folder / "uncovered.csv").read_text("utf-8-sig").splitlines()))
    assert uncovered[0] == ["ssid", "school", "grade", "family", "why"]
    assert uncovered[1][3].startswith("'=HYPERLINK")


def test_report_refusals_and_hostile_names(sqlite_cli: Cli) -> None:
    run = sqlite_cli
    _name_first_family(run, "Ng\x1b]0;pwned\x07", "\u202eBo")
    shown = run("report", "coverage").ok()
    assert "\x1b" not in shown and "\u202e" not in shown and "Ng\\x1b]0;pwned" in shown
    run("report", "at-risk", operator="tech").refused(
        "A technology coordinator may not view students"
    )
    run("report", "status", operator="helpdesk").refused("may not view aggregate reports")
    assert "Uncovered (SSID" not in run("report", "coverage", operator="tech").ok()  # counts only
    run("report", "cost", "--csv", str(run.settings.data_dir / "cost.txt")).refused(
        "Export to a file ending in .csv"
    )
    run("report", "cost", "--csv", "/nonexistent/folder/cost.csv").refused("does not exist")
    run("report", "cost", "--by", "school").refused("unrecognized arguments", 2)
    run("report", "status", "--by", "county").refused("invalid choice", 2)
    run("report", "status", operator=None).refused("--operator NAME", 2)
