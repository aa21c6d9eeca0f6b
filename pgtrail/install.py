"""Apply the numbered SQL install scripts of sql/source or sql/vault, in order, each in one transaction."""
from __future__ import annotations

import logging
from importlib import resources

import psycopg

from pgtrail.dsn import describe_dsn
from pgtrail.errors import Fatal

log = logging.getLogger(__name__)


def scripts(part: str) -> list[tuple[str, str]]:
    """(file name, text) of sql/<part>/NNN_*.sql, in version order."""
    folder = resources.files("sql").joinpath(part)
    files = sorted(f for f in folder.iterdir() if f.name.endswith(".sql") and f.name[:3].isdigit())
    return [(f.name, f.read_text(encoding="utf-8")) for f in files]


def connect(dsn: str, what: str) -> psycopg.Connection:
    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise Fatal(f"cannot connect to the {what} database ({describe_dsn(dsn)}): {first}; "
                    f"check --dsn or PGTRAIL_{what.upper()}_DSN") from exc


def install(dsn: str, part: str) -> list[str]:
    """Install or upgrade; idempotent. Returns the applied file names."""
    applied = []
    with connect(dsn, part) as conn:
        for name, text in scripts(part):
            try:
                with conn.transaction():
                    conn.execute(text)
            except psycopg.Error as exc:
                raise Fatal(f"{part}/{name} failed on {describe_dsn(dsn)}: "
                            f"{exc.sqlstate} {str(exc).strip().splitlines()[0]}") from exc
            applied.append(name)
            log.info("applied %s/%s on %s", part, name, describe_dsn(dsn))
    return applied
