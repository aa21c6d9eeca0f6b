"""Latency benchmark: commit-to-vault time of row changes at a steady offered rate.

Workload: the capture benchmark's 8-column tracked table (one sensitive column); a writer commits
transactions of RATE/100 inserts every 10 ms for SECONDS seconds, while the real `pgtrail consume`
and `pgtrail sink` processes run (Kafka acks=all, vault commits before offsets). Latency of a
change = the vault's load time of its row (clock_timestamp() at insert) minus its commit time at
the source, both from the same server clock. Run twice in one command: at a low rate (the
baseline: what the pipeline's own batching and polling cost) and at the target rate. Prints, for
each, the rate offered and the rate the pipeline sustained, p50/p99/max latency, and the peak
RSS of the consumer and the sink.

    python -m bench.latency [--rate 5000] [--baseline-rate 500] [--seconds 30] [--huge 1000000]

Then one transaction of --huge rows: seconds from its commit until the last row is in the vault.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import psycopg

from bench.capture import KAFKA, TABLE, dsn, machine
from pgtrail.install import install

ROOT = Path(__file__).resolve().parents[1]


def _peak_rss_mb(pid: int) -> float:
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


@contextmanager
def _pipeline(name: str):
    """Fresh source and vault databases, the real consumer and sink running on them, streaming,
    with the warm-up row (id -1) in the vault; yields (source connection, loaded(), processes).
    Everything is dropped afterwards."""
    tag = uuid.uuid4().hex[:8]
    source, vault, slot = f"{name}_src_{tag}", f"{name}_vault_{tag}", f"{name}_{tag}"
    with psycopg.connect(dsn("postgres"), autocommit=True) as admin:
        admin.execute(f"create database {source}")
        admin.execute(f"create database {vault}")
    procs: list[subprocess.Popen] = []
    try:
        install(dsn(source), "source")
        install(dsn(vault), "vault")
        with psycopg.connect(dsn(source), autocommit=True) as conn:
            conn.execute(TABLE)
            conn.execute("select script_tracking.track_table('bench_accounts')")
        env = {**os.environ, "PGTRAIL_SOURCE_DSN": dsn(source), "PGTRAIL_SLOT": slot,
               "PGTRAIL_VAULT_DSN": dsn(vault), "PGTRAIL_KAFKA_BOOTSTRAP": KAFKA,
               "PGTRAIL_KAFKA_TOPIC_PREFIX": f"{name}{tag}", "PGTRAIL_SINK_GROUP_ID": f"{name}{tag}",
               "PGTRAIL_CONSUMER_METRICS_PORT": "0", "PGTRAIL_SINK_METRICS_PORT": "0",
               "PGTRAIL_STATUS_INTERVAL": "1", "PGTRAIL_LOG_LEVEL": "WARNING"}
        for cmd in ("consume", "sink"):
            procs.append(subprocess.Popen([sys.executable, "-m", "pgtrail.cli", cmd], env=env, cwd=ROOT,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        with psycopg.connect(dsn(source), autocommit=True) as conn, \
                psycopg.connect(dsn(vault), autocommit=True) as vconn:
            # what is written before the consumer streams its slot is not captured at all
            deadline = time.monotonic() + 60
            while conn.execute("select active from pg_replication_slots where slot_name = %s",
                               (slot,)).fetchone() != (True,):
                if time.monotonic() > deadline:
                    raise SystemExit("the consumer did not start streaming")
                time.sleep(0.1)

            def loaded() -> int:
                return vconn.execute("select count(*) from vault.sat_row_change").fetchone()[0]
            conn.execute("insert into bench_accounts values (-1, 'warm@example.com')")  # the sink's partitions
            deadline = time.monotonic() + 120
            while loaded() < 1 and time.monotonic() < deadline:
                time.sleep(0.1)
            yield conn, vconn, loaded, procs
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        with psycopg.connect(dsn("postgres"), autocommit=True) as admin:
            admin.execute("select pg_drop_replication_slot(slot_name) from pg_replication_slots "
                          "where slot_name = %s", (slot,))
            admin.execute(f"drop database if exists {source} with (force)")
            admin.execute(f"drop database if exists {vault} with (force)")


_INSERT = ("insert into bench_accounts select g, 'user' || g || '@example.com', 'name ' || g, g * 1.25, "
           "g %% 2 = 0, now(), array['a', 'b'], jsonb_build_object('n', g) "
           "from generate_series(%s::bigint, %s::bigint) g")


def run_at(rate: int, seconds: int) -> dict:
    with _pipeline("lat") as (conn, vconn, loaded, procs):
        per_tick = max(1, rate // 100)
        written, next_id = 0, 0
        started = time.monotonic()
        tick = started
        while time.monotonic() - started < seconds:
            conn.execute(_INSERT, (next_id, next_id + per_tick - 1))
            next_id += per_tick
            written += per_tick
            tick += 0.01
            delay = tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        offered = written / (time.monotonic() - started)
        total = written + 1
        drain_deadline = time.monotonic() + 900
        while loaded() < total and time.monotonic() < drain_deadline:
            time.sleep(0.2)
        finished = time.monotonic()
        count = loaded()
        sustained = written / (finished - started)
        p50, p99, worst = vconn.execute(
            "select percentile_cont(0.5) within group (order by lat), percentile_cont(0.99) within group (order by lat), "
            "max(lat) from (select extract(epoch from r.load_ts - s.commit_time) as lat "
            "from vault.sat_row_change r join vault.link_event s using (hk_event) "
            "where (r.primary_key->>'id')::bigint >= 0) x").fetchone()
        rss = [_peak_rss_mb(p.pid) for p in procs]
        return {"rate": rate, "offered": offered, "sustained": sustained, "loaded": count, "expected": total,
                "p50": p50, "p99": p99, "max": worst, "consumer_rss": rss[0], "sink_rss": rss[1]}


def run_huge(rows: int) -> dict:
    """One transaction of `rows` inserts, committed while consumer and sink run: seconds from its
    commit until every row is in the vault, and the processes' peak RSS."""
    with _pipeline("huge") as (conn, _vconn, loaded, procs):
        conn.execute(_INSERT, (0, rows - 1))
        committed = time.monotonic()
        deadline = time.monotonic() + 1800
        while loaded() < rows + 1 and time.monotonic() < deadline:
            time.sleep(0.5)
        seconds = time.monotonic() - committed
        rss = [_peak_rss_mb(p.pid) for p in procs]
        return {"rows": rows, "seconds": seconds, "loaded": loaded() - 1, "consumer_rss": rss[0], "sink_rss": rss[1]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=int, default=5000, help="row changes per second offered")
    ap.add_argument("--baseline-rate", type=int, default=500)
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--max-rate", type=int, default=12000,
                    help="a third run offered more than the pipeline may sustain: its sustained rate (0: skip)")
    ap.add_argument("--huge", type=int, default=1_000_000, help="rows of the one huge transaction (0: skip)")
    args = ap.parse_args()
    print(f"latency benchmark on {machine()}")
    print(f"workload: inserts into an 8-column tracked table (email hashed), transactions of rate/100 rows every "
          f"10 ms for {args.seconds}s; consumer and sink as processes; latency = vault load time - source commit time")
    results = [run_at(args.baseline_rate, args.seconds), run_at(args.rate, args.seconds)]
    if args.max_rate:
        results.append(run_at(args.max_rate, args.seconds))
    for label, r in zip(("baseline", "target", "ceiling"), results):
        lost = "" if r["loaded"] == r["expected"] else f"  ONLY {r['loaded']} of {r['expected']} LOADED"
        print(f"  {label:<8} offered {r['offered']:7,.0f}/s  sustained {r['sustained']:7,.0f}/s  "
              f"p50 {r['p50'] * 1000:8.0f} ms  p99 {r['p99'] * 1000:8.0f} ms  max {r['max'] * 1000:8.0f} ms  "
              f"peak RSS consumer {r['consumer_rss']:.0f} MB, sink {r['sink_rss']:.0f} MB{lost}")
    base, target = results[:2]
    print(f"ratio target/baseline p99: {target['p99'] / base['p99']:.1f}x; "
          f"sustained/offered at the target rate: {target['sustained'] / target['offered']:.2f}")
    if args.huge:
        h = run_huge(args.huge)
        lost = "" if h["loaded"] == h["rows"] else f"  ONLY {h['loaded']:,} LOADED"
        print(f"  one {h['rows']:,}-row transaction: commit -> all in the vault in {h['seconds']:.1f}s "
              f"({h['rows'] / h['seconds']:,.0f} rows/s); peak RSS consumer {h['consumer_rss']:.0f} MB, "
              f"sink {h['sink_rss']:.0f} MB{lost}")


if __name__ == "__main__":
    main()
