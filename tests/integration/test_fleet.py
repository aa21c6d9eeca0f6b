"""Fleets: one consumer process for three databases, one of them stopped mid-run while the others
go on; two sinks sharing the topics through the consumer group; status, slots, install --config;
Kafka over SASL."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pgtrail import local
from tests.conftest import KAFKA, dsn
from tests.integration.conftest import ROOT, _admin, _drop_database, _new_database, _port_open, free_port, wait_until

SASL_PORT = local.kafka_sasl_port()


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3).read().decode()
    except OSError:
        return {}
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def metric(port: int, name: str, **labels) -> float | None:
    return scrape(port).get((name, tuple(sorted(labels.items()))))


class Fleet:
    def __init__(self, tmp: Path, names: list[str], kafka: dict[str, str] | None = None):
        tag = uuid.uuid4().hex[:8]
        self.tmp, self.names = tmp, names
        self.dbs = {n: _new_database("source") for n in names}
        self.vault_db = _new_database("vault")
        self.prefix = f"f{tag}"
        self.consumer_port = free_port()
        kafka = kafka or {"bootstrap": KAFKA}
        lines = ["[kafka]"] + [f'{k} = "{v}"' for k, v in kafka.items()] + [f'topic_prefix = "{self.prefix}"',
                 "[consumer]", "status_interval = 1", "heartbeat_interval = 1",
                 f"consumer_metrics_port = {self.consumer_port}",
                 "[sink]", f'vault_dsn = "{dsn(self.vault_db)}"', f'group_id = "{self.prefix}-sink"',
                 "max_batch = 200"]
        for n, db in self.dbs.items():
            lines += ["[[sources]]", f'name = "{n}"', f'dsn = "{dsn(db)}"', f'slot = "pgtrail_{tag}_{n}"']
        self.config = tmp / "fleet.toml"
        self.config.write_text("\n".join(lines) + "\n")
        self.procs: list[tuple[subprocess.Popen, Path]] = []
        for n, db in self.dbs.items():
            with psycopg.connect(dsn(db), autocommit=True) as c:
                c.execute(f"create table t_{n} (id int primary key, v text)")
                c.execute(f"select script_tracking.track_table('t_{n}')")

    def run(self, *args: str, env: dict | None = None, port: int | None = None) -> subprocess.Popen:
        log = self.tmp / f"{args[0]}-{len(self.procs)}.log"
        proc = subprocess.Popen([sys.executable, "-m", "pgtrail.cli", *args, "--config", str(self.config)],
                                env={**os.environ, **(env or {})}, cwd=ROOT, stdout=open(log, "wb"),
                                stderr=subprocess.STDOUT)
        self.procs.append((proc, log))
        if port:
            wait_until(lambda: proc.poll() is not None or _port_open(port), 60, what=f"{args[0]} to start")
            assert proc.poll() is None, log.read_text()[-3000:]
        return proc

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pgtrail.cli", *args, "--config", str(self.config)],
                              cwd=ROOT, capture_output=True, text=True, timeout=120)

    def write(self, name: str, start: int, count: int, per_txn: int = 50) -> None:
        with psycopg.connect(dsn(self.dbs[name])) as c:
            for i in range(start, start + count, per_txn):
                c.execute(f"insert into t_{name} select g, 'v' || g from generate_series(%s::int, %s::int) g",
                          (i, min(i + per_txn, start + count) - 1))
                c.commit()

    def vault_rows(self, name: str) -> tuple[int, int]:
        with psycopg.connect(dsn(self.vault_db)) as v:
            return v.execute("select count(*), count(distinct primary_key->>'id') from vault.sat_row_change "
                             "where table_name = %s", (f"t_{name}",)).fetchone()

    def close(self) -> None:
        for proc, _ in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _ in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        for db in [*self.dbs.values(), self.vault_db]:
            with _admin() as c:
                c.execute(f'alter database "{db}" allow_connections true')
            _drop_database(db)


@pytest.fixture
def fleet(tmp_path):
    f = Fleet(tmp_path, ["alpha", "beta", "gamma"])
    yield f
    f.close()


def _set_down(db: str, down: bool) -> None:
    """'Stop' one database of the shared cluster: refuse connections and end its sessions, the
    consumer's walsender included — what the consumer sees when that server goes away."""
    with _admin() as c:
        c.execute(f'alter database "{db}" allow_connections {"false" if down else "true"}')
        if down:
            c.execute("select pg_terminate_backend(pid) from pg_stat_activity where datname = %s", (db,))


