"""``ssr-console batch ...`` against the seeded demo LEA: every channel created from a typed scope,
listed, shown and steered as the acting operator, with the screens' permissions and audit events,
and each refusal with its sentence and exit status (issue 20)."""

from __future__ import annotations

import stat

from sqlmodel import Session, col, select, update

from services.audit.tables import AuditEvent
from services.delivery.ledger import DeliveryBatch, DeliveryItem, ItemState
from services.roster.tables import School
from tests.console.conftest import Cli


def _actions(cli: Cli, operator: str) -> list[str]:
    with Session(cli.engine) as session:
        return list(
            session.exec(
                select(AuditEvent.action)
                .where(AuditEvent.operator == operator)
                .order_by(col(AuditEvent.seq))
            ).all()
        )


def _schools(cli: Cli) -> list[str]:
    with Session(cli.engine) as session:
        return sorted(session.exec(select(School.cds_code)).all())


def test_an_email_batch_is_dry_run_created_listed_shown_and_steered(demo_cli: Cli) -> None:
    preview = demo_cli(
        "batch", "create", "--channel", "email", "--scope", "lea", "--dry-run", "--json"
    )
    figures = preview.json()
    assert figures["dry_run"] is True and figures["families"] > 0 and figures["ssrs"] > 0
    assert "es" in figures["subjects"]
    assert demo_cli("batch", "list", "--json").json() == []  # a dry run creates nothing

    created = demo_cli("batch", "create", "--channel", "email", "--scope", "grade", "5")
    batch_id = created.ok().strip()
    assert batch_id.startswith("B") and batch_id[1:].isdigit()
    assert "families" in created.err

    listed = demo_cli("batch", "list", "--json").json()
    assert [(b["id"], b["status"]) for b in listed] == [(batch_id, "running")]
    assert listed[0]["created_by"] == "caaspp" and listed[0]["total"] > 0
    assert batch_id in demo_cli("batch", "list").ok()

    shown = demo_cli("batch", "show", batch_id, "--json").json()
    assert shown["id"] == batch_id and shown["states"] == {"pending": listed[0]["total"]}
    assert "pending" in demo_cli("batch", "show", batch_id[1:]).ok()  # a bare number: B

    assert demo_cli("batch", "pause", batch_id).ok() == f"batch {batch_id} paused\n"
    demo_cli("batch", "pause", batch_id).refused("A paused batch cannot be set to paused")
    demo_cli("batch", "resume", batch_id).ok()
    assert "0 failed items" in demo_cli("batch", "retry", batch_id).ok()
    demo_cli("batch", "cancel", batch_id).ok()
    assert demo_cli("batch", "show", batch_id, "--json").json()["status"] == "cancelled"
    assert _actions(demo_cli, "caaspp") == [
        "batch.create",
        "batch.paused",
        "batch.running",
        "batch.retry_failed",
        "batch.cancelled",
    ]


def test_an_uncertain_item_is_resolved_in_its_own_batch_only(demo_cli: Cli) -> None:
    batch_id = demo_cli("batch", "create", "--channel", "email", "--scope", "lea").ok().strip()
    with Session(demo_cli.engine) as session:
        first = session.exec(select(col(DeliveryItem.id)).order_by(col(DeliveryItem.id))).first()
        assert first is not None
        session.execute(
            update(DeliveryItem)
            .where(col(DeliveryItem.id) == first)
            .values(state=ItemState.UNCERTAIN, uncertain_step="document")
        )
        session.commit()
    item_id = str(first)
    resolve = ("batch", "resolve", batch_id, item_id, "--not-delivered", "--reason")
    demo_cli(*resolve, "   ").refused("Say why with --reason")
    other = f"B{int(batch_id[1:]) + 1}"
    demo_cli("batch", "resolve", other, item_id, "--delivered", "--reason", "x").refused(
        f"There is no batch {other}"
    )
    demo_cli("batch", "resolve", batch_id, item_id, "--reason", "x").refused(
        "one of the arguments", 2
    )
    assert demo_cli(*resolve, "the relay log has no trace").ok().endswith(": packaged\n")
    demo_cli(*resolve, "again").refused(f"Delivery item {item_id} is not waiting for a decision")
    assert "delivery.resolved" in _actions(demo_cli, "caaspp")


