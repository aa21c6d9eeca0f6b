"""Shared test settings: where the real services started by scripts/services.sh listen (or, with
PGTRAIL_TEST_SERVICES=containers where a Docker engine exists, the containers of tests/containers.py)."""
import os

from pgtrail import local
from tests import containers

containers.use_if_asked()  # before the settings below are read: the containers' ports become them

PG_HOST = os.environ.get("PGTRAIL_TEST_PG_HOST", "127.0.0.1")
PG_PORT = local.pg_port()
KAFKA = os.environ.get("PGTRAIL_KAFKA_BOOTSTRAP", local.default_bootstrap())


def dsn(dbname: str, user: str = "postgres", password: str | None = None) -> str:
    base = f"host={PG_HOST} port={PG_PORT} user={user} dbname={dbname}"
    return base + (f" password={password}" if password else "")


def pytest_report_header(config):
    return containers.SAID  # with PGTRAIL_TEST_SERVICES=containers: which services the suite uses
