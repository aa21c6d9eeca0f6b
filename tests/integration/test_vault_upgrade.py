"""`pgtrail install vault` on a vault of a previous model moves it into the event link of part 7 in
one transaction: every report reads the same before and after, the old names still answer, and
loading goes on. Two vaults: one of the model before the link (hub_event, sat_event and three event
links as tables), one of the release before row changes moved into the link (sat_row_change a
table)."""
import gzip
import subprocess
import sys
from pathlib import Path

import psycopg
import psycopg.rows
import pytest

from bench.vault import synthetic_events
from pgtrail import history, reports
from pgtrail.install import install
from sink.loader import VaultLoader
from tests.conftest import dsn
from tests.integration.conftest import ROOT, _admin, _drop_database
from tests.unit.conftest import normalize

FIXTURE = Path(__file__).parent / "fixtures" / "vault_previous.sql.gz"
PART8 = Path(__file__).parent / "fixtures" / "vault_part8.sql.gz"   # made at e689621, parts 1-8
SINCE = "2000-01-01"


def _relkind(conn, name: str) -> str:
    return conn.execute("select relkind::text from pg_class where oid = %s::regclass", (f"vault.{name}",)).fetchone()[0]


# What part 8 added to the execution history (tracked operations, `kind`, `simulated`, 'abandoned'
# for executions left started): left out after the upgrade, so the rest must read the same.
_EXECUTION_COLUMNS = ("execution_id, script_name, script_type, version, status, started_at, finished_at, duration_ms, "
                      "rows_affected, error, ticket_number, business_justification, executed_by, tenant_id, "
                      "database_name")


def _reports(conn, upgraded: bool = False) -> dict:
    q = lambda sql: sorted(map(repr, conn.execute(sql).fetchall()))  # noqa: E731 - a sorted, comparable form
    if upgraded:
        conn.execute("set pgtrail.abandoned_after = '1000 years'")
    executions = reports.executions(conn, 100000)
    if upgraded:
        executions = [{k: v for k, v in r.items() if k not in ("kind", "simulated")}
                      for r in executions if r["kind"] == "script"]
    return {
        # every column the view had before (this release adds hk_event, last)
        "history (all columns)": q(f"select {_columns(conn, 'event_history', ('hk_event',))} from vault.event_history"),
        "execution history": q(f"select {_EXECUTION_COLUMNS} from script_tracking.get_execution_history(100000"
                               + (", include_operations => false)" if upgraded else ")")),
        "dashboard": q(f"select * from script_tracking.get_enterprise_dashboard('{SINCE}')"),
        "definitions": q("select o.object_identity, d.* from vault.hub_object o, "
                         "lateral vault.object_definition_at(o.object_identity, now()) d"),
        "pgtrail history of one object": [repr(r) for r in history.fetch(conn, "app.t7")],
        "pgtrail executions": [repr(r) for r in executions],
        # every column but load_ts: the link keeps one load time per event (the earliest of its old rows)
        "old names": {t: q(f"select {_columns(conn, t)} from vault.{t}") for t in
                      ("hub_event", "sat_event", "link_event_object", "link_event_actor", "link_event_tenant",
                       "sat_row_change")},
    }


def _columns(conn, table: str, leave_out: tuple[str, ...] = ("load_ts",)) -> str:
    return ", ".join(r[0] for r in conn.execute(
        "select attname from pg_attribute where attrelid = %s::regclass and attnum > 0 and not attisdropped "
        "and attname <> all(%s) order by attnum", (f"vault.{table}", list(leave_out))))


def _restore(fixture: Path) -> str:
    name = "t_vault_prev_" + __import__("uuid").uuid4().hex[:8]
    with _admin() as conn:
        conn.execute(f'create database "{name}"')
        conn.execute("do $$ begin if not exists (select 1 from pg_roles where rolname = 'pgtrail_vault_reader') "
                     "then create role pgtrail_vault_reader nologin; end if; end $$")
    sql = gzip.decompress(fixture.read_bytes())
    host, port = "127.0.0.1", dsn("postgres").split("port=")[1].split()[0]
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", host, "-p", port, "-U", "postgres", "-d", name],
                   input=sql, check=True, capture_output=True)
    return name


@pytest.fixture
def previous_vault():
    name = _restore(FIXTURE)
    yield name
    _drop_database(name)


@pytest.fixture
def part8_vault():
    name = _restore(PART8)
    yield name
    _drop_database(name)


