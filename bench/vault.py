"""Vault benchmark: load N synthetic events into the full Data Vault model (beside a plain COPY of
the same events into one flat table: the baseline, median of three runs), then time the reports on it.

Workload: N events (default 100,000) of one source: 80% row changes over 50 tables, 15% DDL over
500 objects (each with a table definition of 8 columns), 3% script steps, 2% operations; 20 actors,
10 tenants. Reports timed: `pgtrail history <table>` (one object's history), the whole-vault
history page (latest 1,000 events), the enterprise dashboard and the execution history.

Three vault figures, each into its own fresh vault:
- sequential: one session, one thread, each batch's rows built and loaded in turn (VaultLoader);
- paired sessions: one thread, batch N staged in one session while batch N-1's INSERTs and COMMIT
  run in the other (PairedLoader; N's are sent once N-1 committed);
- the sink: sink/service.py's SinkService itself, fed the very bodies the baseline COPY gets
  (parsed, rows built and PairedLoader driven on the main thread, offsets "committed" to an
  in-memory reader): what `pgtrail sink` does, minus Kafka; and the same with one session
  (VaultLoader on a vault thread, the arrangement before PairedLoader).
The process is tuned as `pgtrail sink` tunes itself (pgtrail/runtime.py): the 100,000 generated
events are frozen out of the garbage collector's view (the sink holds one or two batches, never
the whole workload).

Measured in rounds (default 3), each: the baseline, then every line into a fresh vault; a line's
ratio is the median over the rounds of (that round's baseline / its time), so a slow minute of this
shared machine weighs on both sides of a ratio. The sink lines check that every event was loaded once.
Every timed run (each of the baseline's three COPYs too) starts on a settled server: no autovacuum
worker running and a fresh checkpoint. Without that, the autovacuum PostgreSQL starts on the
tables a run has just filled (13 s for the baseline's three flat tables) and the checkpoint its WAL
asks for are paid by whichever run comes next: a vault line, never the baseline, which runs first.

    python -m bench.vault [--events 100000] [--rounds 3]
"""
from __future__ import annotations

import argparse
import statistics
import time
import uuid
from datetime import datetime, timedelta, timezone

import psycopg

from bench.capture import dsn, machine, settle
from pgtrail import history, reports
from pgtrail.install import install
from pgtrail.runtime import tune_for_throughput
from schemas import (Actor, DdlEvent, DdlPayload, DmlEvent, DmlPayload, OperationEvent, OperationPayload,
                     ScriptEvent, ScriptPayload, Source, event_id)
from sink.loader import PairedLoader, VaultLoader
from sink.reader import ListReader
from sink.service import SinkService
from sink.settings import SinkSettings


def synthetic_events(n: int) -> list:
    start = datetime.now(timezone.utc) - timedelta(days=20)
    events = []
    lsn = 0x1000000
    executions: list[uuid.UUID] = []
    for i in range(n):
        lsn += 0x100
        lsn_text = f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"
        source = Source(system_id="7700000000000000001", database=f"db{i % 3}", slot="bench", xid=1000 + i,
                        commit_lsn=lsn_text, change_lsn=lsn_text, position=0,
                        commit_time=start + timedelta(seconds=i * 17))
        actor = Actor(session_user=f"user{i % 20}", current_user=f"user{i % 20}", application_name="bench",
                      backend_pid=1000 + i % 50, tenant_id=f"tenant{i % 10}")
        eid = event_id(source.system_id, source.database, lsn_text, 0)
        r = i % 100
        if r < 80:
            t = i % 50
            payload = DmlPayload(operation=("insert", "update", "delete")[i % 3], schema_name="app", table=f"t{t}",
                                 primary_key={"id": i}, new={"id": i, "email": "hmac-sha256:ab", "amount": "1.00"},
                                 redacted={"email": "hash"})
            events.append(DmlEvent(event_id=eid, source=source, actor=actor, tags=["PII", "GDPR"], payload=payload))
        elif r < 95:
            obj = f"app.t{i % 500}"
            definition = {"kind": "table", "schema": "app", "name": f"t{i % 500}",
                          "columns": [{"name": f"c{c}", "type": "integer" if (c + i) % 7 else "text", "not_null": c == 0}
                                      for c in range(8)], "constraints": [], "indexes": []}
            payload = DdlPayload(command_tag="ALTER TABLE", object_type="table", schema_name="app",
                                 object_identity=obj, statement=f"alter table {obj} alter column c{i % 8} type text",
                                 definition=definition, untracked=i % 4 == 0)
            events.append(DdlEvent(event_id=eid, source=source, actor=actor, payload=payload))
        elif r < 98:
            if i % 2 or not executions:
                executions.append(uuid.uuid4())
                payload = ScriptPayload(execution_id=executions[-1], status="started", script_name=f"V{i}.sql",
                                        version=str(i), ticket_number=f"OPS-{i}", at=source.commit_time)
            else:
                payload = ScriptPayload(execution_id=executions.pop(), status=("completed", "failed")[i % 3 == 0],
                                        duration_ms=float(i % 5000), rows_affected=i, at=source.commit_time)
            events.append(ScriptEvent(event_id=eid, source=source, actor=actor, payload=payload))
        else:
            payload = OperationPayload(operation_id=uuid.uuid4(), name=f"op{i % 30}", operation_type="MAINTENANCE",
                                       duration_ms=float(i % 900))
            events.append(OperationEvent(event_id=eid, source=source, actor=actor, payload=payload))
    return events


