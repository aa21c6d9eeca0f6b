"""DSN helpers: describe a connection without ever showing its password."""
from __future__ import annotations

from psycopg.conninfo import conninfo_to_dict


def describe_dsn(dsn: str) -> str:
    """host:port/dbname user=..., for messages and logs; never the password."""
    try:
        parts = conninfo_to_dict(dsn)
    except Exception:  # noqa: BLE001 - an unparsable DSN must still produce a safe message
        return "<unparsable DSN>"
    host = parts.get("host", "localhost")
    port = parts.get("port", "5432")
    return f"{host}:{port}/{parts.get('dbname', '?')} user={parts.get('user', '?')}"