def _install(db: str) -> None:
    result = subprocess.run([sys.executable, "-m", "pgtrail.cli", "install", "vault", "--dsn", dsn(db)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def test_a_vault_of_the_previous_model_is_moved_and_reads_the_same(previous_vault):
    with psycopg.connect(dsn(previous_vault), autocommit=True) as conn:
        assert _relkind(conn, "sat_event") == "r" and _relkind(conn, "hub_event") == "r"
        events_before = conn.execute("select count(*) from vault.hub_event").fetchone()[0]
        before = _reports(conn)
    assert events_before > 400 and len(before["history (all columns)"]) == events_before

    _install(previous_vault)
    with psycopg.connect(dsn(previous_vault), autocommit=True) as conn:
        assert _relkind(conn, "link_event") == "r"
        for old in ("hub_event", "sat_event", "link_event_object", "link_event_actor", "link_event_tenant",
                    "sat_row_change"):
            assert _relkind(conn, old) == "v", old
        assert conn.execute("select count(*) from vault.link_event").fetchone()[0] == events_before
        after = _reports(conn, upgraded=True)
    for name in before:
        assert after[name] == before[name], f"{name} differs after the upgrade"
    with psycopg.connect(dsn(previous_vault), autocommit=True) as conn:  # what part 8 adds
        rows = conn.execute("select kind, status, count(*) from script_tracking.get_execution_history(100000) "
                            "group by 1, 2").fetchall()
        assert ("operation", "completed", 9) in rows and ("script", "abandoned", 4) in rows, rows
    with psycopg.connect(dsn(previous_vault), autocommit=True) as conn:  # the latest events: the new model's index
        latest = history.fetch(conn, limit=100000)
        ids = {r[0] for r in conn.execute("select event_id from vault.event_history")}
    assert len(latest) == events_before and {r["event_id"] for r in latest} == ids

    install(dsn(previous_vault), "vault")  # and again: idempotent on the new model
    events = normalize((Path(__file__).parents[1] / "unit" / "fixtures" / "wal2json_v2_basic.jsonl")
                       .read_text().splitlines())[0]
    loader = VaultLoader(psycopg.connect(dsn(previous_vault), autocommit=True))
    try:
        new = loader.load(events)
    finally:
        loader.close()
    assert new == {e.event_id for e in events if e.kind != "heartbeat"} - set() and new
    with psycopg.connect(dsn(previous_vault), autocommit=True) as conn:
        assert conn.execute("select count(*) from vault.hub_event").fetchone()[0] == events_before + len(new)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="insert-only"):
            conn.execute("delete from vault.link_event")


def test_a_vault_of_the_previous_release_moves_its_row_changes_into_the_link(part8_vault):
    with psycopg.connect(dsn(part8_vault), autocommit=True) as conn:
        assert _relkind(conn, "sat_row_change") == "r" and _relkind(conn, "link_event") == "r"
        changes = conn.execute("select count(*) from vault.sat_row_change").fetchone()[0]
        events_before = conn.execute("select count(*) from vault.link_event").fetchone()[0]
        before = _reports(conn)
        # the latest events: found by id in that release's view, by the link's key in this one's
        before["pgtrail history"] = [repr(r) for r in history.fetch(conn, limit=100000)]
    assert changes > 300 and events_before > changes

    _install(part8_vault)
    with psycopg.connect(dsn(part8_vault), autocommit=True) as conn:
        assert _relkind(conn, "sat_row_change") == "v"
        assert conn.execute("select count(*), count(*) filter (where operation is not null), "
                            "count(*) filter (where kind = 'dml') from vault.link_event").fetchone() == (
            events_before, changes, changes)
        after = _reports(conn)
        after["pgtrail history"] = [repr(r) for r in history.fetch(conn, limit=100000)]
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="insert-only"):   # the trigger is back
            conn.execute("update vault.link_event set operation = null")
    for name in before:
        assert after[name] == before[name], f"{name} differs after the upgrade"
    with psycopg.connect(dsn(part8_vault), autocommit=True) as conn:   # candidates change nothing
        cur = conn.cursor(row_factory=psycopg.rows.dict_row)
        for obj, database, limit in [("app.t7", None, 1000), ("t7", None, 3), ("app.t7", "db1", 2), ("t3", "db2", 50),
                                     ("public.accounts", None, 1000), ("accounts", None, 1), ("none.such", None, 9)]:
            args = {"object": obj, "database": database, "limit": limit, "simulated": False}
            reference = cur.execute(history._BY_OBJECT_EARLIER, args).fetchall()
            assert history.fetch(conn, obj, database, limit) == reference, (obj, database, limit)
            assert obj == "none.such" or reference, obj

    install(dsn(part8_vault), "vault")  # and again: idempotent on the new model
    events = synthetic_events(450)[400:]   # the fixture holds the first 400
    loader = VaultLoader(psycopg.connect(dsn(part8_vault), autocommit=True))
    try:
        new = loader.load(events)
    finally:
        loader.close()
    dml = {e.event_id for e in events if e.kind == "dml"}
    assert new == {e.event_id for e in events} and dml
    with psycopg.connect(dsn(part8_vault), autocommit=True) as conn:
        loaded = {r[0] for r in conn.execute("select l.event_id from vault.sat_row_change r "
                                             "join vault.link_event l using (hk_event)")}
        assert conn.execute("select count(*) from vault.sat_row_change").fetchone()[0] == changes + len(dml)
    assert dml <= loaded