def test_one_stopped_database_never_stops_the_others_and_two_sinks_share_the_load(fleet):
    sink_ports = [free_port(), free_port()]
    with fleet.config.open("a") as fh:  # a fourth source whose credentials are refused from the start
        fh.write(f'[[sources]]\nname = "badcreds"\ndsn = "{dsn(fleet.dbs["alpha"], user="pgtrail_no_such_role", password="wrong")}"\n')
    consumer = fleet.run("consume", port=fleet.consumer_port)
    for i, port in enumerate(sink_ports):
        fleet.run("sink", port=port, env={"PGTRAIL_SINK_INSTANCE_ID": f"{fleet.prefix}-sink-{i}",
                                          "PGTRAIL_SINK_METRICS_PORT": str(port)})
    wait_until(lambda: all(metric(fleet.consumer_port, "pgtrail_consumer_source_up", database=n) == 1
                           for n in fleet.names), 60, what="all three sources streaming")
    assert metric(fleet.consumer_port, "pgtrail_consumer_source_up", database="badcreds") == 0
    for n in fleet.names:
        fleet.write(n, 0, 400)

    _set_down(fleet.dbs["beta"], True)
    wait_until(lambda: metric(fleet.consumer_port, "pgtrail_consumer_source_up", database="beta") == 0, 30,
               what="beta reported down")
    for n in ("alpha", "gamma"):
        fleet.write(n, 400, 400)
    for n in ("alpha", "gamma"):
        wait_until(lambda: fleet.vault_rows(n)[0] >= 800, 120, interval=1, what=f"{n}'s 800 rows in the vault")
    assert consumer.poll() is None, "the consumer died with one source down"
    status = fleet.cli("status", "--metrics", f"http://127.0.0.1:{fleet.consumer_port}/metrics")
    assert status.returncode == 1, status.stdout + status.stderr
    rows = {line.split()[0]: line for line in status.stdout.splitlines()[1:]}
    assert "DOWN" in rows["beta"] and "not currently accepting connections" in rows["beta"], status.stdout
    assert rows["alpha"].split()[2] == "up" and "streaming" in rows["alpha"], status.stdout
    assert (metric(fleet.consumer_port, "pgtrail_consumer_source_restarts_total", database="beta") or 0) >= 1

    _set_down(fleet.dbs["beta"], False)
    fleet.write("beta", 400, 400)
    wait_until(lambda: fleet.vault_rows("beta")[0] >= 800, 150, interval=1, what="beta's 800 rows after it came back")
    time.sleep(3)  # anything doubled would land now
    for n in fleet.names:
        assert fleet.vault_rows(n) == (800, 800), n
    # Which sink gets which rows depends on how three keys hash to partitions; what must hold is
    # that both hold partitions of the group and that together they loaded every event once.
    assigned = [metric(p, "pgtrail_sink_assigned_partitions") for p in sink_ports]
    assert all(a and a >= 1 for a in assigned), f"a sink holds no partition: {assigned}"
    loaded = [sum(v for (name, _), v in scrape(p).items() if name == "pgtrail_sink_events_loaded_total")
              for p in sink_ports]
    assert sum(loaded) >= 2400, loaded
    status = fleet.cli("status", "--json", "--metrics", f"http://127.0.0.1:{fleet.consumer_port}/metrics")
    assert status.returncode == 1, status.stdout + status.stderr  # badcreds is still refused
    by_name = {r["name"]: r for r in json.loads(status.stdout)}
    assert by_name["badcreds"]["state"] == "down" and "pgtrail_no_such_role" in by_name["badcreds"]["error"]
    for n in fleet.names:
        assert by_name[n]["state"] == "up" and by_name[n]["consumer_up"] is True, by_name[n]
        assert by_name[n]["heartbeat_age_s"] is not None and by_name[n]["heartbeat_age_s"] < 30, by_name[n]
        assert by_name[n]["last_event_age_s"] is not None
    for _, log in fleet.procs:
        assert "password=wrong" not in log.read_text(), f"a DSN's password reached {log.name}"
    assert "password=wrong" not in status.stdout


def test_install_config_reports_each_source_and_slots_drop_refuses_an_active_slot(tmp_path):
    f = Fleet(tmp_path, ["one", "two"])
    try:
        with f.config.open("a") as fh:
            fh.write(f'[[sources]]\nname = "broken"\ndsn = "{dsn("pgtrail_no_such_db")}"\n')
        out = f.cli("install", "source")
        assert out.returncode == 1
        assert "one: source: applied 001_schema.sql" in out.stdout, out.stdout
        assert "broken: FAILED" in out.stdout and 'database "pgtrail_no_such_db" does not exist' in out.stdout
        assert out.stdout.index("broken: FAILED") > out.stdout.index("two: source")

        consumer = f.run("consume", "--source", "one", port=f.consumer_port)
        slot_one = f"pgtrail_{f.prefix[1:]}_one"
        wait_until(lambda: slot_one in f.cli("slots").stdout, 60, what="slot created")
        listing = f.cli("slots").stdout
        assert slot_one in listing and f"pgtrail_{f.prefix[1:]}_two" not in listing  # --source chose one only
        refused = f.cli("slots", "--drop", slot_one)
        assert refused.returncode == 2 and "in use by pid" in refused.stderr
        consumer.send_signal(signal.SIGTERM)
        consumer.wait(30)
        dropped = f.cli("slots", "--drop", slot_one)
        assert dropped.returncode == 0, dropped.stderr
        assert slot_one not in f.cli("slots").stdout
    finally:
        f.close()