def timed(fn, repeat: int = 5) -> float:
    """Median milliseconds of `repeat` runs (after one warm-up)."""
    fn()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def copy_flat(db: str, bodies: list[str], runs: int = 3) -> float:
    """The baseline: seconds to COPY every body into one flat jsonb table, median of `runs` (each
    into a table of its own), since one COPY on this machine varies by half."""
    samples = []
    with psycopg.connect(dsn(db), autocommit=True) as conn:
        for i in range(runs):
            conn.execute(f"create table flat_events_{i} (body jsonb)")
            settle()
            t0 = time.perf_counter()
            with conn.cursor().copy(f"copy flat_events_{i} (body) from stdin") as copy:
                for body in bodies:
                    copy.write_row((body,))
            samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def load_in_turn(db: str, events: list, batch: int) -> float:
    """Seconds to load every batch, rows and COPY one after the other on one thread."""
    loader = VaultLoader(psycopg.connect(dsn(db), autocommit=True))
    t0 = time.perf_counter()
    for i in range(0, len(events), batch):
        loader.load(events[i:i + batch])
    elapsed = time.perf_counter() - t0
    loader.close()
    return elapsed


def load_paired(db: str, events: list, batch: int) -> float:
    """Seconds to load every batch through two sessions on one thread: stage N, wait for N-1's
    commit, send N."""
    loader = PairedLoader(lambda: psycopg.connect(dsn(db), autocommit=True))
    t0 = time.perf_counter()
    before = None
    for i in range(0, len(events), batch):
        staged = loader.stage(events[i:i + batch])
        if before is not None:
            before.result()
        staged.send()
        before = staged
    before.result()
    elapsed = time.perf_counter() - t0
    loader.close()
    return elapsed


class _NoDeadLetters:
    def flush(self, timeout=None) -> None:
        pass

    def dead_letter(self, *args) -> None:
        raise AssertionError("the workload holds no bad record")


def load_as_the_sink(db: str, bodies: list[bytes], batch: int, paired: bool = True) -> float:
    """Seconds for SinkService.run to take every body into the vault and commit its offset
    (paired=False: with one session, as before PairedLoader)."""
    reader = ListReader(bodies, batch)

    def make_loader():
        if paired:
            return PairedLoader(lambda: psycopg.connect(dsn(db), autocommit=True))
        return VaultLoader(psycopg.connect(dsn(db), autocommit=True))
    service = SinkService(reader, make_loader, _NoDeadLetters(), max_batch=batch, poll_timeout_ms=0,
                          vault_inline=paired)
    t0 = time.perf_counter()
    service.run(until=reader.done)
    elapsed = time.perf_counter() - t0
    service.close()
    return elapsed


LINES = [("full Data Vault model, sequential", "seq"), ("paired sessions, one thread", "paired"),
         ("the sink (parse, rows, paired)", "sink"), ("the sink, one session (as before)", "sink1")]


