"""The testcontainers path's configuration, without Docker: the images of deploy/, the server
settings of scripts/services.sh, ports that reach the tests through their settings, and one line
(then the default services) where no engine answers."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import yaml

from pgtrail import local
from tests import containers

COMPOSE = yaml.safe_load((containers.DEPLOY / "compose.yaml").read_text())


def services_sh_settings() -> dict[str, str]:
    """The postgresql.auto.conf that scripts/services.sh writes for the default path."""
    text = (containers.ROOT / "scripts/services.sh").read_text()
    block = text.split('cat > "$PG_DATA/postgresql.auto.conf" <<EOF', 1)[1].split("\nEOF", 1)[0]
    return {k.strip(): v.strip().strip("'") for k, v in
            (line.split("=", 1) for line in block.splitlines() if "=" in line and not line.startswith("#"))}


def test_postgres_is_deploys_image_with_wal2json_and_the_default_paths_settings():
    pg = containers.postgres(32768)
    dockerfile = (pg.build / "Dockerfile").read_text()
    assert pg.build == containers.ROOT / "deploy/postgres"
    assert "FROM postgres:15" in dockerfile and "postgresql-15-wal2json" in dockerfile
    # every setting given to the container is the one scripts/services.sh gives its cluster
    default = services_sh_settings()
    assert {k: default[k] for k in containers.PG_SETTINGS} == containers.PG_SETTINGS
    assert containers.PG_SETTINGS["wal_level"] == "logical"
    options = dict(re.fullmatch(r"(\w+)=(.*)", o).groups() for o in pg.command[2::2])
    assert pg.command[0] == "postgres" and set(pg.command[1::2]) == {"-c"} and options == containers.PG_SETTINGS
    # a fixed host port: a restart of the container (the fault tests) keeps the address
    assert pg.ports == {5432: 32768} and pg.ready_times == 2


def test_postgres_takes_the_tests_passwordless_superuser_and_replication_from_the_host():
    a, b = containers.postgres(1), containers.postgres(1)
    assert a.env["POSTGRES_HOST_AUTH_METHOD"] == "trust"
    # the image's init script requires both passwords: random, never the same twice, never printed
    for name in ("POSTGRES_PASSWORD", "CDC_PASSWORD"):
        assert len(a.env[name]) == 32 and a.env[name] != b.env[name]
    (script,) = a.files.values()
    assert list(a.files) == ["/docker-entrypoint-initdb.d/20-tests-replication.sh"]
    # scripts/services.sh's access rules, from any address: the superuser trusted, everyone else SCRAM
    hba = script.split(b"<<EOF\n", 1)[1].split(b"\nEOF", 1)[0].decode()
    default = (containers.ROOT / "scripts/services.sh").read_text()
    default = default.split('cat > "$PG_DATA/pg_hba.conf" <<EOF\n', 1)[1].split("\nEOF", 1)[0]
    assert [line.replace("127.0.0.1/32", "all").split() for line in default.splitlines()] == \
        [line.split() for line in hba.splitlines()]
    init = (containers.DEPLOY / "postgres/initdb/10-pgtrail.sh").read_text()
    assert "CDC_PASSWORD" in init and "POSTGRES_PASSWORD" in (containers.DEPLOY / "compose.yaml").read_text()


def test_kafka_is_the_compose_brokers_image_and_settings_listening_where_clients_dial():
    k = containers.kafka(COMPOSE, "docker.example", 29111, 29113)
    compose_env = {n: str(v) for n, v in COMPOSE["services"]["kafka"]["environment"].items()}
    assert k.image == COMPOSE["services"]["kafka"]["image"] and k.image.startswith("apache/kafka:")
    assert k.ports == {29111: 29111, 29113: 29113} and k.build is None and k.ready_log
    changed = {n for n in compose_env if k.env.get(n) != compose_env[n]}
    assert changed == {"KAFKA_LOG_DIRS", "KAFKA_CONTROLLER_QUORUM_VOTERS", "KAFKA_LISTENERS",
                       "KAFKA_ADVERTISED_LISTENERS", "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"}
    assert set(k.env) - set(compose_env) == {
        "KAFKA_SASL_ENABLED_MECHANISMS", "KAFKA_LISTENER_NAME_SASL__PLAINTEXT_PLAIN_SASL_JAAS_CONFIG",
        "KAFKA_LISTENER_NAME_SASL__PLAINTEXT_SCRAM___SHA___256_SASL_JAAS_CONFIG"}
    assert "KAFKA_LOG_DIRS" not in k.env
    assert "HOST://:29111" in k.env["KAFKA_LISTENERS"]
    assert "HOST://docker.example:29111" in k.env["KAFKA_ADVERTISED_LISTENERS"]
    assert k.env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@localhost:9093"
    assert k.env["KAFKA_MESSAGE_MAX_BYTES"] == compose_env["KAFKA_MESSAGE_MAX_BYTES"]


def test_kafka_has_the_sasl_listener_and_account_of_scripts_services_sh():
    k = containers.kafka(COMPOSE, "docker.example", 29111, 29113)
    text = (containers.ROOT / "scripts/services.sh").read_text()
    assert f'KAFKA_SASL_USER="{containers.KAFKA_SASL_USER}"' in text
    assert f'KAFKA_SASL_PASSWORD="{containers.KAFKA_SASL_PASSWORD}"' in text
    assert "SASL_PLAINTEXT://:29113" in k.env["KAFKA_LISTENERS"]
    assert "SASL_PLAINTEXT://docker.example:29113" in k.env["KAFKA_ADVERTISED_LISTENERS"]
    assert k.env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].endswith(",SASL_PLAINTEXT:SASL_PLAINTEXT")
    assert k.env["KAFKA_SASL_ENABLED_MECHANISMS"] == "PLAIN,SCRAM-SHA-256"   # as services.sh's broker
    assert "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256" in text
    plain = k.env["KAFKA_LISTENER_NAME_SASL__PLAINTEXT_PLAIN_SASL_JAAS_CONFIG"]
    assert f'user_{containers.KAFKA_SASL_USER}="{containers.KAFKA_SASL_PASSWORD}";' in plain
    (scram,) = k.after_start
    assert scram[0] == "/opt/kafka/bin/kafka-configs.sh" and scram[-1] == containers.KAFKA_SASL_USER
    assert f"SCRAM-SHA-256=[iterations=8192,password={containers.KAFKA_SASL_PASSWORD}]" in scram


def test_the_containers_ports_become_the_tests_settings(monkeypatch):
    settings = containers.environment("10.1.2.3", 32768, "localhost", 29111, 29113)
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    assert local.pg_port() == 32768 and local.default_bootstrap() == "127.0.0.1:29111"
    assert local.kafka_sasl_port() == 29113
    assert settings["PGTRAIL_KAFKA_BOOTSTRAP"] == "localhost:29111"
    assert settings["PGTRAIL_TEST_PG_HOST"] == "10.1.2.3"


def test_without_an_engine_one_line_says_so_and_the_default_services_are_used(capsys, monkeypatch):
    lines = []
    monkeypatch.setattr(containers, "_say", lines.append)
    assert containers.use_if_asked({}) is None and lines == []   # the default path: nothing said
    env = {"PGTRAIL_TEST_SERVICES": "containers", "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    assert containers.use_if_asked(env) is None
    assert len(lines) == 1 and "\n" not in lines[0] and lines[0].endswith("using the services of scripts/services.sh")
    assert "not installed" in lines[0] or "no Docker engine" in lines[0]


def run_will_start(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tests.containers", "--will-start"], cwd=containers.ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=60)


def test_make_test_starts_the_project_services_unless_the_containers_will_be_started():
    recipe = (containers.ROOT / "Makefile").read_text().split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert "$(PY) -m tests.containers --will-start || scripts/services.sh start" in recipe
    assert recipe.split("##")[0].split() == ["setup"]    # not `start`: that would run the services first
    default = run_will_start({"PGTRAIL_TEST_SERVICES": ""})
    assert default.returncode == 1 and default.stdout == "" and default.stderr == ""
    # asked for, with no engine: one line, exit 1, so make starts the project's own services
    no_engine = run_will_start({"PGTRAIL_TEST_SERVICES": "containers",
                                "DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert no_engine.returncode == 1 and no_engine.stdout.count("\n") == 1, no_engine
    assert no_engine.stdout.endswith("using the services of scripts/services.sh\n")
    assert containers.main(["--bogus"]) == 2


def test_restart_names_only_the_two_services():
    with pytest.raises(ValueError):
        containers.restart("zookeeper")
