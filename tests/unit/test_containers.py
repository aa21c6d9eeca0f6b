"""The testcontainers path's configuration, without Docker: the images of deploy/, the server
settings of scripts/services.sh, ports that reach the tests through their settings, and one line
(then the default services) where no engine answers."""
from __future__ import annotations

import re

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
    pg = containers.postgres()
    dockerfile = (pg.build / "Dockerfile").read_text()
    assert pg.build == containers.ROOT / "deploy/postgres"
    assert "FROM postgres:15" in dockerfile and "postgresql-15-wal2json" in dockerfile
    # every setting given to the container is the one scripts/services.sh gives its cluster
    default = services_sh_settings()
    assert {k: default[k] for k in containers.PG_SETTINGS} == containers.PG_SETTINGS
    assert containers.PG_SETTINGS["wal_level"] == "logical"
    options = dict(re.fullmatch(r"(\w+)=(.*)", o).groups() for o in pg.command[2::2])
    assert pg.command[0] == "postgres" and set(pg.command[1::2]) == {"-c"} and options == containers.PG_SETTINGS
    assert pg.ports == {5432: None} and pg.ready_times == 2


def test_postgres_takes_the_tests_passwordless_superuser_and_replication_from_the_host():
    a, b = containers.postgres(), containers.postgres()
    assert a.env["POSTGRES_HOST_AUTH_METHOD"] == "trust"
    # the image's init script requires both passwords: random, never the same twice, never printed
    for name in ("POSTGRES_PASSWORD", "CDC_PASSWORD"):
        assert len(a.env[name]) == 32 and a.env[name] != b.env[name]
    (script,) = a.files.values()
    assert list(a.files) == ["/docker-entrypoint-initdb.d/20-tests-replication.sh"]
    assert b'echo "host replication all all trust" >> "$PGDATA/pg_hba.conf"' in script
    init = (containers.DEPLOY / "postgres/initdb/10-pgtrail.sh").read_text()
    assert "CDC_PASSWORD" in init and "POSTGRES_PASSWORD" in (containers.DEPLOY / "compose.yaml").read_text()


def test_kafka_is_the_compose_brokers_image_and_settings_listening_where_clients_dial():
    k = containers.kafka(COMPOSE, "docker.example", 29111)
    compose_env = {n: str(v) for n, v in COMPOSE["services"]["kafka"]["environment"].items()}
    assert k.image == COMPOSE["services"]["kafka"]["image"] and k.image.startswith("apache/kafka:")
    assert k.ports == {29111: 29111} and k.build is None and k.ready_log
    changed = {n for n in compose_env if k.env.get(n) != compose_env[n]}
    assert changed == {"KAFKA_LOG_DIRS", "KAFKA_CONTROLLER_QUORUM_VOTERS", "KAFKA_LISTENERS",
                       "KAFKA_ADVERTISED_LISTENERS"} and set(k.env) == set(compose_env) - {"KAFKA_LOG_DIRS"}
    assert "HOST://:29111" in k.env["KAFKA_LISTENERS"]
    assert "HOST://docker.example:29111" in k.env["KAFKA_ADVERTISED_LISTENERS"]
    assert k.env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@localhost:9093"
    assert k.env["KAFKA_MESSAGE_MAX_BYTES"] == compose_env["KAFKA_MESSAGE_MAX_BYTES"]


def test_the_containers_ports_become_the_tests_settings(monkeypatch):
    settings = containers.environment("10.1.2.3", 32768, "localhost", 29111)
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    assert local.pg_port() == 32768 and local.default_bootstrap() == "127.0.0.1:29111"
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
