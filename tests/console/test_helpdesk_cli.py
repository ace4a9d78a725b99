"""``ssr-console helpdesk find | timeline`` against the seeded demo LEA: the help desk finds a family
by what a caller gives, reads its timeline with the same masking as on screen (an old address in
the audit trail stays masked; no score, no password), and the refusals (issue 20)."""

from __future__ import annotations

from sqlmodel import Session, col, select

from services.access import operators
from services.helpdesk import email_changes
from services.roster.tables import Guardian, School, Student, StudentGuardian
from tests.console.conftest import Cli


def _family_with_email(cli: Cli) -> tuple[str, int, str]:
    """An SSID whose primary guardian has an email address: (ssid, guardian id, email)."""
    with Session(cli.engine) as session:
        ssid, gid, email = session.exec(
            select(Student.ssid, Guardian.id, Guardian.email)
            .join(StudentGuardian, col(StudentGuardian.student_id) == col(Student.id))
            .join(Guardian, col(Guardian.id) == col(StudentGuardian.guardian_id))
            .where(col(StudentGuardian.is_primary), col(Guardian.email).is_not(None))
            .order_by(col(Student.ssid))
        ).first()  # type: ignore[misc]
    return str(ssid), int(gid), str(email)


def test_the_help_desk_finds_a_family_and_reads_its_timeline(demo_cli: Cli) -> None:
    ssid, guardian_id, email = _family_with_email(demo_cli)
    hits = demo_cli("helpdesk", "find", ssid[:6], "--json", operator="helpdesk").json()
    assert ssid in [h["ssid"] for h in hits]
    by_email = demo_cli("helpdesk", "find", email, "--json", operator="helpdesk").json()
    assert [h["ssid"] for h in by_email if h["contact"] == email]
    assert ssid in demo_cli("helpdesk", "find", ssid, operator="helpdesk").ok()
    assert "Nothing found" in demo_cli("helpdesk", "find", "Zzyzx", operator="helpdesk").ok()

    demo_cli("batch", "create", "--channel", "email", "--scope", "lea").ok()
    coordinator = operators.resolve(demo_cli.engine, "caaspp")  # applies at once
    email_changes.correct_email(
        demo_cli.engine, coordinator, guardian_id, "new.address@example.org", "typo on the form"
    )

    family = demo_cli("helpdesk", "timeline", ssid, "--json", operator="helpdesk").json()
    assert family["ssid"] == ssid and family["contacts"][0]["email"] == "new.address@example.org"
    assert family["deliveries"] and family["deliveries"][0]["address"] == "new.address@example.org"
    texts = [e["text"] for e in family["events"]]
    assert any(t.startswith("Secure email batch") for t in texts)
    shown = demo_cli("helpdesk", "timeline", ssid, operator="helpdesk").ok()
    for output in (shown, str(family)):
        assert email not in output  # the old address is in the audit trail, masked
        assert f"{email[0]}***@{email.split('@')[1]}" in output
        assert "password" not in output.lower().replace("password message", "")
        assert "score" not in output.lower().replace("score report", "")
    assert f"SSID {ssid}" in shown and "Channel:" in shown


def test_helpdesk_refusals(sqlite_cli: Cli) -> None:
    run = sqlite_cli
    run("helpdesk", "find", "Garcia", operator="tech").refused(
        "A technology coordinator may not view guardian contact details"
    )
    run("helpdesk", "timeline", "12345").refused("SSID must be exactly 10 digits, got '12345'")
    run("helpdesk", "timeline", "0000000000").refused("No student with SSID 0000000000")
    with Session(run.engine) as session:
        first_school = session.exec(select(School.id).order_by(col(School.id))).first()
        elsewhere = session.exec(
            select(Student.ssid).where(col(Student.school_id) != first_school)
        ).first()
    assert elsewhere is not None  # the site coordinator holds the first school only
    run("helpdesk", "timeline", elsewhere, operator="site").refused("not in your scope")
    assert run("helpdesk", "find", elsewhere, "--json", operator="site").json() == []
    run("helpdesk", "find", operator="helpdesk").refused("required: QUERY", 2)
    run("helpdesk", "lookup", "x").refused("invalid choice", 2)


def test_names_reach_the_terminal_harmless(sqlite_cli: Cli) -> None:
    ssid, guardian_id, _ = _family_with_email(sqlite_cli)
    with Session(sqlite_cli.engine) as session:
        guardian = session.get(Guardian, guardian_id)
        assert guardian is not None
        guardian.last_name = "Doe\x1b[2J\x1b]52;c;ZWNobyBoaQ==\x07"
        session.add(guardian)
        session.commit()
    for command in (("find", ssid), ("timeline", ssid)):
        shown = sqlite_cli("helpdesk", *command, operator="helpdesk").ok()
        assert "\x1b" not in shown and "\x07" not in shown and "Doe\\x1b[2J" in shown
