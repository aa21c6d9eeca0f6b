"""Capture benchmark: pg_recvlogical (the ceiling: PostgreSQL's own wal2json decoding) against
pgtrail's consumer publishing to Kafka with acks=all through each driver, and each driver's own
floor (a bare loop sending the very records pgtrail produced), on the same WAL.

Workload: ROWS inserts (in transactions of 10,000) then ROWS updates (the same rows), on a tracked
table with 8 columns of mixed types, one of them sensitive (email, hashed): every feature on
(attribution from the signed context message, redaction, tags, CloudEvents headers). Every reader
has its own slot created before the workload, so all decode exactly the same WAL. Each measured
run is a process of its own, so its peak RSS is its own. Each starts on a settled server (no
autovacuum worker running, a fresh checkpoint): the workload's own autovacuum would otherwise
run during the baseline, which comes first.

    python -m bench.capture [--rows 100000] [--clients librdkafka,kafka-python]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
import uuid

from consumer.stream import WAL2JSON_OPTIONS
from pgtrail import local

PG_HOST = os.environ.get("PGTRAIL_TEST_PG_HOST", "127.0.0.1")
PG_PORT = str(local.pg_port())
KAFKA = os.environ.get("PGTRAIL_KAFKA_BOOTSTRAP", local.default_bootstrap())
CLIENTS = ("librdkafka", "kafka-python")


def dsn(db: str) -> str:
    return f"host={PG_HOST} port={PG_PORT} user=postgres dbname={db}"


def settle(timeout: float = 120.0) -> None:
    """Wait until no autovacuum worker runs (at most `timeout` seconds), then checkpoint: each timed
    run starts from the same server state, not in the aftermath of the run before it (the
    autovacuum of the tables it filled, the checkpoint its WAL asks for)."""
    import psycopg   # not at the top: the measured children load only what `pgtrail consume` loads
    with psycopg.connect(dsn("postgres"), autocommit=True) as conn:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and conn.execute(
                "select count(*) from pg_stat_activity where backend_type = 'autovacuum worker'").fetchone()[0]:
            time.sleep(0.2)
        conn.execute("checkpoint")


TABLE = """create table bench_accounts (
    id bigint primary key, email text not null, name text, balance numeric(18,2), active boolean,
    created_at timestamptz, tags text[], profile jsonb)"""


def workload(db: str, rows: int) -> None:
    import psycopg
    with psycopg.connect(dsn(db), autocommit=True) as conn:
        conn.execute("set application_name = 'pgtrail-bench'")
        for start in range(0, rows, 10000):
            conn.execute(
                "insert into bench_accounts select g, 'user' || g || '@example.com', 'name ' || g, g * 1.25, "
                "g %% 2 = 0, now(), array['a', 'b'], jsonb_build_object('n', g) "
                "from generate_series(%s::bigint, %s::bigint) g", (start, min(rows, start + 10000) - 1))
        for start in range(0, rows, 10000):
            conn.execute("update bench_accounts set balance = balance + 1 where id between %s::bigint and %s::bigint",
                         (start, min(rows, start + 10000) - 1))


def machine() -> str:
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}, Python {platform.python_version()}"


def _peak_mb() -> float:
    """This process's own peak RSS (VmHWM). Not ru_maxrss: a child's ru_maxrss starts from its
    parent's peak at the fork (Linux carries it over exec), so a big parent would show in it."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ------------------------------------------------------------------ one measured run per process

