"""`pgtrail demo`: a small attributed workload on the source, then its history read from the vault."""
from __future__ import annotations

import time
from datetime import datetime, timezone

import psycopg
from psycopg.rows import dict_row

from consumer.settings import ConsumerSettings
from pgtrail import fleet, history, reports
from pgtrail.errors import Fatal
from pgtrail.install import connect
from sink.settings import SinkSettings

WORKLOAD = [
    "set application_name = 'pgtrail-demo'",
    "set pgtrail.tenant_id = 'acme'",
    "drop table if exists demo.customers",
    "create schema if not exists demo",
    "create table demo.customers (id integer primary key, name text not null, email text)",
    "select script_tracking.track_table('demo.customers')",
    "alter table demo.customers add column phone text",
    "insert into demo.customers (id, name, email) values (1, 'Ada', 'ada@example.com'), "
    "(2, 'Grace', 'grace@example.com'), (3, 'Edsger', 'edsger@example.com')",
    "update demo.customers set email = 'ada@lovelace.example' where id = 1",
    "delete from demo.customers where id = 3",
    "select script_tracking.run_tracked_script('backfill_phones.sql', "
    "'update demo.customers set phone = ''555-0100'' where phone is null', 'MIGRATION', 'DML', "
    "'migrations/backfill_phones.sql', '1.0', null, 'fill in missing phone numbers', 'OPS-42')",
]
# fails on purpose: the failure is recorded although its transaction rolls back
FAILING = ("select script_tracking.run_tracked_script('broken.sql', "
           "'update demo.customers set phone = null; select 1/0', 'MIGRATION', 'DML')")


def run_workload(dsn: str) -> str:
    with connect(dsn, "source", "PGTRAIL_SOURCE_DSN") as conn:
        for statement in WORKLOAD:
            conn.execute(statement)
        try:
            with conn.transaction():
                conn.execute(FAILING)
        except psycopg.errors.DivisionByZero:
            pass
        row = conn.execute("select track_operation('Demo data load', 'MAINTENANCE')").fetchone()
    return str(row[0])


def capture_problem(source_dsn: str, slot: str) -> tuple[str, bool] | None:
    """Why no event of the source may be arriving, from its slot as `pgtrail status` reads it:
    lost, missing, or no consumer streaming it (or the source unreachable). The flag says whether
    it is final (a lost slot: waiting never heals it; the others may be a consumer between
    restarts). None when a consumer streams the slot."""
    st = fleet.probe("source", source_dsn, slot)
    if st.state != "up":
        return f"the source cannot be reached: {st.error}", False
    if st.wal_status == "missing":
        return f"no consumer has created slot {slot!r} on the source", False
    if st.wal_status == "lost":
        return (f"the consumer's slot {slot!r} is lost (its WAL was removed): drop it with `pgtrail slots "
                "--drop-lost` and start the consumer again (`make demo` does both)", True)
    if not st.slot_active:
        return f"no consumer is streaming slot {slot!r}", False
    return None


def wait_for_operation(vault_dsn: str, operation_id: str, timeout: float, source_dsn: str, slot: str) -> None:
    """Wait until the operation is in the vault. A lost slot fails at once; a missing or idle one
    only at the timeout (a consumer backs off up to 30 s between restarts), named in the error."""
    deadline = time.monotonic() + timeout
    next_check = 0.0
    problem = None
    with connect(vault_dsn, "vault", "PGTRAIL_VAULT_DSN") as conn:
        while time.monotonic() < deadline:
            if conn.execute("select 1 from vault.sat_operation where operation_id = %s", (operation_id,)).fetchone():
                return
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + 1.0
                problem = capture_problem(source_dsn, slot)
                if problem is not None and problem[1]:
                    raise Fatal(f"operation {operation_id} cannot reach the vault: {problem[0]}")
            time.sleep(0.25)
    why = f"{problem[0]}; " if problem is not None else ""
    raise Fatal(f"operation {operation_id} did not reach the vault within {timeout:.0f}s: {why}are the consumer "
                "and sink running? (make pipeline; logs in .pgtrail/log/)")


def run_demo(timeout: float = 90.0) -> int:
    consumer = ConsumerSettings()
    source_dsn = consumer.source_dsn.get_secret_value()
    vault_dsn = SinkSettings().vault_dsn.get_secret_value()
    started = datetime.now(timezone.utc)
    print("running the demo workload on the source database ...")
    for statement in WORKLOAD:
        print(f"  {statement}")
    print(f"  {FAILING}  -- fails: division by zero, rolled back")
    op = run_workload(source_dsn)
    print(f"  select track_operation('Demo data load', 'MAINTENANCE')  -> {op}")
    t0 = time.monotonic()
    wait_for_operation(vault_dsn, op, timeout, source_dsn, consumer.slot)
    print(f"\nall events reached the vault in {time.monotonic() - t0:.1f}s; tracked history (read from the vault):\n")
    with connect(vault_dsn, "vault", "PGTRAIL_VAULT_DSN") as conn:
        rows = [r for r in history.fetch(conn, limit=10000) if r["commit_time"] and r["commit_time"] >= started]
    print(history.render_table(rows))
    # the original design's call, where its users type it: in the tracked database (it reads the vault)
    print("\nin the source database: SELECT * FROM script_tracking.get_execution_history(5);\n")
    with connect(source_dsn, "source", "PGTRAIL_SOURCE_DSN") as conn:
        try:
            with conn.cursor(row_factory=dict_row) as cur:
                cur.execute("select * from script_tracking.get_execution_history(5)")
                executions = cur.fetchall()
        except psycopg.Error as exc:  # reports not configured (install source without a vault)
            print(f"  (not available: {str(exc).strip().splitlines()[0]})")
        else:
            print(reports.render_rows(executions, reports.EXECUTION_COLUMNS))
    return 0
