"""On a spare cluster: a lost slot stops the consumer loudly; a stalled Kafka never trips
wal_sender_timeout."""
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from pgtrail.install import install
from tests.conftest import KAFKA, dsn
from tests.integration.conftest import ROOT, free_port, wait_until


def consumer_env(spare, db, prefix, **extra):
    return {**os.environ, "PGTRAIL_SOURCE_DSN": spare.dsn(db), "PGTRAIL_SLOT": f"s_{prefix}",
            "PGTRAIL_KAFKA_BOOTSTRAP": KAFKA, "PGTRAIL_KAFKA_TOPIC_PREFIX": prefix, "PGTRAIL_STATUS_INTERVAL": "1",
            "PGTRAIL_CONSUMER_METRICS_PORT": str(free_port()), **extra}


def fresh_db(spare) -> str:
    db = f"spare_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(spare.dsn(), autocommit=True) as conn:
        conn.execute(f"create database {db}")
    install(spare.dsn(db), "source")
    return db


def test_a_lost_slot_stops_the_consumer_with_a_clear_message(spare_cluster, vault_db):
    spare_cluster.start(max_slot_wal_keep_size="1MB", max_wal_size="64MB", min_wal_size="32MB")
    db = fresh_db(spare_cluster)
    prefix = f"t{uuid.uuid4().hex[:8]}"
    with psycopg.connect(spare_cluster.dsn(db), autocommit=True) as conn:
        conn.execute("select pg_create_logical_replication_slot(%s, 'wal2json')", (f"s_{prefix}",))
        conn.execute("create table filler (id int, pad text)")
        for _ in range(4):  # the consumer is not running: WAL piles up behind the slot
            conn.execute("insert into filler select g, repeat('x', 500) from generate_series(1, 40000) g")
            conn.execute("select pg_switch_wal()")
            conn.execute("checkpoint")
        status = conn.execute("select wal_status from pg_replication_slots where slot_name = %s",
                              (f"s_{prefix}",)).fetchone()[0]
    assert status == "lost", status
    proc = subprocess.run([sys.executable, "-m", "pgtrail.cli", "consume"], env=consumer_env(spare_cluster, db, prefix),
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"slot 's_{prefix}' is lost" in proc.stderr and "cannot be read" in proc.stderr
    assert "pgtrail slots --drop-lost" in proc.stderr

    # `pgtrail demo` says so at once instead of waiting for an event that cannot come
    from pgtrail.demo import wait_for_operation
    from pgtrail.errors import Fatal
    with pytest.raises(Fatal, match=f"cannot reach the vault: the consumer's slot 's_{prefix}' is lost"):
        wait_for_operation(dsn(vault_db), str(uuid.uuid4()), 120, spare_cluster.dsn(db), f"s_{prefix}")

    # --drop-lost drops the configured slot, lost, and nothing else: not a lost slot the
    # configuration does not name (another pgtrail's), not a healthy one
    env = consumer_env(spare_cluster, db, prefix)
    other = consumer_env(spare_cluster, db, f"{prefix}x")
    with psycopg.connect(spare_cluster.dsn(db), autocommit=True) as conn:
        conn.execute("select pg_create_logical_replication_slot(%s, 'wal2json')", (other["PGTRAIL_SLOT"],))
    dropped = subprocess.run([sys.executable, "-m", "pgtrail.cli", "slots", "--drop-lost"], env=other, cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
    assert dropped.returncode == 0 and dropped.stdout == "", dropped.stdout + dropped.stderr
    dropped = subprocess.run([sys.executable, "-m", "pgtrail.cli", "slots", "--drop-lost"], env=env, cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
    assert dropped.returncode == 0, dropped.stderr
    assert f"dropped lost slot s_{prefix} of {db}" in dropped.stdout and "not captured" in dropped.stdout
    with psycopg.connect(spare_cluster.dsn(db), autocommit=True) as conn:
        left = {r[0] for r in conn.execute("select slot_name from pg_replication_slots where database = %s", (db,))}
        assert left == {other["PGTRAIL_SLOT"]}
        conn.execute("select pg_drop_replication_slot(%s)", (other["PGTRAIL_SLOT"],))
    again = subprocess.run([sys.executable, "-m", "pgtrail.cli", "slots", "--drop-lost"], env=env, cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and again.stdout == "", again.stdout + again.stderr


def test_the_demo_names_a_missing_or_idle_slot_when_nothing_arrives(source_db, vault_db):
    """A missing or idle slot may be a consumer between restarts: the demo waits its whole
    timeout (unlike a lost slot, above) and then names the slot's state."""
    from pgtrail.demo import wait_for_operation
    from pgtrail.errors import Fatal
    slot = f"pgtrail_idle_{uuid.uuid4().hex[:6]}"
    with pytest.raises(Fatal, match=f"within 2s: no consumer has created slot '{slot}'"):
        wait_for_operation(dsn(vault_db), str(uuid.uuid4()), 2, dsn(source_db), slot)
    with psycopg.connect(dsn(source_db), autocommit=True) as conn:
        conn.execute("select pg_create_logical_replication_slot(%s, 'wal2json')", (slot,))
    with pytest.raises(Fatal, match=f"within 2s: no consumer is streaming slot '{slot}'"):
        wait_for_operation(dsn(vault_db), str(uuid.uuid4()), 2, dsn(source_db), slot)


def test_a_stalled_kafka_never_trips_wal_sender_timeout(spare_cluster, tmp_path):
    spare_cluster.start(wal_sender_timeout="2s")
    db = fresh_db(spare_cluster)
    prefix = f"t{uuid.uuid4().hex[:8]}"
    with psycopg.connect(spare_cluster.dsn(db), autocommit=True) as conn:
        conn.execute("create table steady (id int primary key)")
        conn.execute("select script_tracking.track_table('steady')")
    env = consumer_env(spare_cluster, db, prefix, PGTRAIL_MAX_PENDING_EVENTS="100", PGTRAIL_HEARTBEAT_INTERVAL="0")
    log = open(tmp_path / "consumer.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "pgtrail.cli", "consume"], env=env, cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT)
    home = Path(os.environ.get("PGTRAIL_HOME") or ROOT / ".pgtrail")
    kafka_pid = int((home / "kafka" / "kafka.pid").read_text())
    try:
        time.sleep(5)  # streaming
        with psycopg.connect(spare_cluster.dsn(db), autocommit=True) as conn:
            os.kill(kafka_pid, signal.SIGSTOP)  # Kafka hangs: no acknowledgements, no errors
            try:
                for i in range(20):
                    conn.execute("insert into steady select g from generate_series(%s::int, %s::int) g",
                                 (i * 100, i * 100 + 99))
                time.sleep(6)  # three times wal_sender_timeout (and less than the broker's own session timeout)
            finally:
                os.kill(kafka_pid, signal.SIGCONT)
        from kafka import KafkaConsumer, TopicPartition
        consumer = KafkaConsumer(bootstrap_servers=KAFKA.split(","))

        def on_kafka():
            parts = consumer.partitions_for_topic(f"{prefix}.dml") or set()
            tps = [TopicPartition(f"{prefix}.dml", p) for p in parts]
            return sum(consumer.end_offsets(tps).values()) if tps else 0
        wait_until(lambda: on_kafka() >= 2000, 120, what="all 2,000 events on Kafka after the stall")
        server_log = [line for line in spare_cluster.log.read_text().splitlines() if "walsender" in line
                      or "timeout" in line]
        assert not server_log, server_log
        assert on_kafka() == 2000
        consumer.close()
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(30)
    text = (tmp_path / "consumer.log").read_text()
    assert "capture interrupted" not in text, text  # the stream never broke
    assert "replication timeout" not in spare_cluster.log.read_text()


def test_a_start_that_fails_leaves_no_slot_and_slots_lists_configured_names(tmp_path):
    """A consumer started where pgtrail's SQL is not installed fails before creating its slot; a
    slot that a failed start did create is dropped again; `pgtrail slots` lists and drops a slot
    named by the configuration even when its name does not start with pgtrail."""
    from consumer.stream import ReplicationStream
    from tests.integration.conftest import _drop_database

    db = f"t_noinstall_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(dsn("postgres"), autocommit=True) as conn:
        conn.execute(f"create database {db}")
    slot = f"app_cdc_{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "PGTRAIL_SOURCE_DSN": dsn(db), "PGTRAIL_SLOT": slot, "PGTRAIL_KAFKA_BOOTSTRAP": KAFKA,
           "PGTRAIL_KAFKA_TOPIC_PREFIX": f"t{uuid.uuid4().hex[:6]}", "PGTRAIL_CONSUMER_METRICS_PORT": "0"}

    def slots_named(name):
        with psycopg.connect(dsn("postgres"), autocommit=True) as conn:
            return conn.execute("select count(*) from pg_replication_slots where slot_name = %s", (name,)).fetchone()[0]

    try:
        proc = subprocess.run([sys.executable, "-m", "pgtrail.cli", "consume"], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert "not installed" in proc.stderr and "pgtrail install source" in proc.stderr
        assert slots_named(slot) == 0

        class FailsAfterCreating(ReplicationStream):  # the start fails once the slot exists
            def _ensure_slot(self):
                super()._ensure_slot()
                raise psycopg2.OperationalError("injected: START_REPLICATION refused")

        import psycopg2
        stream = FailsAfterCreating(dsn(db), slot, 1.0)
        try:
            stream.open()
        except Exception as exc:  # noqa: BLE001 - classified by the stream; what matters is the slot
            assert "injected" in str(exc)
        else:
            raise AssertionError("the injected failure did not happen")
        assert slots_named(slot) == 0

        # a slot by that name, left by anything: listed by `slots`, dropped by `slots --drop`
        with psycopg.connect(dsn(db), autocommit=True) as conn:
            conn.execute("select pg_create_logical_replication_slot(%s, 'wal2json')", (slot,))
        listed = subprocess.run([sys.executable, "-m", "pgtrail.cli", "slots"], env=env, cwd=ROOT,
                                capture_output=True, text=True, timeout=60)
        assert slot in listed.stdout, listed.stdout + listed.stderr
        dropped = subprocess.run([sys.executable, "-m", "pgtrail.cli", "slots", "--drop", slot], env=env, cwd=ROOT,
                                 capture_output=True, text=True, timeout=60)
        assert dropped.returncode == 0 and f"dropped slot {slot}" in dropped.stdout, dropped.stderr
        assert slots_named(slot) == 0
    finally:
        _drop_database(db)