def run_pgtrail(db: str, slot: str, client: str, prefix: str, changes: int) -> dict:
    from consumer.service import CaptureService
    from consumer.source import SourceSession
    from consumer.stream import ReplicationStream
    from consumer.settings import ConsumerSettings
    from publisher import KafkaSettings, make_publisher

    kafka = KafkaSettings(bootstrap=KAFKA, topic_prefix=prefix, client=client)
    pending = ConsumerSettings.model_fields["max_pending_events"].default  # what `pgtrail consume` uses
    service = CaptureService(ReplicationStream(dsn(db), slot, status_interval=10), make_publisher(kafka),
                             SourceSession(dsn(db)), slot, max_pending_events=pending, heartbeat_interval=0)
    t0 = time.perf_counter()
    service.run(until=lambda: service.tracker.acked >= changes)
    elapsed = time.perf_counter() - t0
    service.publisher.close()
    return {"seconds": elapsed, "rss_mb": _peak_mb(), "acked": service.tracker.acked,
            "child_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def _records(prefix: str, count: int) -> list:
    """The records pgtrail wrote (key, value, headers), read back once."""
    from kafka import KafkaConsumer
    consumer = KafkaConsumer(f"{prefix}.dml", bootstrap_servers=KAFKA.split(","), auto_offset_reset="earliest",
                             group_id=None, consumer_timeout_ms=10000, max_partition_fetch_bytes=8 << 20)
    out = []
    for rec in consumer:
        out.append((rec.key, rec.value, rec.headers))
        if len(out) >= count:
            break
    consumer.close()
    return out


def run_floor(client: str, prefix: str, count: int) -> dict:
    """A bare loop sending pgtrail's own records through the driver with the same producer
    settings (acks=all, idempotent), counting acknowledgements: what any consumer built on this
    driver could do at most, whatever it did before sending."""
    from publisher import KafkaSettings, make_publisher
    records = _records(prefix, count)
    # one process: the driver as a bare loop would use it (kafka-python's own process arrangement
    # is pgtrail's, measured against this)
    kafka = KafkaSettings(bootstrap=KAFKA, topic_prefix=prefix + "f", client=client, python_client_process=False)
    pub = make_publisher(kafka, client_id="bench-floor")
    topic = kafka.topic("dml")
    acked = [0]

    def done(err, _msg=None):
        if err is None:
            acked[0] += 1
    pub.send(topic, b"warm-up", b"warm-up", [], done)
    pub.flush(60)
    acked[0] = 0
    t0 = time.perf_counter()
    for i, (key, value, headers) in enumerate(records):
        pub.send(topic, key, value, headers, done)
        if i % 500 == 0:
            pub.poll(0)
    pub.flush(120)
    elapsed = time.perf_counter() - t0
    pub.close()
    return {"seconds": elapsed, "rss_mb": _peak_mb(), "acked": acked[0], "sent": len(records)}


def warm_broker(prefix: str, count: int) -> dict:
    """Send `count` records shaped like pgtrail's (700 bytes, six headers, acks=all) to a scratch
    topic and wait for them: a freshly started broker's JVM compiles its produce path during its
    first seconds of load, and that would land on whichever run comes first. Measured on one
    machine: the same unchanged consumer ran at 0.45x pg_recvlogical on a just-started broker and
    0.60x in the next run; the broker's own CPU for 200,000 records fell 2.0 -> 1.3 -> 1.1 s over
    three runs. Run in a child so its memory does not count in the measured processes' peaks."""
    from publisher import KafkaSettings, make_publisher
    kafka = KafkaSettings(bootstrap=KAFKA, topic_prefix=prefix, client="librdkafka")
    pub = make_publisher(kafka, client_id="bench-warm-up")
    topic = kafka.topic("dml")
    value = b"x" * 700
    headers = [("ce_specversion", b"1.0"), ("ce_id", b"0" * 36), ("ce_source", b"pgtrail://bench"),
               ("ce_type", b"dev.pgtrail.dml.v1"), ("content-type", b"application/json"), ("ce_time", b"0" * 32)]
    t0 = time.perf_counter()
    for i in range(count):
        pub.send(topic, b"%d" % (i % 97), value, headers, lambda err, msg=None: None)
        if i % 500 == 0:
            pub.poll(0)
    pub.flush(120)
    pub.close()
    return {"seconds": time.perf_counter() - t0}


def _child(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "bench.capture", *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ the run

def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000, help="rows inserted, then updated (changes = 2 x rows)")
    ap.add_argument("--clients", default=",".join(CLIENTS), help="drivers to measure")
    ap.add_argument("--warm-up", type=int, default=500_000, help="records sent to warm the broker first (0: none)")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        from pgtrail.runtime import tune_for_throughput
        tune_for_throughput()  # as `pgtrail consume` does; the floors get it too
        what, rest = args.child[0], args.child[1:]
        if what == "warm-up":
            print(json.dumps(warm_broker(rest[0], int(rest[1]))))
        elif what == "pgtrail":
            db, slot, client, prefix, changes = rest
            print(json.dumps(run_pgtrail(db, slot, client, prefix, int(changes))))
        else:
            client, prefix, count = rest
            print(json.dumps(run_floor(client, prefix, int(count))))
        return
    import psycopg
    from pgtrail.install import install
    from publisher import KafkaSettings
    from publisher.topics import ensure_topics

    clients = [c for c in args.clients.split(",") if c]
    tag = uuid.uuid4().hex[:8]
    db = f"bench_{tag}"
    slots = {"recv": "bench_recv", **{c: f"bench_{c.replace('-', '_')}" for c in clients}}
    with psycopg.connect(dsn("postgres"), autocommit=True) as admin:
        admin.execute(f"create database {db}")
    try:
        install(dsn(db), "source")
        with psycopg.connect(dsn(db), autocommit=True) as conn:
            conn.execute(TABLE)
            conn.execute("select script_tracking.track_table('bench_accounts')")
            for slot in slots.values():
                conn.execute("select pg_create_logical_replication_slot(%s, 'wal2json')", (slot,))
        t0 = time.perf_counter()
        workload(db, args.rows)
        t_load = time.perf_counter() - t0
        with psycopg.connect(dsn(db), autocommit=True) as conn:
            end = conn.execute("select pg_current_wal_lsn()::text").fetchone()[0]
        changes = 2 * args.rows
        t_warm = 0.0
        if args.warm_up:
            ensure_topics(KafkaSettings(bootstrap=KAFKA, topic_prefix=f"bench{tag}w"), ["dml"])
            t_warm = _child("--child", "warm-up", f"bench{tag}w", str(args.warm_up))["seconds"]

        # Baseline: PostgreSQL's own decoding, read by pg_recvlogical with the consumer's options.
        cmd = ["pg_recvlogical", "-h", PG_HOST, "-p", PG_PORT, "-U", "postgres", "-d", db, "-S", slots["recv"],
               "--start", "--no-loop", "-E", end, "-f", "/dev/null"]
        for k, v in WAL2JSON_OPTIONS.items():
            cmd += ["-o", f"{k}={v}"]
        settle()   # before every timed run: the workload's autovacuum runs now, not during the baseline
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        t_recv = time.perf_counter() - t0
        recv_rate = changes / t_recv

        results = {}
        for client in clients:
            prefix = f"bench{tag}{client[:2]}"
            ensure_topics(KafkaSettings(bootstrap=KAFKA, topic_prefix=prefix), ["dml", "ddl", "operation"])
            ensure_topics(KafkaSettings(bootstrap=KAFKA, topic_prefix=prefix + "f"), ["dml"])
            settle()
            pg = _child("--child", "pgtrail", db, slots[client], client, prefix, str(changes))
            settle()
            floor = _child("--child", "floor", client, prefix, str(changes))
            results[client] = (pg, floor)

        print()
        print("pgtrail capture benchmark")
        print(f"  machine   : {machine()}")
        print(f"  workload  : {args.rows:,} inserts + {args.rows:,} updates = {changes:,} row changes on an "
              f"8-column tracked table, email hashed, attributed (loaded in {t_load:.1f}s)")
        print(f"  options   : wal2json {' '.join(f'{k}={v}' for k, v in WAL2JSON_OPTIONS.items())}; "
              "Kafka acks=all, idempotent, 3 partitions, one local broker"
              + (f", warmed by {args.warm_up:,} records first ({t_warm:.1f}s)" if args.warm_up else ", not warmed"))
        print(f"  baseline  : pg_recvlogical -> /dev/null        {t_recv:7.2f}s {recv_rate:10,.0f} changes/s")
        for client, (pg, floor) in results.items():
            pg_rate, floor_rate = changes / pg["seconds"], floor["sent"] / floor["seconds"]
            print(f"  pgtrail   : consumer -> Kafka ({client:12s})  {pg['seconds']:7.2f}s {pg_rate:10,.0f} changes/s"
                  f"  {pg_rate / recv_rate:5.2f}x pg_recvlogical  peak RSS {pg['rss_mb']:.0f} MB"
                  + (f" + {pg['child_rss_mb']:.0f} MB (its kafka-python process)" if pg.get("child_rss_mb") else ""))
            print(f"  floor     : bare loop, same records ({client:12s}) {floor['seconds']:6.2f}s "
                  f"{floor_rate:10,.0f} records/s {floor_rate / recv_rate:5.2f}x pg_recvlogical  "
                  f"peak RSS {floor['rss_mb']:.0f} MB")
            print(f"  ratio     : pgtrail ({client}) / its driver's floor = {pg_rate / floor_rate:.2f}")
    finally:
        with psycopg.connect(dsn("postgres"), autocommit=True) as admin:
            for slot in slots.values():
                admin.execute("select pg_drop_replication_slot(slot_name) from pg_replication_slots "
                              "where slot_name = %s and database = %s", (slot, db))
            admin.execute(f"drop database if exists {db} with (force)")


if __name__ == "__main__":
    main()
