"""Apply the numbered SQL install scripts of sql/source or sql/vault, in order, each in one transaction."""
from __future__ import annotations

import logging
from importlib import resources

import psycopg

from pgtrail.dsn import describe_dsn
from pgtrail.errors import Fatal

log = logging.getLogger(__name__)

# where each part records its installed versions (fixed names, never user input)
_SCHEMA = {"source": "script_tracking", "vault": "vault"}


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


def uninstall(dsn: str, part: str) -> None:
    """Remove what `install` put there; idempotent. The vault is never uninstalled by pgtrail."""
    if part != "source":
        raise Fatal("only the source side can be uninstalled; drop the vault database yourself")
    text = resources.files("sql").joinpath(part, "uninstall.sql").read_text(encoding="utf-8")
    with connect(dsn, part) as conn:
        try:
            with conn.transaction():
                conn.execute(text)
        except psycopg.Error as exc:
            raise Fatal(f"uninstall failed on {describe_dsn(dsn)}: {exc.sqlstate} "
                        f"{str(exc).strip().splitlines()[0]}") from exc


def untrackable_tables(dsn: str) -> list[tuple[str, str]]:
    """Tracked tables whose UPDATE and DELETE cannot be captured (no replica identity)."""
    with connect(dsn, "source") as conn:
        return [(r[0], r[2]) for r in conn.execute("select * from script_tracking.untrackable_tables()")]


def install(dsn: str, part: str) -> list[str]:
    """Install or upgrade; idempotent. All files run in one transaction: all or nothing.
    Returns the applied file names."""
    applied = []
    with connect(dsn, part) as conn:
        name = "?"
        try:
            with conn.transaction():
                # the DDL below is pgtrail's own: the event triggers attribute it to pgtrail (part 3)
                conn.execute("select set_config('pgtrail.installing', %s, true)", (part,))
                for name, text in scripts(part):
                    conn.execute(text)
                    applied.append(name)
                version = int(applied[-1][:3])
                conn.execute(f"insert into {_SCHEMA[part]}.install_history (version) values (%s) "
                             "on conflict (version) do update set installed_at = now()", (version,))
        except psycopg.Error as exc:
            raise Fatal(f"{part}/{name} failed on {describe_dsn(dsn)}: "
                        f"{exc.sqlstate} {str(exc).strip().splitlines()[0]}") from exc
    log.info("applied %s on %s", ", ".join(f"{part}/{n}" for n in applied), describe_dsn(dsn))
    return applied
