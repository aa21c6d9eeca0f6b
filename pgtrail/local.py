"""Where the project's own services listen (scripts/services.sh), defined once.

One setting per service moves it, and every default that points at it follows: the DSNs of the
source and the vault, Kafka's bootstrap, the tests and the benchmarks. A second checkout on the
same machine sets PGTRAIL_PG_PORT and PGTRAIL_KAFKA_PORT and talks only to its own services.
Kafka's controller and SASL listeners sit on the next two ports unless set themselves.
"""
from __future__ import annotations

import os


def pg_port() -> int:
    return int(os.environ.get("PGTRAIL_PG_PORT", "54329"))


def kafka_port() -> int:
    return int(os.environ.get("PGTRAIL_KAFKA_PORT", "19092"))


def kafka_sasl_port() -> int:
    return int(os.environ.get("PGTRAIL_KAFKA_SASL_PORT", str(kafka_port() + 2)))


def default_dsn(dbname: str) -> str:
    return f"host=127.0.0.1 port={pg_port()} user=postgres dbname={dbname}"


def default_bootstrap() -> str:
    return f"127.0.0.1:{kafka_port()}"
