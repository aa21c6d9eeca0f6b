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
import subprocess
import sys
import time
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

# The access rules of scripts/services.sh, from the Docker host instead of the loopback (which is
# all the image's pg_hba allows): the superuser without a password, every other role (the
# consumer's replication role, tenant reporting roles) with SCRAM, so the tests of wrong
# passwords fail here as they do on the default path.
_PG_HBA = b"""#!/usr/bin/env bash
# tests only (tests/containers.py): scripts/services.sh's pg_hba.conf, from any address
cat > "$PGDATA/pg_hba.conf" <<EOF
local   all          all                trust
host    all          postgres  all      trust
host    replication  postgres  all      trust
host    all          all       all      scram-sha-256
host    replication  all       all      scram-sha-256
EOF
"""

# The SASL listener's local test account, as scripts/services.sh sets it (not a secret: it opens
# only a throw-away test broker).
KAFKA_SASL_USER = "pgtrail"
KAFKA_SASL_PASSWORD = "pgtrail-local-test"


@dataclass(frozen=True)
class Service:
    """One container: its image (built from `build` when set), environment, command, ports
    (container port -> host port, fixed so that a restart of the container keeps them), files
    copied in before it starts, the log line (a regex, seen `ready_times` times) that says it is
    ready, and commands run in it then."""
    image: str
    env: Mapping[str, str]
    command: tuple[str, ...] = ()
    ports: Mapping[int, int] = field(default_factory=dict)
    build: Path | None = None
    files: Mapping[str, bytes] = field(default_factory=dict)
    ready_log: str = ""
    ready_times: int = 1
    after_start: tuple[tuple[str, ...], ...] = ()   # commands run in the container once it is ready


def postgres(port: int) -> Service:
    """deploy/postgres's image (PostgreSQL 15 with wal2json and pgaudit), set up as the tests expect."""
    command = ["postgres"]
    for name, value in PG_SETTINGS.items():
        command += ["-c", f"{name}={value}"]
    return Service(
        image=PG_IMAGE_TAG, build=DEPLOY / "postgres",
        # the image's init script wants both passwords; nothing here ever uses them, so they are random
        env={"POSTGRES_PASSWORD": secrets.token_hex(16), "CDC_PASSWORD": secrets.token_hex(16),
             "POSTGRES_HOST_AUTH_METHOD": "trust"},
        command=tuple(command), ports={5432: port},
        files={"/docker-entrypoint-initdb.d/20-tests-replication.sh": _PG_HBA},
        # the image's entrypoint starts a temporary server for its init scripts, then the real one
        ready_log=r"database system is ready to accept connections", ready_times=2)


def kafka(compose: Mapping, host: str, port: int, sasl_port: int) -> Service:
    """deploy/compose.yaml's Kafka (its image and settings), alone: the controller on the container's
    own address, the host listener on `port` both inside and outside so the address it advertises
    is the one clients on the Docker host dial, and scripts/services.sh's SASL listener (PLAIN and
    SCRAM-SHA-256, its test account) on `sasl_port` for the tests of Kafka security settings."""
    spec = compose["services"]["kafka"]
    env = {k: str(v) for k, v in spec["environment"].items()}
    env.pop("KAFKA_LOG_DIRS")   # compose gives it a volume; a test broker keeps the image's default
    # the image turns KAFKA_A_B__C___D into the server property a.b_c-d
    env.update(KAFKA_CONTROLLER_QUORUM_VOTERS="1@localhost:9093",
               KAFKA_LISTENERS=f"PLAINTEXT://:9092,CONTROLLER://:9093,HOST://:{port},SASL_PLAINTEXT://:{sasl_port}",
               KAFKA_ADVERTISED_LISTENERS=(f"PLAINTEXT://localhost:9092,HOST://{host}:{port},"
                                           f"SASL_PLAINTEXT://{host}:{sasl_port}"),
               KAFKA_LISTENER_SECURITY_PROTOCOL_MAP=env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]
               + ",SASL_PLAINTEXT:SASL_PLAINTEXT",
               KAFKA_SASL_ENABLED_MECHANISMS="PLAIN,SCRAM-SHA-256",
               KAFKA_LISTENER_NAME_SASL__PLAINTEXT_PLAIN_SASL_JAAS_CONFIG=(
                   "org.apache.kafka.common.security.plain.PlainLoginModule required "
                   f'user_{KAFKA_SASL_USER}="{KAFKA_SASL_PASSWORD}";'),
               KAFKA_LISTENER_NAME_SASL__PLAINTEXT_SCRAM___SHA___256_SASL_JAAS_CONFIG=(
                   "org.apache.kafka.common.security.scram.ScramLoginModule required;"))
    scram = ("/opt/kafka/bin/kafka-configs.sh", "--bootstrap-server", "localhost:9092", "--alter",
             "--add-config", f"SCRAM-SHA-256=[iterations=8192,password={KAFKA_SASL_PASSWORD}]",
             "--entity-type", "users", "--entity-name", KAFKA_SASL_USER)
    return Service(image=spec["image"], env=env, ports={port: port, sasl_port: sasl_port},
                   ready_log=r"Kafka Server started", after_start=(scram,))