def test_print_paper_and_portal_batches_go_through_their_channels(demo_cli: Cli) -> None:
    printed = demo_cli("batch", "create", "--channel", "print", "--scope", "lea").ok().strip()
    assert printed.startswith("C")
    shown = demo_cli("batch", "show", printed, "--json").json()
    assert shown["detail"]["print"] == "queued" and shown["states"]["pending"] > 0
    demo_cli("batch", "pause", printed).refused("only secure-email and notice batches pause")
    demo_cli("batch", "retry", printed).ok()  # queued again for the worker

    school = _schools(demo_cli)[0]
    figures = demo_cli(
        "batch", "create", "--channel", "paper", "--scope", "school", school, "--dry-run", "--json"
    ).json()
    # The print batch took every student with an SSR: paper goes by the roster (issue 8)
    assert figures["channel"] == "D" and "cost" in figures
    ordered = demo_cli("batch", "create", "--channel", "paper", "--scope", "school", school)
    if ordered.code == 0:
        order_id = ordered.out.strip()
        csv = demo_cli.settings.data_dir / "orders" / f"ets-order-{order_id[1:]}.csv"
        assert csv.read_text().startswith("ssid,")
        assert stat.S_IMODE(csv.stat().st_mode) == 0o600
    else:
        ordered.refused("No student with an SSR and not yet on a channel")

    portal = demo_cli(
        "batch", "create", "--channel", "portal", "--scope", "plan", "--dry-run", "--json"
    )
    assert portal.json()["ready"] is False
    demo_cli("batch", "create", "--channel", "portal", "--scope", "plan").refused(
        "The portal cannot carry SSRs yet"
    )
    demo_cli("batch", "create", "--channel", "portal", "--scope", "lea").refused(
        "A portal batch publishes the plan's portal families"
    )
    demo_cli("batch", "cancel", printed).ok()
    assert demo_cli("batch", "show", printed, "--json").json()["status"] == "cancelled"
    actions = _actions(demo_cli, "caaspp")
    assert actions[:2] == ["channel_batch.create.C", "channel_batch.print_queued"]
    assert "channel_batch.cancel.C" in actions


def test_a_notice_batch_waits_for_its_send_date(demo_cli: Cli) -> None:
    notice = demo_cli(
        "batch",
        "create",
        "--channel",
        "notice",
        "--scope",
        "lea",
        "--send-at",
        "2099-12-03",
        "--json",
    ).json()
    assert notice["channel"] == "N"
    shown = demo_cli("batch", "show", notice["id"], "--json").json()
    assert shown["kind"] == "notice" and shown["send_at"].startswith("2099-12-03T")
    demo_cli("batch", "show", f"B{notice['number']}").ok()  # one sequence with email batches
    demo_cli(
        "batch", "create", "--channel", "notice", "--scope", "lea", "--send-at", "2001-01-01"
    ).refused("has passed")
    assert "notice.create" in _actions(demo_cli, "caaspp")


def test_each_refusal_has_its_sentence_and_exit_status(sqlite_cli: Cli) -> None:
    run = sqlite_cli
    create = ("batch", "create", "--channel", "email")
    run("batch", "show", "B999").refused("There is no batch B999 you can see")
    run("batch", "show", "C999").refused("There is no batch C999 you can see")
    run("batch", "cancel", "Z1").refused("'Z1' is not a batch id")
    run(*create, "--scope", "school", "99999999999999").refused(
        "No school of your LEA has the CDS code 99999999999999"
    )
    run(*create, "--scope", "group", "Chess club").refused("There is no student group named")
    run(*create, "--scope", "lea", operator="helpdesk").refused(
        "A help desk may not run delivery batches"
    )
    run("batch", "list", operator="tech").refused("may not run delivery batches")
    run(*create, "--scope", "lea", "--year", "twenty").refused(
        "'twenty' is not an administration year"
    )
    run(*create, "--scope", "lea", "--program", "SAT").refused("'SAT' is not a program")
    run(*create, "--scope", "everyone").refused("Type a scope: lea, plan, corrections")
    run(*create, "--scope", "lea", operator="nobody").refused("Unknown operator 'nobody'")
    run("batch", "create", "--channel", "print", "--scope", "corrections").refused(
        "No family in this selection is owed a corrected SSR on channel C (Print locally)"
    )
    run("batch", "create", "--channel", "print", "--scope", "plan").refused(
        "There is no distribution plan yet"
    )
    run("batch", "create", "--channel", "notice", "--scope", "corrections").refused(
        "corrections is a scope for SSR batches"
    )
    # bad usage: argparse's, exit 2
    run(*create).refused("the following arguments are required: --scope", 2)
    run("batch", "create", "--channel", "fax", "--scope", "lea").refused("invalid choice", 2)
    run(*create, "--scope", "lea", operator=None).refused("--operator NAME", 2)
    run("batch", "create", "--channel", "print", "--scope", "lea", "--resend", "x").refused(
        "--resend goes with --channel email", 2
    )
    run("batch", "create", "--channel", "notice", "--scope", "lea", "--year", "2026").refused(
        "a notice carries no SSRs", 2
    )
    assert run("batch", "list", "--json").json() == []  # nothing was created on the way


