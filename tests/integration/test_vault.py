"""The Data Vault store: idempotent under replays and concurrent sinks, insert-only, tenant-isolated."""
import threading
import uuid
from pathlib import Path

import psycopg
import pytest

from sink.loader import VaultLoader
from tests.conftest import dsn
from tests.unit.conftest import normalize

FIXTURE = Path(__file__).parents[1] / "unit" / "fixtures" / "wal2json_v2_tracked.jsonl"
TABLES = ["hub_database", "hub_object", "hub_event", "hub_actor", "hub_tenant", "hub_script", "link_event_object",
          "link_event_actor", "link_event_tenant", "link_script_event", "sat_event", "sat_ddl", "sat_row_change",
          "sat_operation", "sat_script_execution", "sat_security_event", "sat_object_definition",
          "sat_object_compliance"]


@pytest.fixture
def events():
    return normalize(FIXTURE.read_text().splitlines())[0]


def counts(db):
    with psycopg.connect(dsn(db)) as conn:
        return {t: conn.execute(f"select count(*) from vault.{t}").fetchone()[0] for t in TABLES}


def load(db, evs, batch=7):
    loader = VaultLoader(psycopg.connect(dsn(db), autocommit=True))
    new = set()
    for i in range(0, len(evs), batch):
        new |= loader.load(evs[i:i + batch])
    loader.close()
    return new


def test_every_event_lands_once_and_replays_change_nothing(vault_db, events):
    assert load(vault_db, events) == {e.event_id for e in events}
    first = counts(vault_db)
    assert first["hub_event"] == first["sat_event"] == len(events)
    assert first["sat_row_change"] == sum(e.kind == "dml" for e in events)
    assert first["hub_tenant"] == 2 and first["hub_script"] == 1 and first["link_script_event"] == 3
    assert first["sat_object_definition"] > 0 and first["sat_object_compliance"] > 0
    assert load(vault_db, events) == set()  # a replay: nothing new
    assert load(vault_db, events, batch=1) == set()
    assert counts(vault_db) == first


def test_a_batch_partly_in_the_vault_loads_only_what_is_new(vault_db, events):
    """New events go by COPY straight into the vault; one event already there sends the whole batch
    the set-based way (ON CONFLICT DO NOTHING): the rest arrive, nothing twice, nothing half."""
    once = load(vault_db, events, batch=len(events))
    whole = counts(vault_db)
    with psycopg.connect(dsn(vault_db), autocommit=True) as conn:
        conn.execute("set session_replication_role = replica")  # past the insert-only triggers: a fresh vault
        for table in ("sat_object_compliance", "sat_object_definition", "link_script_event", "sat_ddl",
                      "sat_operation", "sat_script_execution", "sat_security_event",
                      "link_event", "hub_script", "hub_tenant", "hub_actor", "hub_object", "hub_database"):
            conn.execute(f"delete from vault.{table}")
    half = events[1::2]
    assert load(vault_db, half, batch=len(half)) == {e.event_id for e in half}
    assert load(vault_db, events, batch=len(events)) == once - {e.event_id for e in half}
    assert counts(vault_db) == whole


def test_a_malformed_lsn_is_a_data_error_and_nothing_of_its_batch_is_written(vault_db, events):
    bad = events[0].model_copy(update={"source": events[0].source.model_copy(update={"commit_lsn": "0/zz"})})
    loader = VaultLoader(psycopg.connect(dsn(vault_db), autocommit=True))
    with pytest.raises(psycopg.errors.InvalidTextRepresentation, match="pg_lsn"):
        loader.load([*events[1:5], bad])
    assert loader.load(events[1:5]) == {e.event_id for e in events[1:5]}   # the loader goes on
    loader.close()
    assert counts(vault_db)["hub_event"] == 4


