"""Least privilege, tamper resistance, versioned install/upgrade/uninstall, heartbeat."""
import time
import uuid
from urllib.request import urlopen

import psycopg
import pytest

from pgtrail.install import install, uninstall
from tests.conftest import dsn
from tests.integration.conftest import ROOT, wait_until


@pytest.fixture
def roles(src, source_db):
    """A table owner without pgtrail rights, and a login role for the consumer."""
    tag = uuid.uuid4().hex[:6]
    owner, consumer = f"owner_{tag}", f"cdc_{tag}"
    src.execute(f"create role {owner} login password 'pw-{owner}'")
    src.execute(f"create role {consumer} login replication password 'pw-{consumer}' in role pgtrail_consumer")
    src.execute(f'grant create on database "{source_db}" to {owner}')
    yield owner, consumer
    src.execute("select pg_terminate_backend(pid) from pg_stat_activity where usename in (%s, %s)", (owner, consumer))
    time.sleep(0.2)
    for r in (owner, consumer):
        src.execute(f"drop owned by {r} cascade")
        src.execute(f"drop role {r}")


def test_a_role_that_does_not_own_tracking_cannot_disable_it(src, source_db, roles):
    owner, _ = roles
    with psycopg.connect(dsn(source_db, owner, f"pw-{owner}"), autocommit=True) as conn:
        conn.execute(f"create schema s_{owner}")
        conn.execute(f"create table s_{owner}.t (id int primary key)")
        src.execute(f"select script_tracking.track_table('s_{owner}.t')")
        attempts = [
            f"drop trigger pgtrail_context on s_{owner}.t",
            f"alter table s_{owner}.t disable trigger pgtrail_context",
            f"alter table s_{owner}.t disable trigger all",
            f"alter table s_{owner}.t enable replica trigger pgtrail_context",
            f"select script_tracking.untrack_table('s_{owner}.t')",
            f"select script_tracking.untrack_schema('s_{owner}')",
            "drop event trigger pgtrail_ddl_command_end",
            "alter event trigger pgtrail_sql_drop disable",
            "drop schema script_tracking cascade",
            "drop function script_tracking._emit(text, jsonb, boolean)",
            "select * from script_tracking.signing_key",
            "select * from script_tracking.signing_keys()",
            "select script_tracking._emit('ddl', '{}'::jsonb, true)",
            "delete from script_tracking.tracked_schemas",
            "insert into script_tracking.column_classification values ('a', 'b', 'c', 'NONE', 'keep')",
            "select script_tracking.set_audit_hook('pg_catalog.now()')",
            "set session_replication_role = replica",
            "select script_tracking.track_table('pg_catalog.pg_class')",
        ]
        for sql in attempts:
            with pytest.raises(psycopg.Error) as err:
                conn.execute(sql)
            assert err.value.sqlstate in ("42501", "42809"), (sql, err.value.sqlstate, err.value)
        # still tracked, still enabled
        assert src.execute("select tgenabled from pg_trigger where tgname = 'pgtrail_context' "
                           "and tgrelid = %s::regclass", (f"s_{owner}.t",)).fetchone() == ("O",)
        # what the owner may do: use the API and the table
        conn.execute("select track_operation('allowed', 'TESTING')")
        conn.execute(f"insert into s_{owner}.t values (1)")
        conn.execute(f"drop table s_{owner}.t")  # dropping the whole table is DDL, and tracked as such


def test_the_pipeline_runs_with_least_privilege(pipeline, roles):
    """The consumer as a role with REPLICATION and pgtrail_consumer only; heartbeats advance the slot."""
    _, consumer = roles
    pipeline.env["PGTRAIL_SOURCE_DSN"] = dsn(pipeline.source_db, consumer, f"pw-{consumer}")
    pipeline.env["PGTRAIL_HEARTBEAT_INTERVAL"] = "1"
    pipeline.start("consumer")
    pipeline.start("sink")
    with pipeline.source() as conn:
        conn.execute("create table lp (id int primary key)")
        conn.execute("select script_tracking.track_table('lp')")
        conn.execute("insert into lp values (1)")
    wait_until(lambda: pipeline.vault_count("select count(*) from vault.sat_row_change where table_name = 'lp'"),
               60, what="the row change, captured by the least-privileged consumer")

    def slot_lsn():
        with pipeline.source() as conn:
            return conn.execute("select confirmed_flush_lsn from pg_replication_slots where slot_name = %s",
                                (pipeline.slot,)).fetchone()[0]
    before = slot_lsn()
    # nothing happens in this database now; only heartbeats move the slot
    wait_until(lambda: slot_lsn() > before, 30, what="the idle database's slot to advance")
    metrics = urlopen(f"http://127.0.0.1:{pipeline.consumer_port}/metrics", timeout=5).read().decode()
    rtt = [line for line in metrics.splitlines() if line.startswith("pgtrail_consumer_heartbeat_rtt_seconds{")]
    assert rtt and 0 < float(rtt[0].split()[-1]) < 5, rtt
    assert pipeline.topic_size("heartbeat") >= 1


