"""Fixtures on the real services. A service that is not running fails the suite; it never skips."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from kafka import KafkaConsumer

from pgtrail.install import install
from tests.conftest import KAFKA, dsn

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session", autouse=True)
def services():
    try:
        psycopg.connect(dsn("postgres"), connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable ({exc}); run `make start` (make test does)", pytrace=False)
    host, port = KAFKA.split(",")[0].rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        pytest.fail(f"Kafka is not reachable at {KAFKA} ({exc}); run `make start`", pytrace=False)


def wait_until(predicate, timeout: float = 60.0, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last value {last!r})")


def _admin():
    return psycopg.connect(dsn("postgres"), autocommit=True)


def _new_database(part: str) -> str:
    name = f"t_{part}_{uuid.uuid4().hex[:8]}"
    with _admin() as conn:
        conn.execute(f'create database "{name}"')
    install(dsn(name), part)
    return name


def _drop_database(name: str) -> None:
    with _admin() as conn:
        conn.execute("select pg_terminate_backend(active_pid) from pg_replication_slots "
                     "where database = %s and active_pid is not null", (name,))
        time.sleep(0.2)
        for (slot,) in conn.execute("select slot_name from pg_replication_slots where database = %s", (name,)).fetchall():
            conn.execute("select pg_drop_replication_slot(%s)", (slot,))
        conn.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture
def source_db():
    name = _new_database("source")
    yield name
    _drop_database(name)


@pytest.fixture
def vault_db():
    name = _new_database("vault")
    yield name
    _drop_database(name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Pipeline:
    """The real `pgtrail consume` and `pgtrail sink` processes on per-test slot, topics and databases."""

    def __init__(self, source_db: str, vault_db: str, tmp: Path, client: str = "librdkafka"):
        tag = uuid.uuid4().hex[:8]
        self.client = client
        self.source_db, self.vault_db = source_db, vault_db
        self.prefix = f"t{tag}"
        self.slot = f"s_{tag}"
        self.consumer_port, self.sink_port = free_port(), free_port()
        self.env = {
            **os.environ,
            "PGTRAIL_SOURCE_DSN": dsn(source_db),
            "PGTRAIL_SLOT": self.slot,
            "PGTRAIL_VAULT_DSN": dsn(vault_db),
            "PGTRAIL_KAFKA_BOOTSTRAP": KAFKA,
            "PGTRAIL_KAFKA_TOPIC_PREFIX": self.prefix,
            "PGTRAIL_KAFKA_CLIENT": client,
            "PGTRAIL_SINK_GROUP_ID": f"{self.prefix}-sink",
            "PGTRAIL_SINK_INSTANCE_ID": f"{self.prefix}-sink-1",
            "PGTRAIL_STATUS_INTERVAL": "1",
            "PGTRAIL_CONSUMER_METRICS_PORT": str(self.consumer_port),
            "PGTRAIL_SINK_METRICS_PORT": str(self.sink_port),
        }
        self.tmp = tmp
        self.procs: dict[str, subprocess.Popen] = {}
        self.starts = {"consumer": 0, "sink": 0}

    def start(self, name: str) -> subprocess.Popen:
        cmd = {"consumer": "consume", "sink": "sink"}[name]
        self.starts[name] += 1
        log = open(self.tmp / f"{name}.{self.starts[name]}.log", "wb")
        proc = subprocess.Popen([sys.executable, "-m", "pgtrail.cli", cmd], env=self.env, cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT)
        self.procs[name] = proc
        port = self.consumer_port if name == "consumer" else self.sink_port
        wait_until(lambda: proc.poll() is not None or _port_open(port), 60, what=f"{name} to start")
        assert proc.poll() is None, f"{name} exited: {self.log(name)}"
        if name == "consumer":
            # the metrics port opens before the slot exists: what a test writes before then is not captured
            def streaming():
                if proc.poll() is not None:
                    return True
                with self.source() as conn:
                    return conn.execute("select active from pg_replication_slots where slot_name = %s",
                                        (self.slot,)).fetchone() == (True,)
            wait_until(streaming, 60, what="the consumer to stream its slot")
            assert proc.poll() is None, f"{name} exited: {self.log(name)}"
        return proc

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(name, None)
        if proc and proc.poll() is None:
            proc.send_signal(sig)
            proc.wait(30)

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.{self.starts[name]}.log").read_text(errors="replace")[-3000:]

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.kill(name, signal.SIGTERM)

    def vault(self) -> psycopg.Connection:
        return psycopg.connect(dsn(self.vault_db), autocommit=True)

    def source(self, **kw) -> psycopg.Connection:
        return psycopg.connect(dsn(self.source_db), autocommit=True, **kw)

    def vault_count(self, sql: str, params=()) -> int:
        with self.vault() as conn:
            return conn.execute(sql, params).fetchone()[0]

    def topic_size(self, kind: str) -> int:
        """Messages ever written to the topic (sum of end offsets)."""
        from kafka import TopicPartition
        consumer = KafkaConsumer(bootstrap_servers=KAFKA.split(","), group_id=None)
        try:
            parts = consumer.partitions_for_topic(f"{self.prefix}.{kind}") or set()
            tps = [TopicPartition(f"{self.prefix}.{kind}", p) for p in parts]
            return sum(consumer.end_offsets(tps).values()) if tps else 0
        finally:
            consumer.close()

    def read_topic(self, kind: str, min_count: int = 1, timeout: float = 60.0) -> list:
        consumer = KafkaConsumer(f"{self.prefix}.{kind}", bootstrap_servers=KAFKA.split(","),
                                 auto_offset_reset="earliest", enable_auto_commit=False, group_id=None,
                                 consumer_timeout_ms=1000)
        records: list = []
        deadline = time.monotonic() + timeout
        try:
            while len(records) < min_count and time.monotonic() < deadline:
                for batch in consumer.poll(timeout_ms=500).values():
                    records.extend(batch)
        finally:
            consumer.close()
        return records


def _port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


# Both Kafka drivers keep every guarantee: modules that test them mark themselves with
# `pytestmark = BOTH_DRIVERS`; elsewhere the pipeline runs the default driver.
KAFKA_CLIENTS = ("librdkafka", "kafka-python")
BOTH_DRIVERS = pytest.mark.parametrize("pipeline", KAFKA_CLIENTS, indirect=True)


@pytest.fixture
def pipeline(source_db, vault_db, tmp_path, request):
    p = Pipeline(source_db, vault_db, tmp_path, getattr(request, "param", "librdkafka"))
    yield p
    p.stop_all()


@pytest.fixture
def capture(source_db):
    from tests.integration.capture import Capture
    cap = Capture(source_db)
    yield cap
    cap.drop()


@pytest.fixture
def src(source_db):
    """An autocommit superuser session on the per-test source database."""
    with psycopg.connect(dsn(source_db), autocommit=True) as conn:
        yield conn


PG_BIN = Path("/usr/lib/postgresql/15/bin")


class SpareCluster:
    """A second, throw-away PostgreSQL cluster for what the shared one must not suffer: settings
    that break it (no wal2json, wal_level=replica) or that lose slots (max_slot_wal_keep_size)."""

    def __init__(self):
        import shutil
        import tempfile
        self.root = Path(tempfile.mkdtemp(prefix="pgtrail-spare-"))
        self.data = self.root / "data"
        self.as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self.port = free_port()
        subprocess.run([*self.as_pg, str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust"],
                       check=True, capture_output=True)
        self.log = self.root / "postgres.log"

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}"

    def start(self, **settings) -> None:
        """(Re)start with these settings on top of a logical-decoding base configuration."""
        base = {"port": self.port, "listen_addresses": "127.0.0.1", "unix_socket_directories": str(self.root),
                "wal_level": "logical", "max_replication_slots": 10, "max_wal_senders": 10, **settings}
        opts = " ".join(f"-c {k}={v}" for k, v in base.items())
        subprocess.run([*self.as_pg, str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", "-l", str(self.log),
                        "-o", opts, "restart"], check=True, capture_output=True)

    def stop(self) -> None:
        subprocess.run([*self.as_pg, str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
                       capture_output=True)


@pytest.fixture(scope="session")
def spare_cluster():
    import shutil
    cluster = SpareCluster()
    yield cluster
    cluster.stop()
    shutil.rmtree(cluster.root, ignore_errors=True)
