"""PGTRAIL_TEST_SERVICES=containers: the suite's PostgreSQL (wal2json) and Kafka started through
testcontainers from the images of deploy/, where a Docker engine exists; otherwise one line says
why and the suite uses the services of scripts/services.sh, as it does by default.

The containers' ports reach the tests the way every other setting does: through the environment
(PGTRAIL_TEST_PG_HOST, PGTRAIL_PG_PORT, PGTRAIL_KAFKA_PORT, PGTRAIL_KAFKA_BOOTSTRAP), set before
tests/conftest.py reads it, so the suite and the `pgtrail` processes it starts run unchanged.

What to start is plain data (`Service`), built without Docker, so tests/unit/test_containers.py
checks images, environment, ports and server settings on a machine without an engine.
"""
from __future__ import annotations

import atexit
import os
import re
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
MODE = "PGTRAIL_TEST_SERVICES"

# What the tests need of the server, as scripts/services.sh writes it into postgresql.auto.conf:
# logical decoding (the consumer reads its slot through wal2json), a slot and a WAL sender per
# test's consumer, room for parallel connections. Given as `-c` options, over the image's own
# deploy/postgres/pgtrail.conf (which adds pgaudit).
PG_SETTINGS = {
    "wal_level": "logical",
    "max_replication_slots": "64",
    "max_wal_senders": "64",
    "max_connections": "200",
    "wal_sender_timeout": "60s",
    "max_slot_wal_keep_size": "4GB",
    "log_line_prefix": "%m [%p] %q%u@%d/%a ",
}
PG_IMAGE_TAG = "pgtrail-postgres:15-tests"

# The tests connect as postgres without a password, and consumers connect for replication from
# the Docker host (not from the container's loopback, which is all the image's pg_hba allows).
_PG_HBA = b"""#!/usr/bin/env bash
# tests only (tests/containers.py): replication from the Docker host, as scripts/services.sh allows
echo "host replication all all trust" >> "$PGDATA/pg_hba.conf"
"""


@dataclass(frozen=True)
class Service:
    """One container: its image (built from `build` when set), environment, command, ports
    (container port -> host port, None: Docker picks one), files copied in before it starts, and
    the log line (a regex, seen `ready_times` times) that says it is ready."""
    image: str
    env: Mapping[str, str]
    command: tuple[str, ...] = ()
    ports: Mapping[int, int | None] = field(default_factory=dict)
    build: Path | None = None
    files: Mapping[str, bytes] = field(default_factory=dict)
    ready_log: str = ""
    ready_times: int = 1


def postgres() -> Service:
    """deploy/postgres's image (PostgreSQL 15 with wal2json and pgaudit), set up as the tests expect."""
    command = ["postgres"]
    for name, value in PG_SETTINGS.items():
        command += ["-c", f"{name}={value}"]
    return Service(
        image=PG_IMAGE_TAG, build=DEPLOY / "postgres",
        # the image's init script wants both passwords; nothing here ever uses them, so they are random
        env={"POSTGRES_PASSWORD": secrets.token_hex(16), "CDC_PASSWORD": secrets.token_hex(16),
             "POSTGRES_HOST_AUTH_METHOD": "trust"},
        command=tuple(command), ports={5432: None},
        files={"/docker-entrypoint-initdb.d/20-tests-replication.sh": _PG_HBA},
        # the image's entrypoint starts a temporary server for its init scripts, then the real one
        ready_log=r"database system is ready to accept connections", ready_times=2)


def kafka(compose: Mapping, host: str, port: int) -> Service:
    """deploy/compose.yaml's Kafka (its image and settings), alone: the controller on the container's
    own address, the host listener on `port` both inside and outside so the address it advertises
    is the one clients on the Docker host dial."""
    spec = compose["services"]["kafka"]
    env = {k: str(v) for k, v in spec["environment"].items()}
    env.pop("KAFKA_LOG_DIRS")   # compose gives it a volume; a test broker keeps the image's default
    env.update(KAFKA_CONTROLLER_QUORUM_VOTERS="1@localhost:9093",
               KAFKA_LISTENERS=f"PLAINTEXT://:9092,CONTROLLER://:9093,HOST://:{port}",
               KAFKA_ADVERTISED_LISTENERS=f"PLAINTEXT://localhost:9092,HOST://{host}:{port}")
    return Service(image=spec["image"], env=env, ports={port: port}, ready_log=r"Kafka Server started")


def environment(pg_host: str, pg_port: int, kafka_host: str, kafka_port: int) -> dict[str, str]:
    """The settings through which tests/conftest.py, pgtrail.local and the `pgtrail` processes
    started by the tests find the services."""
    return {"PGTRAIL_TEST_PG_HOST": pg_host, "PGTRAIL_PG_PORT": str(pg_port),
            "PGTRAIL_KAFKA_PORT": str(kafka_port), "PGTRAIL_KAFKA_BOOTSTRAP": f"{kafka_host}:{kafka_port}"}


# What the switch chose, in one line: pytest's header shows it (tests/conftest.py), since output
# while pytest loads conftest files is captured and dropped.
SAID: list[str] = []


def _say(line: str) -> None:
    SAID.append(f"{MODE}=containers: {line}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def engine_missing(env: Mapping[str, str]) -> str | None:
    """Why containers cannot be started here, or None when a Docker engine answers."""
    try:
        import docker
        import testcontainers  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed (pip install -e '.[containers]')"
    try:
        docker.from_env(environment=dict(env), timeout=5).ping()
    except Exception as exc:  # docker raises DockerException, requests' and OSError's errors alike
        reason = " ".join(str(exc).split())
        return f"no Docker engine ({reason[:120]})"
    return None


def use_if_asked(env: Mapping[str, str] | None = None) -> dict[str, str] | None:
    """Start the containers when PGTRAIL_TEST_SERVICES=containers and an engine answers; put their
    addresses into os.environ and return them. Otherwise None (the services of scripts/services.sh)."""
    env = os.environ if env is None else env
    if env.get(MODE, "") != "containers":
        return None
    missing = engine_missing(env)
    if missing:
        _say(f"{missing}; using the services of scripts/services.sh")
        return None
    return _start()


def _start() -> dict[str, str]:  # pragma: no cover - needs a Docker engine
    import yaml
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.docker_client import DockerClient
    from testcontainers.core.image import DockerImage
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    host = DockerClient().host()
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    started = {}
    for name, service in (("postgres", postgres()), ("kafka", kafka(compose, host, _free_port()))):
        if service.build:
            DockerImage(path=service.build, tag=service.image, clean_up=False).build()
        c = DockerContainer(service.image, env=dict(service.env), command=list(service.command) or None)
        for inside, outside in service.ports.items():
            c = c.with_bind_ports(inside, outside) if outside else c.with_exposed_ports(inside)
        for path, content in service.files.items():
            c = c.with_copy_into_container(content, path, 0o755)
        c = c.waiting_for(LogMessageWaitStrategy(re.compile(service.ready_log), times=service.ready_times))
        c.start()
        atexit.register(c.stop)
        started[name] = (c, service)
    pg, _ = started["postgres"]
    kafka_port = next(iter(started["kafka"][1].ports))
    settings = environment(pg.get_container_host_ip(), pg.get_exposed_port(5432), host, kafka_port)
    os.environ.update(settings)
    _say(f"PostgreSQL at {settings['PGTRAIL_TEST_PG_HOST']}:{settings['PGTRAIL_PG_PORT']}, "
         f"Kafka at {settings['PGTRAIL_KAFKA_BOOTSTRAP']}")
    return settings