def test_the_consumer_refuses_a_role_that_may_not_read_the_keys(pipeline, roles):
    owner, _ = roles
    with pipeline.source() as conn:
        conn.execute(f"alter role {owner} replication")
    pipeline.env["PGTRAIL_SOURCE_DSN"] = dsn(pipeline.source_db, owner, f"pw-{owner}")
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, "-m", "pgtrail.cli", "consume"], env=pipeline.env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "GRANT pgtrail_consumer" in proc.stderr and "Traceback" not in proc.stderr


def test_install_upgrade_uninstall_are_idempotent(source_db, src):
    src.execute("create table keep_me (id int primary key)")
    src.execute("select script_tracking.track_table('keep_me')")
    key_before = src.execute("select key from script_tracking.signing_key").fetchall()
    install(dsn(source_db), "source")  # again: an upgrade in place
    install(dsn(source_db), "source")
    assert src.execute("select key from script_tracking.signing_key").fetchall() == key_before  # key kept
    versions = [r[0] for r in src.execute("select version from script_tracking.install_history order by 1")]
    assert versions == [max(int(p.name[:3]) for p in (ROOT / "sql" / "source").glob("[0-9]*.sql"))] == [9]
    assert src.execute("select count(*) from pg_event_trigger where evtname like 'pgtrail%'").fetchone()[0] == 4
    assert src.execute("select count(*) from pg_trigger where tgname = 'pgtrail_context'").fetchone()[0] == 1
    uninstall(dsn(source_db), "source")
    uninstall(dsn(source_db), "source")
    assert src.execute("select count(*) from pg_event_trigger where evtname like 'pgtrail%'").fetchone()[0] == 0
    assert src.execute("select count(*) from pg_trigger where tgname = 'pgtrail_context'").fetchone()[0] == 0
    assert src.execute("select to_regnamespace('script_tracking')").fetchone()[0] is None
    assert src.execute("select to_regclass('keep_me')").fetchone()[0] == "keep_me"  # user data untouched
    install(dsn(source_db), "source")
    src.execute("create table after_reinstall (id int)")  # DDL works again, tracked again
    assert src.execute("select count(*) from script_tracking.signing_key").fetchone()[0] == 1


def test_every_tracking_function_pins_its_search_path(src):
    rows = src.execute("""
        select p.oid::regprocedure::text, p.prosecdef, p.proconfig
          from pg_proc p join pg_namespace n on n.oid = p.pronamespace
         where n.nspname = 'script_tracking'""").fetchall()
    assert rows
    for name, secdef, config in rows:
        if secdef:
            assert config and any(c.startswith("search_path=pg_catalog") for c in config), name
    definers = {r[0] for r in rows if r[1]}
    assert "script_tracking._emit(text,jsonb,boolean)" in definers
    public = {r[0] for r in src.execute("""
        select p.oid::regprocedure::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace
         where n.nspname = 'script_tracking' and has_function_privilege('public', p.oid, 'execute')""")}
    assert "script_tracking._emit(text,jsonb,boolean)" not in public
    assert "script_tracking.signing_keys()" not in public
    assert "script_tracking.track_table(regclass)" not in public


def test_roles_databases_and_alter_system_changes_are_detected_at_the_heartbeat(src, capture):
    from schemas import DdlEvent
    src.execute("select script_tracking.heartbeat()")  # baseline snapshot
    role = f"ghost_{uuid.uuid4().hex[:6]}"
    src.execute(f"create role {role} nologin")
    src.execute(f"alter role {role} createdb")
    src.execute("select script_tracking.heartbeat()")  # sees the change
    src.execute("select script_tracking.heartbeat()")  # nothing new: no second event
    try:
        events = capture.read()
    finally:
        src.execute(f"drop role {role}")
    changes = [e for e in events if isinstance(e, DdlEvent) and e.payload.command_tag == "GLOBAL OBJECTS CHANGED"]
    assert len(changes) == 2, [getattr(e.payload, "command_tag", e.kind) for e in events]
    roles = {r["name"]: r for r in changes[-1].payload.definition["roles"]}
    assert roles[role]["create_db"] is True and roles[role]["login"] is False
    assert "password" not in str(changes[-1].payload.definition).lower()
    assert changes[-1].actor is None  # who did it is not knowable from here; no false attribution
