"""Shared test settings: where the real services started by scripts/services.sh listen."""
import os

PG_HOST = os.environ.get("PGTRAIL_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("PGTRAIL_PG_PORT", "54329"))
KAFKA = os.environ.get("PGTRAIL_KAFKA_BOOTSTRAP", f"127.0.0.1:{os.environ.get('PGTRAIL_KAFKA_PORT', '19092')}")


def dsn(dbname: str, user: str = "postgres", password: str | None = None) -> str:
    base = f"host={PG_HOST} port={PG_PORT} user={user} dbname={dbname}"
    return base + (f" password={password}" if password else "")