def test_values_written_by_binary_copy_read_back_as_sent(vault_db, events):
    """The loader's own binary encodings (pg_lsn, jsonb from msgspec's text, text[]) against the
    server's reading of them."""
    dml = next(e for e in events if e.kind == "dml")
    p = dml.payload.model_copy(update={"changed_columns": ["naïve", "a,b", '"q"', "x" * 300],
                                       "new": {"κ": "ü", "n": 12345678901234567890123}})
    ev = dml.model_copy(update={"payload": p, "tags": ["PII", "GDPR"],
                                "source": dml.source.model_copy(update={"commit_lsn": "16/B374D848",
                                                                        "change_lsn": "FFFFFFFF/0"})})
    loader = VaultLoader(psycopg.connect(dsn(vault_db), autocommit=True))
    assert loader.load([ev]) == {ev.event_id}
    loader.close()
    with psycopg.connect(dsn(vault_db)) as conn:
        row = conn.execute("select e.commit_lsn::text, e.change_lsn::text, e.tags, r.changed_columns, "
                           "r.unchanged_toast, r.new_values, r.new_values->>'n' from vault.link_event e "
                           "join vault.sat_row_change r using (hk_event)").fetchone()
    assert row == ("16/B374D848", "FFFFFFFF/0", ["PII", "GDPR"], p.changed_columns, [],
                   {"κ": "ü", "n": 12345678901234567890123}, "12345678901234567890123")


def test_several_sinks_at_once(vault_db, events):
    errors = []

    def run():
        try:
            load(vault_db, events, batch=5)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    c = counts(vault_db)
    assert c["hub_event"] == c["sat_event"] == len(events)
    assert c["link_event_object"] == len(events)


def test_the_vault_is_insert_only(vault_db, events):
    load(vault_db, events)
    with psycopg.connect(dsn(vault_db), autocommit=True) as conn:
        for sql in ("update vault.sat_event set kind = 'x'", "delete from vault.hub_event",
                    "truncate vault.link_event cascade", "delete from vault.sat_object_definition"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="insert-only"):
                conn.execute(sql)


def test_object_history_keeps_only_changes(vault_db, events):
    load(vault_db, events)
    with psycopg.connect(dsn(vault_db)) as conn:
        rows = conn.execute("""select d.dropped, d.definition->'columns' is not null
                                 from vault.sat_object_definition d join vault.hub_object o using (hk_object)
                                where o.object_identity = 'public.accounts' order by d.commit_lsn, d.position""").fetchall()
    # created; column note commented (it becomes PHI); column dropped; table dropped. The tracking
    # trigger's creation is an event of the trigger, and leaves the table's history alone.
    assert rows == [(False, True), (False, True), (False, True), (True, False)]


def test_a_tenant_reader_sees_only_its_tenant(vault_db, events):
    load(vault_db, events)
    tag = uuid.uuid4().hex[:6]
    readers = {"tenant-42": f"r42_{tag}", "tenant-9": f"r9_{tag}"}
    with psycopg.connect(dsn(vault_db), autocommit=True) as conn:
        for tenant, role in readers.items():
            conn.execute("select vault.create_tenant_reader(%s, %s, %s)", (role, tenant, f"pw-{role}"))
        total = conn.execute("select count(*) from vault.event_history").fetchone()[0]
    try:
        seen = {}
        for tenant, role in readers.items():
            with psycopg.connect(dsn(vault_db, role, f"pw-{role}")) as conn:
                tenants = {r[0] for r in conn.execute("select tenant_id from vault.event_history")}
                assert tenants == {tenant}
                for table in ("sat_event", "sat_row_change", "sat_ddl", "sat_script_execution", "hub_event"):
                    n = conn.execute(f"select count(*) from vault.{table}").fetchone()[0]
                    own = conn.execute(f"select count(*) from vault.{table} x join vault.sat_event s "
                                       "using (hk_event) where s.tenant_id = %s", (tenant,)).fetchone()[0]
                    assert n == own, (role, table)
                seen[tenant] = conn.execute("select count(*) from vault.event_history").fetchone()[0]
                execs = conn.execute("select tenant_id from script_tracking.get_execution_history()").fetchall()
                assert {e[0] for e in execs} <= {tenant}
                assert conn.execute("select role_name from vault.tenant_reader").fetchall() == [(role,)]
        assert seen["tenant-42"] > 0 and seen["tenant-9"] > 0
        assert seen["tenant-42"] + seen["tenant-9"] < total  # events without a tenant: no reader sees them
    finally:
        with psycopg.connect(dsn(vault_db), autocommit=True) as conn:
            for role in readers.values():
                conn.execute(f"drop owned by {role}")
                conn.execute(f"drop role {role}")
