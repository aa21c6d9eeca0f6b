"""DSN helpers: describe a connection without ever showing its password."""
from __future__ import annotations

import sys


def parse_dsn(dsn: str) -> dict[str, str]:
    """The DSN's parameters, parsed by libpq's own rules (keyword/value or URI) through whichever
    PostgreSQL driver this process has loaded: the consumer runs on psycopg2 and the sink on
    psycopg 3, and neither loads the other (~10 MB of resident memory) just to read a DSN."""
    if "psycopg" in sys.modules and "psycopg2" not in sys.modules:
        from psycopg.conninfo import conninfo_to_dict
        return {k: str(v) for k, v in conninfo_to_dict(dsn).items()}
    from psycopg2.extensions import parse_dsn as parse
    return parse(dsn)


def describe_dsn(dsn: str) -> str:
    """host:port/dbname user=..., for messages and logs; never the password."""
    try:
        parts = parse_dsn(dsn)
    except Exception:  # noqa: BLE001 - an unparsable DSN must still produce a safe message
        return "<unparsable DSN>"
    host = parts.get("host", "localhost")
    port = parts.get("port", "5432")
    return f"{host}:{port}/{parts.get('dbname', '?')} user={parts.get('user', '?')}"
