"""The credential service: the TOMS credential recorded and verified over real HTTP on loopback,
sealed in the vault, statuses, coordinated, self-coordinated and emergency resets, roles, history,
the checklist, and the migration of credentials an earlier version invented."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import inspect, text
from sqlmodel import Session, select

from services.audit import log as audit
from services.audit.tables import AuditEvent
from services.core import db
from services.core.errors import ConsoleError, InvalidInput, PermissionDenied
from services.core.vault import Vault
from services.credential import lifecycle as credentials
from services.credential import reset as resets
from services.credential import systems
from services.credential.lifecycle import (
    CoordinationRequired,
    CredentialPolicy,
    CredentialStatus,
    TomsRefused,
)
from services.credential.tables import Credential
from tests import credentials_world
from tests.credentials_world import TokenServer, free_port, token_url

NOW = datetime(2026, 3, 1, 20, 0, tzinfo=UTC)
USER, SECRET = "lea-1964733-sis", "Zq4vN8wX2mR7tK3pL9sB"
NEW_SECRET = "Hy6cD1fG5jW9nQ2rT8uE"


@pytest.fixture
def world(engine):
    return credentials_world.build(engine)


@pytest.fixture
def vault():
    return Vault(Fernet.generate_key())


@pytest.fixture
def toms():
    with TokenServer(accepted=(USER, SECRET)) as server:
        yield server


def _record(engine, world, vault, url, who="caaspp", secret=SECRET, **kw):
    return credentials.record(
        engine, world[who], world.lea_id, vault, url, username=USER, secret=secret, **kw
    )


def _note(engine, world, who="caaspp"):
    return resets.request_reset(
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


def test_record_the_right_secret_verified_by_toms_and_sealed(engine, world, vault, toms):
    recorded = _record(engine, world, vault, toms.url, generated_on=date(2026, 2, 20), now=NOW)
    assert recorded.verified and "verified" in recorded.message
    assert recorded.expires_at.date() == date(2027, 2, 20)  # a year after TOMS generated it
    assert toms.requests == 1
    with Session(engine) as session:
        row = session.exec(select(Credential)).one()
    assert row.secret_sealed and SECRET not in row.secret_sealed
    assert vault.open(row.secret_sealed) == SECRET  # sealed, not hashed: the console uses it
    assert row.verified_by == "caaspp" and row.generated_on == date(2026, 2, 20)
    assert credentials.api_credential(engine, world.lea_id, vault) == (USER, SECRET)
    assert _audit_actions(engine) == ["credential.record"]


def test_record_a_wrong_secret_is_refused_with_tomss_answer(engine, world, vault, toms):
    with pytest.raises(TomsRefused, match="HTTP 401, invalid_client") as refused:
        _record(engine, world, vault, toms.url, secret="Wrong0000Wrong0000XX")
    assert "Wrong0000" not in str(refused.value)
    assert credentials.status(engine, world.lea_id).status is CredentialStatus.NONE
    assert _audit_actions(engine) == []


def test_toms_down_records_unverified_then_the_retry_verifies(engine, world, vault):
    port = free_port()
    recorded = _record(engine, world, vault, token_url(port), now=NOW)
    assert not recorded.verified
    assert "UNVERIFIED" in recorded.message and "Connection refused" in recorded.message
    state = credentials.status(engine, world.lea_id, now=NOW)
    assert not state.verified and "not verified with TOMS yet" in state.summary
    with TokenServer(port, accepted=(USER, SECRET)):
        assert credentials.verify_unverified(engine, vault, token_url(port)) == 1
    state = credentials.status(engine, world.lea_id)
    assert state.verified and state.check_message.startswith("TOMS: Token issued")
    [entry] = credentials.history(engine, world["caaspp"], world.lea_id)
    assert entry.verified_by == "scheduler"
    assert _audit_actions(engine) == ["credential.record", "credential.verify"]


def test_status_counts_down_through_expiring_to_expired(engine, world, vault):
    assert credentials.status(engine, world.lea_id).status is CredentialStatus.NONE
    recorded = _record(engine, world, vault, None, generated_on=NOW.date(), now=NOW)
    assert "no TOMS address is configured" in recorded.message
    expiry = recorded.expires_at

    def at(moment):
        return credentials.status(engine, world.lea_id, now=moment)

    assert at(expiry - timedelta(days=15)).status is CredentialStatus.ACTIVE
    fourteen = at(expiry - timedelta(days=14))
    assert (fourteen.status, fourteen.days_left) == (CredentialStatus.EXPIRING, 14)
    assert at(expiry - timedelta(hours=1)).days_left == 1
    assert at(expiry).status is CredentialStatus.EXPIRED
    assert "regenerate it in TOMS, then record it here" in at(expiry + timedelta(days=3)).summary
    assert at(expiry + timedelta(days=3)).countdown == "expired 3 days ago"


def test_policy_lifetime_is_configurable_and_leap_days_fold(engine, world, vault, settings):
    from dataclasses import replace

    policy = CredentialPolicy.from_settings(
        replace(settings, extra={"credential": {"lifetime_days": 90}})
    )
    recorded = _record(engine, world, vault, None, policy=policy, now=NOW)
    assert recorded.expires_at.date() == NOW.date() + timedelta(days=90)
    leap = datetime(2028, 2, 29, tzinfo=UTC)
    assert CredentialPolicy().expiry(leap) == datetime(2029, 2, 28, tzinfo=UTC)
    with pytest.raises(InvalidInput, match="whole number"):
        CredentialPolicy.from_settings(
            replace(settings, extra={"credential": {"lifetime_days": "a year"}})
        )
    with pytest.raises(InvalidInput, match="future"):
        _record(engine, world, vault, None, generated_on=NOW.date() + timedelta(days=2), now=NOW)


@pytest.mark.parametrize("who", ["site", "tech", "helpdesk"])
def test_only_coordinators_record_reveal_or_reset(engine, world, vault, who):
    with pytest.raises(PermissionDenied):
        _record(engine, world, vault, None, who=who)
    _record(engine, world, vault, None)
    with pytest.raises(PermissionDenied):
        credentials.reveal(engine, world[who], world.lea_id, vault)
    with pytest.raises(PermissionDenied):
        _note(engine, world, who)
    with pytest.raises(PermissionDenied):
        resets.emergency_reset(engine, world[who], world.lea_id, reason="I just feel like it")
    assert _audit_actions(engine) == ["credential.record"]


def test_reveal_is_audited_and_history_gives_dates_and_names_only(engine, world, vault):
    _record(engine, world, vault, None)
    shown = credentials.reveal(engine, world["elpac"], world.lea_id, vault)
    assert shown.secret == SECRET and SECRET not in repr(shown)
    events = credentials.history_events(engine, world["helpdesk"], world.lea_id)
    assert [(e.operator, e.action) for e in events] == [("elpac", "reveal"), ("caaspp", "record")]
    [entry] = credentials.history(engine, world["helpdesk"], world.lea_id)
    assert entry.username is None and entry.recorded_by == "caaspp"
    assert SECRET not in repr(entry)
    [entry] = credentials.history(engine, world["elpac"], world.lea_id)
    assert entry.username == USER


def test_replacing_a_live_credential_needs_coordination(engine, world, vault, toms):
    old = _record(engine, world, vault, toms.url)
    toms.accepted = (USER, NEW_SECRET)  # regenerated in TOMS: only the last one is valid
    with pytest.raises(CoordinationRequired, match="coordinated reset"):
        _record(engine, world, vault, toms.url, secret=NEW_SECRET)
    note = _note(engine, world)
    assert not note.self_coordinated
    with pytest.raises(CoordinationRequired, match="not acknowledged"):
        _record(engine, world, vault, toms.url, secret=NEW_SECRET, reset_id=note.id)
    with pytest.raises(PermissionDenied, match="only the LEA ELPAC coordinator"):
        resets.acknowledge_reset(engine, world["caaspp"], note.id)
    with pytest.raises(PermissionDenied):
        resets.acknowledge_reset(engine, world["other_elpac"], note.id)
    with pytest.raises(ConsoleError, match="already open"):
        _note(engine, world, "elpac")
    resets.acknowledge_reset(engine, world["elpac"], note.id)
    new = _record(engine, world, vault, toms.url, secret=NEW_SECRET, reset_id=note.id)
    assert new.verified
    assert not credentials.is_current(engine, old.credential_id)
    [entry, previous] = credentials.history(engine, world["helpdesk"], world.lea_id)
    assert entry.how == f"reset #{note.id}, acknowledged by elpac"
    assert previous.status is CredentialStatus.SUPERSEDED and previous.superseded_by == "caaspp"
    with pytest.raises(ConsoleError, match="closed"):
        _record(engine, world, vault, toms.url, secret=NEW_SECRET, reset_id=note.id)
    assert _audit_actions(engine) == [
        "credential.record",
        "credential.reset.request",
        "credential.reset.acknowledge",
        "credential.record",
    ]


def test_agreement_reached_elsewhere(engine, world, vault):
    _record(engine, world, vault, None, who="elpac")
    note = _note(engine, world, "elpac")
    with pytest.raises(PermissionDenied, match="agreement reached elsewhere"):
        resets.confirm_out_of_band(
            engine, world["caaspp"], note.id, confirmed_with="Eli", confirmed_on="today"
        )
    resets.confirm_out_of_band(
        engine,
        world["elpac"],
        note.id,
        confirmed_with="Ana Lopez (CAASPP), by phone",
        confirmed_on="2026-03-02 10:15",
    )
    recorded = _record(engine, world, vault, None, "elpac", NEW_SECRET, reset_id=note.id)
    assert credentials.status(engine, world.lea_id).credential_id == recorded.credential_id


@pytest.mark.parametrize("how", ["second_role", "same_email"])
def test_one_person_holding_both_roles_is_self_coordinated(engine, world, vault, how):
    from services.access.tables import Operator, Role

    with Session(engine) as session:
        if how == "second_role":  # one account holding both coordinator roles (issue 17)
            ana = session.get(Operator, world["caaspp"].id)
            ana.second_role = Role.LEA_ELPAC
            session.add(ana)
            session.delete(session.get(Operator, world["elpac"].id))
        else:  # two accounts of one person
            elpac = session.get(Operator, world["elpac"].id)
            elpac.email = "ANA@lrusd.example"
            session.add(elpac)
        session.commit()
        caaspp = session.get(Operator, world["caaspp"].id)
        session.expunge(caaspp)
    world.ops["caaspp"] = caaspp
    _record(engine, world, vault, None)
    note = _note(engine, world)
    assert note.self_coordinated
    with Session(engine) as session:
        request = session.get(type(note), note.id)
        assert resets.to_tell(session, request) == []
    recorded = _record(engine, world, vault, None, secret=NEW_SECRET, reset_id=note.id)
    [entry, _] = credentials.history(engine, world["site"], world.lea_id)
    assert entry.credential_id == recorded.credential_id
    assert "self-coordinated" in entry.how


def test_emergency_reset_needs_a_reason_is_loud_and_tells_both(engine, world, vault):
    _record(engine, world, vault, None)
    with pytest.raises(InvalidInput, match="reason"):
        resets.emergency_reset(engine, world["caaspp"], world.lea_id, reason="   ")
    note = _note(engine, world)
    request = resets.emergency_reset(
        engine, world["caaspp"], world.lea_id, reason="Secret key emailed to the wrong vendor"
    )
    with Session(engine) as session:
        told = resets.to_tell(session, session.get(type(request), request.id))
        assert sorted(o.username for o in told) == ["caaspp", "elpac"]
    assert resets.open_request(engine, world.lea_id).id == request.id  # the note was withdrawn
    with pytest.raises(ConsoleError, match="closed"):
        _record(engine, world, vault, None, secret=NEW_SECRET, reset_id=note.id)
    _record(engine, world, vault, None, secret=NEW_SECRET, reset_id=request.id)
    state = credentials.status(engine, world.lea_id)
    assert state.emergency and not state.emergency_acknowledged
    assert "EMERGENCY" in state.summary and state.needs_attention
    with Session(engine) as session:
        event = session.exec(
            select(AuditEvent).where(AuditEvent.action == "credential.reset.EMERGENCY")
        ).one()
    assert json.loads(event.detail)["emergency_reason"] == "Secret key emailed to the wrong vendor"
    resets.acknowledge_reset(engine, world["elpac"], request.id)
    assert credentials.status(engine, world.lea_id).emergency_acknowledged
    assert audit.verify(engine).ok


def test_checklist_tests_each_system_against_its_own_endpoint(engine, world, vault, toms):
    _record(engine, world, vault, None)
    with TokenServer(accepted=(USER, "an-older-secret-000000")) as stale:
        portal = systems.add_system(engine, world["caaspp"], world.lea_id, "Portal", toms.url)
        sync = systems.add_system(engine, world["elpac"], world.lea_id, "CERS sync", stale.url)
        assert systems.test_system(engine, world["caaspp"], portal.id, vault).ok
        refused = systems.test_system(engine, world["caaspp"], sync.id, vault)
        assert not refused.ok and "HTTP 401" in refused.message
        assert (toms.requests, stale.requests) == (1, 1)
    with pytest.raises(InvalidInput, match="https"):
        systems.add_system(engine, world["caaspp"], world.lea_id, "SEIS", "http://seis.example/t")
    with pytest.raises(PermissionDenied):
        systems.test_system(engine, world["helpdesk"], portal.id, vault)
    assert credentials.status(engine, world.lea_id).systems_pending == 2
    systems.mark_updated(engine, world["caaspp"], portal.id)
    items = systems.checklist(engine, world["helpdesk"], world.lea_id)
    assert [(i.system.name, i.updated, i.entry.test_ok) for i in items] == [
        ("CERS sync", False, False),
        ("Portal", True, True),
    ]
    with Session(engine) as session:
        details = " ".join(session.exec(select(AuditEvent.detail)))
    assert SECRET not in details


def test_a_note_containing_the_live_key_is_refused(engine, world, vault):
    _record(engine, world, vault, None)
    with pytest.raises(InvalidInput, match="contains the live secret key"):
        resets.request_reset(
            engine,
            world["caaspp"],
            world.lea_id,
            reason=f"Vendor says key {SECRET} stopped working",
            planned_for="today",
            vendor_contact="Jo",
            vault=vault,
        )
    with pytest.raises(InvalidInput, match="contains the live secret key"):
        resets.emergency_reset(
            engine, world["caaspp"], world.lea_id, reason=f"Posted {SECRET}!", vault=vault
        )
    with pytest.raises(InvalidInput, match="contains the live secret key"):
        systems.add_system(engine, world["caaspp"], world.lea_id, f"Portal {SECRET}", vault=vault)


def test_only_one_live_credential_per_lea_even_in_a_race(engine, world, vault):
    _record(engine, world, vault, None)
    with Session(engine) as session:
        live = session.exec(select(Credential)).one()
        session.add(
            Credential(
                lea_id=world.lea_id, username="dup", created_by="racer", expires_at=live.expires_at
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


def test_credentials_an_earlier_version_invented_are_kept_as_history(migrated_url, vault):
    """Upgrading keeps an invented credential, superseded, as "made by an earlier version", drops
    its hash, and the dashboard asks for the TOMS one."""
    engine = db.make_engine(migrated_url)
    try:
        # The world is built by today's tables, then the schema goes back to the revision before
        # this one, where an earlier version had left its invented credential.
        world = credentials_world.build(engine)
        db.downgrade(engine, "i17_operator_keys")
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO credential (lea_id, username, secret_hash, fingerprint, "
                    "created_at, created_by, expires_at, emergency) VALUES (:lea, "
                    "'ssr-1964733-abcd', '$argon2id$v=19$m=65536,t=3,p=4$xx$yy', '1a2b3c4d', "
                    ":at, 'caaspp', :expires, false)"
                ),
                {"lea": world.lea_id, "at": NOW, "expires": NOW + timedelta(days=365)},
            )
        db.upgrade(engine)
        with engine.connect() as connection:
            columns = {c["name"] for c in inspect(connection).get_columns("credential")}
        assert "secret_hash" not in columns
        state = credentials.status(engine, world.lea_id)
        assert state.status is CredentialStatus.NONE and state.legacy and state.needs_attention
        assert "earlier version" in credentials.dashboard_text(engine, world["helpdesk"])
        [entry] = credentials.history(engine, world["caaspp"], world.lea_id)
        assert entry.status is CredentialStatus.LEGACY
        assert entry.how == "made by an earlier version: not a TOMS credential"
        assert list(credentials.current_credentials(engine)) == []
        _record(engine, world, vault, None)  # no reset needed: the invented one never worked
        assert credentials.status(engine, world.lea_id).status is CredentialStatus.ACTIVE
    finally:
        engine.dispose()


def test_two_coordinators_recording_at_once_get_one_credential(migrated_url, vault):
    import threading

    engine = db.make_engine(migrated_url)
    try:
        world = credentials_world.build(engine)
        start = threading.Barrier(2)
        outcomes: list[object] = []

        def attempt(who: str) -> None:
            start.wait()
            try:
                outcomes.append(_record(engine, world, vault, None, who=who))
            except ConsoleError as refusal:
                outcomes.append(refusal)

        threads = [threading.Thread(target=attempt, args=(w,)) for w in ("caaspp", "elpac")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        recorded = [o for o in outcomes if isinstance(o, credentials.Recorded)]
        assert len(recorded) == 1, outcomes
        assert len(list(credentials.current_credentials(engine))) == 1
        assert audit.verify(engine).ok
    finally:
        engine.dispose()


def test_banner_and_dashboard_panel(engine, world, vault):
    from services.reports import dashboard

    assert credentials.banner(engine, world.lea_id) is None
    assert "No TOMS credential recorded" in credentials.dashboard_text(engine, world["helpdesk"])
    recorded = _record(engine, world, vault, None, generated_on=NOW.date(), now=NOW)
    expiry = recorded.expires_at
    assert credentials.banner(engine, world.lea_id, now=expiry - timedelta(days=15)) is None
    level, banner = credentials.banner(engine, world.lea_id, now=expiry - timedelta(days=14))
    assert level == "warning" and "14 days left" in banner
    level, banner = credentials.banner(engine, world.lea_id, now=expiry + timedelta(seconds=1))
    assert level == "error" and "EXPIRED" in banner
    panel = credentials.dashboard_text(engine, world["site"], now=expiry - timedelta(days=65))
    assert panel.splitlines() == [
        "ACTIVE · 65 days left",
        f"Expires {expiry:%Y-%m-%d}",
        "NOT verified with TOMS yet",
    ]
    resets.emergency_reset(engine, world["elpac"], world.lea_id, reason="Laptop with key stolen")
    _record(
        engine,
        world,
        vault,
        None,
        "elpac",
        NEW_SECRET,
        reset_id=resets.open_request(engine, world.lea_id).id,
    )
    [shown] = dashboard.banners(engine, world["helpdesk"])
    assert shown.level == "error" and "EMERGENCY" in shown.text
