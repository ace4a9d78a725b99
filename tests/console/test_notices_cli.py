"""``ssr-console notices [--due]`` against the seeded demo LEA: empty before the scheduler has run,
then each coordinator's own deadline notices after ``scheduler --once`` (issue 20)."""

from __future__ import annotations

from tests.console.conftest import Cli


def test_the_inbox_shows_each_coordinators_own_notices(demo_cli: Cli) -> None:
    empty = demo_cli("notices", "--json").json()
    assert empty["scheduler"]["running"] is False and empty["inbox"] == []
    assert set(empty["counts"].values()) == {0}
    assert "Scheduler has never run" in demo_cli("notices").ok()

    # The demo's SSRs came in months ago: both programs' deadlines have passed. No relay runs
    # here, so the email of each notice fails and the notice stays in the inbox meanwhile.
    assert demo_cli("scheduler", "--once").code == 0
    mine = demo_cli("notices", "--json").json()
    deadlines = [n for n in mine["inbox"] if n["kind"] == "ssr_deadline"]
    assert deadlines and {n["recipient"] for n in mine["inbox"]} == {"caaspp"}
    assert deadlines[0]["program"] == "CAASPP" and deadlines[0]["pending"] > 0
    assert "CAASPP SSRs due" in deadlines[0]["about"] and deadlines[0]["read"] is False
    assert mine["counts"]["failed"] == len(mine["failures"]) > 0
    theirs = demo_cli("notices", "--json", operator="elpac").json()
    assert {n["program"] for n in theirs["inbox"] if n["kind"] == "ssr_deadline"} == {"ELPAC"}

    due = demo_cli("notices", "--due", "--json").json()
    assert set(due) == {"scheduler", "counts", "inbox", "upcoming"}
    assert [n["id"] for n in due["inbox"]] == [n["id"] for n in mine["inbox"]]  # all come due
    assert "Inbox: " in demo_cli("notices", "--due").ok()

    # the help desk has no reminders of its own; the tech coordinator watches every LEA's
    assert demo_cli("notices", "--json", operator="helpdesk").json()["inbox"] == []
    assert demo_cli("notices", "--json", operator="tech").json()["counts"] == mine["counts"]


def test_notices_refusals(sqlite_cli: Cli) -> None:
    sqlite_cli("notices", operator=None).refused("--operator NAME", 2)
    sqlite_cli("notices", operator="ghost").refused("Unknown operator 'ghost'")
    sqlite_cli("notices", "--soon").refused("unrecognized arguments", 2)
