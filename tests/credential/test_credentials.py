"""The credential service: generation, statuses, coordinated and emergency resets, roles, checklist."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect
from sqlmodel import Session, select

from services.audit import log as audit
from services.audit.tables import AuditEvent
from services.core import db
from services.core.errors import ConsoleError, InvalidInput, PermissionDenied
from services.credential import lifecycle as credentials
from services.credential.lifecycle import CoordinationRequired, CredentialPolicy, CredentialStatus
from services.credential.tables import Credential
from tests import credentials_world

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def world(engine):
    return credentials_world.build(engine)


def _note(engine, world, who="caaspp"):
    return credentials.request_reset(
        engine,
        world[who],
        world.lea_id,
        reason="Vendor changed portal hosting provider",
        planned_for="Friday 6 March after 17:00",
        vendor_contact="Jo Park, PowerPortal support",
    )


def _audit_actions(engine) -> list[str]:
    with Session(engine) as session:
        return list(session.exec(select(AuditEvent.action).order_by(AuditEvent.seq)))


def test_generate_issues_a_strong_secret_stored_only_as_argon2id(engine, world):
    issued = credentials.generate(engine, world["caaspp"], world.lea_id, now=NOW)
    assert len(issued.secret) >= 20
    assert set(issued.secret) <= set(credentials.SECRET_ALPHABET)
    assert not set("0Oo1lI") & set(issued.secret)
    assert issued.secret not in repr(issued)
    assert issued.expires_at == datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
    with Session(engine) as session:
        row = session.exec(select(Credential)).one()
    assert row.secret_hash.startswith("$argon2id$")
    assert issued.secret not in row.secret_hash
    assert row.fingerprint == issued.fingerprint == credentials.fingerprint_of(row.secret_hash)
    assert credentials.verify_secret(engine, world.lea_id, issued.secret)
    wrong = issued.secret[:-1] + ("y" if issued.secret.endswith("x") else "x")
    assert not credentials.verify_secret(engine, world.lea_id, wrong)
    assert _audit_actions(engine) == ["credential.generate"]


def test_secrets_differ_and_use_the_whole_alphabet():
    keys = {credentials.new_secret() for _ in range(200)}
    assert len(keys) == 200
    assert set("".join(keys)) == set(credentials.SECRET_ALPHABET)
    with pytest.raises(InvalidInput):
        credentials.new_secret(12)


def test_generate_refuses_while_a_valid_credential_exists_but_renews_an_expired_one(engine, world):
    first = credentials.generate(engine, world["caaspp"], world.lea_id, now=NOW)
    with pytest.raises(ConsoleError, match="coordinated reset"):
        credentials.generate(engine, world["elpac"], world.lea_id, now=NOW + timedelta(days=30))
    later = NOW + timedelta(days=400)
    second = credentials.generate(engine, world["elpac"], world.lea_id, now=later)
    assert not credentials.verify_secret(engine, world.lea_id, first.secret)
    assert credentials.verify_secret(engine, world.lea_id, second.secret)
    statuses = [
        e.status for e in credentials.history(engine, world["site"], world.lea_id, now=later)
    ]
    assert statuses == [CredentialStatus.ACTIVE, CredentialStatus.REVOKED]


def test_status_counts_down_through_expiring_to_expired(engine, world):
    assert credentials.status(engine, world.lea_id).status is CredentialStatus.NONE
    issued = credentials.generate(engine, world["caaspp"], world.lea_id, now=NOW)
    expiry = issued.expires_at

    def at(moment):
        return credentials.status(engine, world.lea_id, now=moment)

    assert (at(NOW).status, at(NOW).days_left) == (CredentialStatus.ACTIVE, 365)
    assert at(expiry - timedelta(days=15)).status is CredentialStatus.ACTIVE
    fourteen = at(expiry - timedelta(days=14))
    assert (fourteen.status, fourteen.days_left) == (CredentialStatus.EXPIRING, 14)
    assert at(expiry - timedelta(hours=1)).days_left == 1
    assert at(expiry).status is CredentialStatus.EXPIRED
    assert "EXPIRED" in at(expiry + timedelta(days=3)).summary
    assert at(expiry + timedelta(days=3)).countdown == "expired 3 days ago"
    assert at(expiry + timedelta(hours=2)).countdown == "expired today"
    assert at(expiry - timedelta(hours=2)).countdown == "1 day left"
    assert at(expiry - timedelta(days=3)).needs_attention


def test_policy_lifetime_is_configurable_and_leap_days_fold(engine, world, settings):
    from dataclasses import replace

    policy = CredentialPolicy.from_settings(
        replace(settings, extra={"credential": {"lifetime_days": 90}})
    )
    issued = credentials.generate(engine, world["caaspp"], world.lea_id, policy, now=NOW)
    assert issued.expires_at == NOW + timedelta(days=90)
    leap = datetime(2028, 2, 29, tzinfo=UTC)
    assert CredentialPolicy().expiry(leap) == datetime(2029, 2, 28, tzinfo=UTC)
    with pytest.raises(InvalidInput):
        CredentialPolicy(secret_length=16)
    with pytest.raises(InvalidInput, match="whole number"):
        CredentialPolicy.from_settings(
            replace(settings, extra={"credential": {"lifetime_days": "a year"}})
        )


@pytest.mark.parametrize("who", ["site", "tech", "helpdesk"])
def test_only_coordinators_generate_or_reset(engine, world, who):
    with pytest.raises(PermissionDenied):
        credentials.generate(engine, world[who], world.lea_id)
    credentials.generate(engine, world["caaspp"], world.lea_id)
    with pytest.raises(PermissionDenied):
        _note(engine, world, who)
    with pytest.raises(PermissionDenied):
        credentials.emergency_reset(engine, world[who], world.lea_id, reason="I just feel like it")
    assert _audit_actions(engine) == ["credential.generate"]


def test_each_lea_has_its_own_credential_and_coordinators_stay_in_their_lea(engine, world):
    mine = credentials.generate(engine, world["caaspp"], world.lea_id)
    theirs = credentials.generate(engine, world["other_caaspp"], world.other_lea_id)
    assert mine.username != theirs.username and mine.secret != theirs.secret
    with pytest.raises(PermissionDenied, match="outside their LEA"):
        credentials.emergency_reset(
            engine, world["caaspp"], world.other_lea_id, reason="Not my district at all"
        )
    current = list(credentials.current_credentials(engine, batch=1))
    assert [c.lea_id for c in current] == [world.lea_id, world.other_lea_id]


def test_reset_is_refused_without_coordination(engine, world):
    old = credentials.generate(engine, world["caaspp"], world.lea_id)
    note = _note(engine, world)
    with pytest.raises(CoordinationRequired, match="LEA ELPAC coordinator has not acknowledged"):
        credentials.reset(engine, world["caaspp"], note.id)
    assert credentials.verify_secret(engine, world.lea_id, old.secret)
    with pytest.raises(PermissionDenied, match="only the LEA ELPAC coordinator"):
        credentials.acknowledge_reset(engine, world["caaspp"], note.id)
    with pytest.raises(PermissionDenied):
        credentials.acknowledge_reset(engine, world["other_elpac"], note.id)
    with pytest.raises(ConsoleError, match="already open"):
        _note(engine, world, "elpac")


def test_reset_after_acknowledgement_revokes_the_old_credential_at_once(engine, world):
    old = credentials.generate(engine, world["caaspp"], world.lea_id)
    note = _note(engine, world)
    credentials.acknowledge_reset(engine, world["elpac"], note.id)
    new = credentials.reset(engine, world["caaspp"], note.id)
    assert not credentials.verify_secret(engine, world.lea_id, old.secret)
    assert credentials.verify_secret(engine, world.lea_id, new.secret)
    assert not credentials.is_current(engine, old.credential_id)
    assert credentials.is_current(engine, new.credential_id)
    [entry, previous] = credentials.history(engine, world["helpdesk"], world.lea_id)
    assert entry.reset is not None and entry.reset.acknowledged_by == "elpac"
    assert (
        previous.status is CredentialStatus.REVOKED and previous.credential.revoked_by == "caaspp"
    )
    with pytest.raises(ConsoleError, match="already carried out"):
        credentials.reset(engine, world["caaspp"], note.id)
    assert _audit_actions(engine) == [
        "credential.generate",
        "credential.reset.request",
        "credential.reset.acknowledge",
        "credential.reset",
    ]


def test_reset_after_out_of_band_confirmation(engine, world):
    credentials.generate(engine, world["elpac"], world.lea_id)
    note = _note(engine, world, "elpac")
    with pytest.raises(InvalidInput, match="with whom"):
        credentials.confirm_out_of_band(
            engine, world["elpac"], note.id, confirmed_with="  ", confirmed_on="today"
        )
    with pytest.raises(PermissionDenied, match="records an out-of-band"):
        credentials.confirm_out_of_band(
            engine, world["caaspp"], note.id, confirmed_with="Eli", confirmed_on="today"
        )
    credentials.confirm_out_of_band(
        engine,
        world["elpac"],
        note.id,
        confirmed_with="Ana Lopez (CAASPP), by phone",
        confirmed_on="2026-03-02 10:15",
    )
    issued = credentials.reset(engine, world["elpac"], note.id)
    assert credentials.status(engine, world.lea_id).credential_id == issued.credential_id


def test_a_note_for_a_replaced_credential_cannot_be_used(engine, world):
    credentials.generate(engine, world["caaspp"], world.lea_id)
    note = _note(engine, world)
    credentials.acknowledge_reset(engine, world["elpac"], note.id)
    credentials.emergency_reset(
        engine, world["elpac"], world.lea_id, reason="Key pasted into a public ticket"
    )
    with pytest.raises(ConsoleError, match="cancelled"):
        credentials.reset(engine, world["caaspp"], note.id)


def test_emergency_override_needs_a_reason_and_is_loud(engine, world):
    credentials.generate(engine, world["caaspp"], world.lea_id)
    with pytest.raises(InvalidInput, match="reason"):
        credentials.emergency_reset(engine, world["caaspp"], world.lea_id, reason="   ")
    issued = credentials.emergency_reset(
        engine, world["caaspp"], world.lea_id, reason="Secret key emailed to the wrong vendor"
    )
    state = credentials.status(engine, world.lea_id)
    assert state.emergency and not state.emergency_acknowledged
    assert "EMERGENCY" in state.summary and state.needs_attention
    assert _audit_actions(engine)[-1] == "credential.reset.EMERGENCY"
    with Session(engine) as session:
        event = session.exec(select(AuditEvent).order_by(AuditEvent.seq.desc())).first()
    assert json.loads(event.detail)["emergency_reason"] == "Secret key emailed to the wrong vendor"
    [entry, _] = credentials.history(engine, world["site"], world.lea_id)
    assert entry.credential.emergency and entry.credential.id == issued.credential_id
    credentials.acknowledge_reset(engine, world["elpac"], entry.reset.id)
    assert credentials.status(engine, world.lea_id).emergency_acknowledged
    assert audit.verify(engine).ok


def test_checklist_lists_every_system_until_given_the_new_credential(engine, world):
    credentials.generate(engine, world["caaspp"], world.lea_id)
    portal = credentials.add_system(
        engine,
        world["caaspp"],
        world.lea_id,
        "PowerPortal parent portal",
        "https://pp.example/api/v1/token",
    )
    cers = credentials.add_system(engine, world["elpac"], world.lea_id, "CERS roster sync")
    with pytest.raises(InvalidInput, match="https"):
        credentials.add_system(
            engine, world["caaspp"], world.lea_id, "SEIS", "http://seis.example/t"
        )
    with pytest.raises(InvalidInput, match="already listed"):
        credentials.add_system(engine, world["caaspp"], world.lea_id, "CERS roster sync")
    with pytest.raises(PermissionDenied):
        credentials.add_system(engine, world["helpdesk"], world.lea_id, "Helpdesk tool")
    assert credentials.status(engine, world.lea_id).systems_pending == 2
    credentials.mark_updated(engine, world["caaspp"], portal.id)
    credentials.mark_updated(engine, world["caaspp"], cers.id)
    assert credentials.status(engine, world.lea_id).systems_pending == 0

    note = _note(engine, world)
    credentials.acknowledge_reset(engine, world["elpac"], note.id)
    credentials.reset(engine, world["caaspp"], note.id)
    items = credentials.checklist(engine, world["helpdesk"], world.lea_id)
    assert [(i.system.name, i.updated) for i in items] == [
        ("CERS roster sync", False),
        ("PowerPortal parent portal", False),
    ]
    with pytest.raises(PermissionDenied):
        credentials.mark_updated(engine, world["helpdesk"], cers.id)
    credentials.mark_updated(engine, world["elpac"], cers.id)
    credentials.retire_system(engine, world["caaspp"], portal.id)
    items = credentials.checklist(engine, world["site"], world.lea_id)
    assert [(i.system.name, i.updated, i.entry.updated_by) for i in items] == [
        ("CERS roster sync", True, "elpac")
    ]
    credentials.add_system(engine, world["caaspp"], world.lea_id, "PowerPortal parent portal")


def test_only_one_live_credential_per_lea_even_in_a_race(engine, world):
    credentials.generate(engine, world["caaspp"], world.lea_id)
    with Session(engine) as session:
        live = session.exec(select(Credential)).one()
        session.add(
            Credential(
                lea_id=world.lea_id,
                username="dup",
                secret_hash="x",
                fingerprint="00000000",
                created_by="racer",
                expires_at=live.expires_at,
            )
        )
        with pytest.raises(Exception, match="UNIQUE"):
            session.commit()


def test_migration_matches_the_tables(engine):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlmodel import SQLModel

    mine = {"credential", "credential_reset", "credential_system", "credential_checklist"}
    assert mine <= set(inspect(engine).get_table_names())
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert [d for d in diff if any(t in repr(d) for t in mine)] == []


def test_credential_tables_work_on_postgresql(migrated_pg_url):
    engine = db.make_engine(migrated_pg_url)
    try:
        world = credentials_world.build(engine)
        old = credentials.generate(engine, world["caaspp"], world.lea_id)
        note = _note(engine, world)
        credentials.acknowledge_reset(engine, world["elpac"], note.id)
        new = credentials.reset(engine, world["caaspp"], note.id)
        assert credentials.verify_secret(engine, world.lea_id, new.secret)
        assert not credentials.verify_secret(engine, world.lea_id, old.secret)
        assert [c.credential_id for c in credentials.current_credentials(engine)] == [
            new.credential_id
        ]
    finally:
        engine.dispose()


def test_banner_from_fourteen_days_before_expiry_and_the_dashboard_panel(engine, world):
    from services.reports import dashboard

    assert credentials.banner(engine, world.lea_id) is None
    assert "Not generated" in credentials.dashboard_text(engine, world["helpdesk"])
    issued = credentials.generate(engine, world["caaspp"], world.lea_id, now=NOW)
    expiry = issued.expires_at
    assert credentials.banner(engine, world.lea_id, now=expiry - timedelta(days=15)) is None
    level, text = credentials.banner(engine, world.lea_id, now=expiry - timedelta(days=14))
    assert level == "warning" and "14 days left" in text
    level, text = credentials.banner(engine, world.lea_id, now=expiry + timedelta(seconds=1))
    assert level == "error" and "EXPIRED" in text
    panel = credentials.dashboard_text(engine, world["site"], now=NOW + timedelta(days=300))
    assert panel.splitlines()[:2] == ["ACTIVE · 65 days left", "Expires 2027-03-01"]
    credentials.emergency_reset(
        engine, world["elpac"], world.lea_id, reason="Laptop with key stolen"
    )
    [banner] = dashboard.banners(engine, world["helpdesk"])
    assert banner.level == "error" and "EMERGENCY" in banner.text
    assert "NOT acknowledged" in credentials.dashboard_text(engine, world["tech"])


def test_two_coordinators_generating_at_once_get_one_credential(migrated_url):
    import threading

    engine = db.make_engine(migrated_url)
    try:
        world = credentials_world.build(engine)
        start = threading.Barrier(2)
        outcomes: list[object] = []

        def attempt(who: str) -> None:
            start.wait()
            try:
                outcomes.append(credentials.generate(engine, world[who], world.lea_id))
            except ConsoleError as refusal:
                outcomes.append(refusal)

        threads = [threading.Thread(target=attempt, args=(w,)) for w in ("caaspp", "elpac")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        issued = [o for o in outcomes if isinstance(o, credentials.IssuedCredential)]
        refused = [o for o in outcomes if isinstance(o, ConsoleError)]
        assert len(issued) == 1 and len(refused) == 1, outcomes
        assert credentials.verify_secret(engine, world.lea_id, issued[0].secret)
        assert len(list(credentials.current_credentials(engine))) == 1
        assert audit.verify(engine).ok
    finally:
        engine.dispose()


def test_a_note_containing_the_live_key_is_refused(engine, world):
    issued = credentials.generate(engine, world["caaspp"], world.lea_id)
    with pytest.raises(InvalidInput, match="contains the live secret key"):
        credentials.request_reset(
            engine,
            world["caaspp"],
            world.lea_id,
            reason=f"Vendor says key {issued.secret} stopped working",
            planned_for="today",
            vendor_contact="Jo",
        )
    with pytest.raises(InvalidInput, match="contains the live secret key"):
        credentials.emergency_reset(
            engine, world["caaspp"], world.lea_id, reason=f"Posted {issued.secret}!"
        )
    with pytest.raises(InvalidInput, match="contains the live secret key"):
        credentials.add_system(engine, world["caaspp"], world.lea_id, f"Portal {issued.secret}")
    lookalike = "Q" * 24  # key-shaped but not the key: accepted
    credentials.request_reset(
        engine,
        world["caaspp"],
        world.lea_id,
        reason=f"Ticket {lookalike} from the vendor",
        planned_for="today",
        vendor_contact="Jo",
    )
    with Session(engine) as session:
        details = " ".join(session.exec(select(AuditEvent.detail)))
    assert issued.secret not in details and lookalike in details
