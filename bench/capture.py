"""Capture benchmark: pg_recvlogical (the ceiling: PostgreSQL's own wal2json decoding) against
pgtrail's consumer publishing to Kafka with acks=all, on the same workload and wal2json options.

Workload: ROWS inserts (in transactions of 10,000) then ROWS updates (the same rows), on a tracked
table with 8 columns of mixed types, one of them sensitive (email). Both readers start from slots
created before the workload, so both decode exactly the same WAL.

    python -m bench.capture [--rows 100000]
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import time
import uuid

import psycopg

from consumer.service import CaptureService
from consumer.source import SourceSession
from consumer.stream import WAL2JSON_OPTIONS, ReplicationStream
from pgtrail.install import install
from publisher import KafkaPublisher, KafkaSettings
from publisher.topics import ensure_topics

PG_HOST = os.environ.get("PGTRAIL_TEST_PG_HOST", "127.0.0.1")
PG_PORT = os.environ.get("PGTRAIL_PG_PORT", "54329")
KAFKA = os.environ.get("PGTRAIL_KAFKA_BOOTSTRAP", "127.0.0.1:19092")


def dsn(db: str) -> str:
    return f"host={PG_HOST} port={PG_PORT} user=postgres dbname={db}"


TABLE = """create table bench_accounts (
    id bigint primary key, email text not null, name text, balance numeric(18,2), active boolean,
    created_at timestamptz, tags text[], profile jsonb)"""


def workload(db: str, rows: int) -> None:
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


def client_ceiling(kafka: KafkaSettings, count: int) -> float:
    """Seconds kafka-python alone takes to send `count` copies of one of the run's real records
    (same key, value and headers, same producer settings) until all are acknowledged: the most
    any consumer built on this client could do, whatever it did before sending."""
    from kafka import KafkaConsumer, KafkaProducer
    consumer = KafkaConsumer(kafka.topic("dml"), auto_offset_reset="earliest", group_id=None,
                             consumer_timeout_ms=10000, **kafka.client_options())
    sample = next(iter(consumer))
    consumer.close()
    producer = KafkaProducer(acks="all", enable_idempotence=True, max_in_flight_requests_per_connection=5,
                             linger_ms=kafka.linger_ms, batch_size=kafka.batch_size,
                             max_request_size=kafka.max_request_size, **kafka.client_options())
    topic = kafka.topic("ceiling")
    producer.send(topic, value=b"warm-up").get(timeout=60)
    t0 = time.perf_counter()
    for _ in range(count):
        producer.send(topic, value=sample.value, key=sample.key, headers=sample.headers)
    producer.flush()
    elapsed = time.perf_counter() - t0
    producer.close()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000, help="rows inserted, then updated (changes = 2 x rows)")
    args = ap.parse_args()
    tag = uuid.uuid4().hex[:8]
    db = f"bench_{tag}"
    with psycopg.connect(dsn("postgres"), autocommit=True) as admin:
        admin.execute(f"create database {db}")
    try:
        install(dsn(db), "source")
        with psycopg.connect(dsn(db), autocommit=True) as conn:
            conn.execute(TABLE)
            conn.execute("select script_tracking.track_table('bench_accounts')")
            for slot in ("bench_recv", "bench_pgtrail"):
                conn.execute("select pg_create_logical_replication_slot(%s, 'wal2json')", (slot,))
        t0 = time.perf_counter()
        workload(db, args.rows)
        t_load = time.perf_counter() - t0
        with psycopg.connect(dsn(db), autocommit=True) as conn:
            end = conn.execute("select pg_current_wal_lsn()::text").fetchone()[0]
        changes = 2 * args.rows

        # Baseline: PostgreSQL's own decoding, read by pg_recvlogical with the consumer's options.
        cmd = ["pg_recvlogical", "-h", PG_HOST, "-p", PG_PORT, "-U", "postgres", "-d", db, "-S", "bench_recv",
               "--start", "--no-loop", "-E", end, "-f", "/dev/null"]
        for k, v in WAL2JSON_OPTIONS.items():
            cmd += ["-o", f"{k}={v}"]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        t_recv = time.perf_counter() - t0

        # pgtrail: replication stream -> events -> Kafka, acknowledged.
        kafka = KafkaSettings(bootstrap=KAFKA, topic_prefix=f"bench{tag}")
        ensure_topics(kafka, ["ddl", "dml", "operation"])
        stream = ReplicationStream(dsn(db), "bench_pgtrail", status_interval=10)
        service = CaptureService(stream, KafkaPublisher(kafka), SourceSession(dsn(db)), "bench_pgtrail",
                                 max_pending_events=20_000, heartbeat_interval=0)
        t0 = time.perf_counter()
        service.run(until=lambda: service.tracker.acked >= changes)
        t_pgtrail = time.perf_counter() - t0
        service.publisher.close()
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        t_client = client_ceiling(kafka, changes)
        recv_rate, pgtrail_rate = changes / t_recv, changes / t_pgtrail
        print()
        print("pgtrail capture benchmark")
        print(f"  machine   : {machine()}")
        print(f"  workload  : {args.rows:,} inserts + {args.rows:,} updates = {changes:,} row changes on an "
              f"8-column tracked table (loaded in {t_load:.1f}s)")
        print(f"  options   : wal2json {' '.join(f'{k}={v}' for k, v in WAL2JSON_OPTIONS.items())}")
        print(f"  baseline  : pg_recvlogical          {t_recv:7.2f}s  {recv_rate:10,.0f} changes/s")
        print(f"  pgtrail   : consumer -> Kafka (ack) {t_pgtrail:7.2f}s  {pgtrail_rate:10,.0f} changes/s  "
              f"(peak RSS {rss_mb:.0f} MB)")
        print(f"  client    : kafka-python alone      {t_client:7.2f}s  {changes / t_client:10,.0f} records/s  "
              "(the same records, pre-serialised, nothing else in the process)")
        print(f"  ratio     : pgtrail / pg_recvlogical = {pgtrail_rate / recv_rate:.3f}; "
              f"kafka-python alone / pg_recvlogical = {changes / t_client / recv_rate:.3f} (the client's ceiling)")
    finally:
        with psycopg.connect(dsn("postgres"), autocommit=True) as admin:
            for slot in ("bench_recv", "bench_pgtrail"):
                admin.execute("select pg_drop_replication_slot(slot_name) from pg_replication_slots "
                              "where slot_name = %s and database = %s", (slot, db))
            admin.execute(f"drop database if exists {db} with (force)")


if __name__ == "__main__":
    main()