def test_kafka_over_sasl_scram_carries_the_events_and_a_wrong_password_is_a_clear_error(tmp_path):
    kafka = {"bootstrap": f"127.0.0.1:{SASL_PORT}", "security_protocol": "SASL_PLAINTEXT",
             "sasl_mechanism": "SCRAM-SHA-256", "sasl_username": "pgtrail"}
    f = Fleet(tmp_path, ["secure"], kafka=kafka)
    try:
        sink_port = free_port()
        env = {"PGTRAIL_KAFKA_SASL_PASSWORD": "pgtrail-local-test", "PGTRAIL_SINK_METRICS_PORT": str(sink_port)}
        f.run("consume", env=env, port=f.consumer_port)
        f.run("sink", env=env, port=sink_port)
        f.write("secure", 0, 100)
        wait_until(lambda: f.vault_rows("secure")[0] >= 100, 90, interval=1, what="rows through SASL Kafka")
        assert f.vault_rows("secure") == (100, 100)
        for proc, log in f.procs:
            assert "pgtrail-local-test" not in log.read_text(), "the SASL password reached a log"

        bad = subprocess.run([sys.executable, "-m", "pgtrail.cli", "consume", "--config", str(f.config)],
                             env={**os.environ, "PGTRAIL_KAFKA_SASL_PASSWORD": "wrong-password",
                                  "PGTRAIL_KAFKA_REQUEST_TIMEOUT_MS": "5000"},
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert bad.returncode == 2
        assert "check the credentials" in bad.stderr and "SCRAM-SHA-256" in bad.stderr, bad.stderr[-2000:]
        assert "wrong-password" not in bad.stderr
    finally:
        f.close()


def test_two_consumer_processes_split_a_fleet_by_shard(tmp_path):
    f = Fleet(tmp_path, ["red", "green", "blue"])  # crc32 puts blue in shard 1, red and green in 2
    try:
        ports = [free_port(), free_port()]
        for k, port in zip((1, 2), ports):
            # the file sets the consumers' metrics port (the file wins over the environment): the flag wins over both
            f.run("consume", "--shard", f"{k}/2", "--metrics-port", str(port), port=port)
        sink_port = free_port()
        f.run("sink", env={"PGTRAIL_SINK_METRICS_PORT": str(sink_port)}, port=sink_port)
        # each source is streamed by exactly one of the two processes
        def owners():
            return {n: [p for p in ports if metric(p, "pgtrail_consumer_source_up", database=n) == 1]
                    for n in f.names}
        wait_until(lambda: all(len(v) == 1 for v in owners().values()), 60, what="every source owned once")
        assert owners() == {"blue": [ports[0]], "red": [ports[1]], "green": [ports[1]]}
        for n in f.names:
            f.write(n, 0, 200)
        for n in f.names:
            wait_until(lambda: f.vault_rows(n)[0] >= 200, 90, interval=1, what=f"{n}'s rows")
        time.sleep(2)
        assert all(f.vault_rows(n) == (200, 200) for n in f.names)
    finally:
        f.close()


@pytest.mark.parametrize("client", ["librdkafka", "kafka-python"])
def test_each_driver_refuses_to_start_with_wrong_credentials_or_no_broker(client):
    """The drivers classify alike: a one-line Fatal naming what to check, never a hang or a secret."""
    from pgtrail.errors import Fatal
    from publisher import KafkaSettings, make_publisher
    bad = KafkaSettings(bootstrap=f"127.0.0.1:{SASL_PORT}", security_protocol="SASL_PLAINTEXT",
                        sasl_mechanism="SCRAM-SHA-256", sasl_username="pgtrail", sasl_password="wrong-password",
                        request_timeout_ms=5000, client=client)
    with pytest.raises(Fatal) as err:
        make_publisher(bad).close()
    text = str(err.value)
    assert "credentials" in text and "\n" not in text and "wrong-password" not in text, text
    nobody = KafkaSettings(bootstrap=f"127.0.0.1:{free_port()}", request_timeout_ms=5000, client=client)
    with pytest.raises(Fatal) as err:
        make_publisher(nobody).close()
    assert "cannot reach Kafka" in str(err.value), str(err.value)
    good = make_publisher(KafkaSettings(bootstrap=KAFKA, client=client))  # and a reachable broker starts
    good.close()
