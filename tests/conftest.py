"""Shared test settings: where the real services started by scripts/services.sh listen."""
import os

from pgtrail import local

PG_HOST = os.environ.get("PGTRAIL_TEST_PG_HOST", "127.0.0.1")
PG_PORT = local.pg_port()
KAFKA = os.environ.get("PGTRAIL_KAFKA_BOOTSTRAP", local.default_bootstrap())


def dsn(dbname: str, user: str = "postgres", password: str | None = None) -> str:
    base = f"host={PG_HOST} port={PG_PORT} user={user} dbname={dbname}"
    return base + (f" password={password}" if password else "")