def test_untrusted_names_reach_the_terminal_harmless(sqlite_cli: Cli) -> None:
    batch_id = sqlite_cli("batch", "create", "--channel", "email", "--scope", "lea").ok().strip()
    with Session(sqlite_cli.engine) as session:
        session.execute(
            update(DeliveryBatch)
            .where(col(DeliveryBatch.id) == int(batch_id[1:]))
            .values(name="Spring\x1b]52;c;cm0gLXJmIH4=\x07 \u202eevil")
        )
        session.commit()
    for shown in (sqlite_cli("batch", "list").ok(), sqlite_cli("batch", "show", batch_id).ok()):
        assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown
        assert "Spring\\x1b]52" in shown and "\\u202eevil" in shown
    listed = sqlite_cli("batch", "list", "--json")
    assert "\x1b" not in listed.out
    assert listed.json()[0]["name"].startswith("Spring\x1b]52")  # JSON keeps the value exactly


def test_paper_is_delivered_once_received_and_mailed(demo_cli: Cli) -> None:
    school = _schools(demo_cli)[0]
    order = demo_cli("batch", "create", "--channel", "paper", "--scope", "school", school)
    order_id = order.ok().strip()
    demo_cli("batch", "mailed", order_id).refused("is received from ETS and waiting to be mailed")
    assert "received at the LEA" in demo_cli("batch", "received", order_id).ok()
    demo_cli("batch", "received", order_id).refused("not waiting for paper")
    demo_cli("batch", "mailed", order_id, "--on", "2001-01-01").refused("were mailed between")
    demo_cli("batch", "mailed", order_id, "--on", "01/02/2026").refused("not a day like", 2)
    assert "students delivered on" in demo_cli("batch", "mailed", order_id).ok()
    shown = demo_cli("batch", "show", order_id, "--json").json()
    assert set(shown["states"]) == {"done"}
    delivered = demo_cli("report", "status", "--by", "channel", "--json").json()["rows"]
    assert {r["label"]: r["delivered"] for r in delivered}["D Paper from ETS"] > 0

    printed = demo_cli("batch", "create", "--channel", "print", "--scope", "lea").ok().strip()
    demo_cli("batch", "received", printed).refused("is not an ETS paper order")
    demo_cli("batch", "mailed", printed).refused("is printed and waiting to be mailed")
    demo_cli("batch", "mailed", "B1").refused("There is no batch B1")
    actions = _actions(demo_cli, "caaspp")
    assert "channel_batch.finish.D" in actions and "channel_batch.delivered.D" in actions


def test_a_site_coordinator_is_held_to_their_school(demo_cli: Cli) -> None:
    with Session(demo_cli.engine) as session:
        own, other = session.exec(
            select(School.name, School.cds_code).order_by(col(School.id))
        ).all()[:2]
    demo_cli(
        "batch", "create", "--channel", "email", "--scope", "school", other[1], operator="site"
    ).refused("A site coordinator can only send for their own school")
    mine = demo_cli("batch", "create", "--channel", "email", "--scope", "lea", operator="site")
    shown = demo_cli("batch", "show", mine.ok().strip(), "--json", operator="site").json()
    assert [s["school"] for s in shown["schools"]] == [own[0]]
    lea_wide = demo_cli("batch", "create", "--channel", "email", "--scope", "lea").ok().strip()
    demo_cli("batch", "show", lea_wide, operator="site").refused(f"There is no batch {lea_wide}")
    assert [b["id"] for b in demo_cli("batch", "list", "--json", operator="site").json()] == [
        mine.out.strip()
    ]


def test_the_dry_run_says_how_many_days_the_daily_cap_needs(demo_cli: Cli) -> None:
    demo_cli.config.write_text("[smtp]\nper_minute = 60\nper_day = 20\n")
    figures = demo_cli(
        "batch", "create", "--channel", "email", "--scope", "lea", "--dry-run", "--json"
    ).json()
    sending = figures["sending"]
    assert sending["messages"] == 2 * figures["families"]
    assert sending["days"] >= figures["families"] // 10  # 20 messages, ten families, a day
    assert sending["deadline"] is not None  # the demo's SSRs are received, so they are due
    text = demo_cli("batch", "create", "--channel", "email", "--scope", "lea", "--dry-run").ok()
    assert f"daily cap of 20 messages spreads it over {sending['days']:,} day(s)" in text