def one_round(events: list, bodies: list[str], batch: int, keep: str | None) -> dict[str, float]:
    """Seconds of the baseline COPY (median of three) and of each vault line, each vault fresh,
    one after the other. `keep`: the database the sequential line loads, left for the queries."""
    db = keep or f"bench_vault_{uuid.uuid4().hex[:8]}"
    dbs = {"seq": db, "paired": db + "_paired", "sink": db + "_sink", "sink1": db + "_sink1"}
    with psycopg.connect(dsn("postgres"), autocommit=True) as admin:
        for name in dbs.values():
            admin.execute(f"create database {name}")
    try:
        for name in dbs.values():
            install(dsn(name), "vault")
        encoded = [b.encode() for b in bodies]
        runs = {"seq": lambda: load_in_turn(dbs["seq"], events, batch),
                "paired": lambda: load_paired(dbs["paired"], events, batch),
                "sink": lambda: load_as_the_sink(dbs["sink"], encoded, batch),
                "sink1": lambda: load_as_the_sink(dbs["sink1"], encoded, batch, paired=False)}
        t = {"copy": copy_flat(dbs["seq"], bodies)}
        for key, run in runs.items():
            settle()
            t[key] = run()
        for name in (dbs["sink"], dbs["sink1"]):   # the sink lost or doubled nothing
            with psycopg.connect(dsn(name)) as conn:
                loaded = conn.execute("select count(*), count(distinct event_id) from vault.link_event").fetchone()
            if loaded != (len(events), len(events)):
                raise SystemExit(f"the sink loaded {loaded[0]} rows of {loaded[1]} events, not {len(events)}")
        return t
    finally:
        with psycopg.connect(dsn("postgres"), autocommit=True) as admin:
            for name in dbs.values():
                if name != keep:
                    admin.execute(f"drop database if exists {name} with (force)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=SinkSettings.model_fields["max_batch"].default,
                    help="events a vault transaction (default: the sink's own, sink.max_batch)")
    ap.add_argument("--rounds", type=int, default=3, help="each line's ratio is the median over the rounds of "
                    "(that round's baseline / its time)")
    args = ap.parse_args()
    db = f"bench_vault_{uuid.uuid4().hex[:8]}"
    try:
        t0 = time.perf_counter()
        events = synthetic_events(args.events)
        t_gen = time.perf_counter() - t0
        bodies = [e.model_dump_json() for e in events]
        tune_for_throughput()
        rounds = [one_round(events, bodies, args.batch, db if i == 0 else None) for i in range(args.rounds)]

        with psycopg.connect(dsn(db), autocommit=True) as conn:
            conn.execute("analyze")
            n = conn.execute("select count(*) from vault.link_event").fetchone()[0]
            base = timed(lambda: conn.execute("select count(*) from vault.link_event").fetchone())
            h_obj = timed(lambda: history.fetch(conn, "app.t7"))
            h_obj_rows = len(history.fetch(conn, "app.t7"))
            h_all = timed(lambda: history.fetch(conn, limit=1000))
            dash = timed(lambda: reports.dashboard(conn, 30))
            execs = timed(lambda: reports.executions(conn, 50))
        print()
        print("pgtrail vault benchmark")
        print(f"  machine  : {machine()}")
        print(f"  workload : {n:,} events (80% row changes, 15% DDL with definitions, 3% script steps, "
              f"2% operations), generated in {t_gen:.1f}s, loaded in batches of {args.batch}; {args.rounds} "
              f"round{'s' if args.rounds != 1 else ''}, each: the baseline, then every line into a fresh vault")
        copies = [r["copy"] for r in rounds]
        t_copy = statistics.median(copies)
        print(f"  baseline : COPY into one flat jsonb table  {t_copy:7.2f}s  {n / t_copy:10,.0f} events/s"
              f"   (rounds: {', '.join(f'{c:.2f}s' for c in copies)})")
        for label, key in LINES:
            t = statistics.median(r[key] for r in rounds)
            ratios = [r["copy"] / r[key] for r in rounds]
            print(f"  vault    : {label:<34}{t:6.2f}s  {n / t:10,.0f} events/s   ratio vault/COPY = "
                  f"{statistics.median(ratios):.3f}  (rounds: {', '.join(f'{x:.3f}' for x in ratios)})")
        print(f"  queries  : median of 5, baseline count(*) over link_event = {base:.1f} ms")
        for name, ms in [(f"pgtrail history app.t7 ({h_obj_rows} events)", h_obj),
                         ("pgtrail history (latest 1,000 events)", h_all), ("pgtrail dashboard", dash),
                         ("pgtrail executions (50)", execs)]:
            print(f"    {name:<42} {ms:8.1f} ms   ({ms / base:.2f} x count(*))")
    finally:
        with psycopg.connect(dsn("postgres"), autocommit=True) as admin:
            admin.execute(f"drop database if exists {db} with (force)")


if __name__ == "__main__":
    main()