def environment(pg_host: str, pg_port: int, kafka_host: str, kafka_port: int, sasl_port: int) -> dict[str, str]:
    """The settings through which tests/conftest.py, pgtrail.local and the `pgtrail` processes
    started by the tests find the services."""
    return {"PGTRAIL_TEST_PG_HOST": pg_host, "PGTRAIL_PG_PORT": str(pg_port),
            "PGTRAIL_KAFKA_PORT": str(kafka_port), "PGTRAIL_KAFKA_SASL_PORT": str(sasl_port),
            "PGTRAIL_KAFKA_BOOTSTRAP": f"{kafka_host}:{kafka_port}"}


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


# The containers this run started, by the name restart() takes ("pg", "kafka").
_STARTED: dict = {}


def _start() -> dict[str, str]:  # pragma: no cover - needs a Docker engine
    import yaml
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.docker_client import DockerClient
    from testcontainers.core.image import DockerImage
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    host = DockerClient().host()
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    pg_port, kafka_port, sasl_port = _free_port(), _free_port(), _free_port()
    for name, service in (("pg", postgres(pg_port)), ("kafka", kafka(compose, host, kafka_port, sasl_port))):
        if service.build:
            DockerImage(path=service.build, tag=service.image, clean_up=False).build()
        c = DockerContainer(service.image, env=dict(service.env), command=list(service.command) or None)
        for inside, outside in service.ports.items():
            c = c.with_bind_ports(inside, outside)
        for path, content in service.files.items():
            c = c.with_copy_into_container(content, path, 0o755)
        c = c.waiting_for(LogMessageWaitStrategy(re.compile(service.ready_log), times=service.ready_times))
        c.start()
        atexit.register(c.stop)
        for command in service.after_start:
            code, output = c.exec(list(command))
            if code:
                raise RuntimeError(f"{name} container: {command[0]} failed: {output[-300:]!r}")
        _STARTED[name] = c
    settings = environment(host, pg_port, host, kafka_port, sasl_port)
    os.environ.update(settings)
    _say(f"PostgreSQL at {host}:{pg_port}, Kafka at {settings['PGTRAIL_KAFKA_BOOTSTRAP']} (SASL {sasl_port})")
    return settings


def restart(service: str) -> None:
    """Restart the suite's PostgreSQL ("pg") or Kafka ("kafka") and return once it answers: the
    container where this run started them, scripts/services.sh otherwise (which waits itself)."""
    if service not in ("pg", "kafka"):
        raise ValueError(f"no service {service!r}: pg or kafka")
    container = _STARTED.get(service)
    if container is None:
        subprocess.run([str(ROOT / "scripts/services.sh"), f"restart-{service}"], check=True, capture_output=True)
        return
    container.get_wrapped_container().restart()  # pragma: no cover - needs a Docker engine
    port = int(os.environ["PGTRAIL_PG_PORT" if service == "pg" else "PGTRAIL_KAFKA_PORT"])  # pragma: no cover
    _wait_open(os.environ.get("PGTRAIL_TEST_PG_HOST", "127.0.0.1"), port)  # pragma: no cover


def _wait_open(host: str, port: int, timeout: float = 90) -> None:  # pragma: no cover - needs a Docker engine
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    """`python -m tests.containers --will-start`: exit 0 when the suite will start its services as
    containers (then `make test` does not start the project's own), 1 otherwise, with the one line
    that says why when containers were asked for."""
    if (sys.argv[1:] if argv is None else argv) != ["--will-start"]:
        print("usage: python -m tests.containers --will-start", file=sys.stderr)
        return 2
    if os.environ.get(MODE, "") != "containers":
        return 1
    missing = engine_missing(os.environ)
    if missing:
        print(f"{MODE}=containers: {missing}; using the services of scripts/services.sh")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
