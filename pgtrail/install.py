"""Apply the numbered SQL install scripts of sql/source or sql/vault, in order, each in one transaction."""
from __future__ import annotations

import logging
from importlib import resources

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import Jsonb

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


def connect(dsn: str, what: str, where: str | None = None) -> psycopg.Connection:
    """`where`: the settings the caller took the DSN from, named in the error (by default the
    command's --dsn option and PGTRAIL_<WHAT>_DSN)."""
    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise Fatal(f"cannot connect to the {what} database ({describe_dsn(dsn)}): {first}; "
                    f"check {where or f'--dsn or PGTRAIL_{what.upper()}_DSN'}") from exc


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


# what a user mapping holds; everything else of the vault DSN is the foreign server's
_CREDENTIALS = ("user", "password")


def configure_vault_reports(dsn: str, vault_dsn: str) -> str:
    """Let the original reporting functions run in this source database: a postgres_fdw server for
    the vault and a user mapping with its credentials (sql/source/009_vault_reports.sql). The
    password travels as a bound parameter: never in a statement's text (which the DDL event
    records), never logged here. Returns where the reports read, without credentials."""
    try:
        params = {k: str(v) for k, v in conninfo_to_dict(vault_dsn).items() if v is not None}
    except psycopg.ProgrammingError:
        # the parser's message may quote the string, password included
        raise Fatal("the vault DSN is not a valid connection string") from None
    server = {k: v for k, v in params.items() if k not in _CREDENTIALS}
    server.setdefault("connect_timeout", "10")  # a vault behind a dropped route: an error, not a hang
    user = {k: v for k, v in params.items() if k in _CREDENTIALS}
    with connect(dsn, "source") as conn:
        try:
            with conn.transaction():
                conn.execute("select set_config('pgtrail.installing', 'source', true)")
                # a server logging statements or their parameters must not log this one's
                for setting, value in (("log_statement", "none"), ("log_min_duration_statement", "-1"),
                                       ("log_parameter_max_length", "0")):
                    conn.execute("select set_config(%s, %s, true)", (setting, value))
                where = conn.execute("select script_tracking.configure_vault(%s, %s)",
                                     (Jsonb(server), Jsonb(user))).fetchone()[0]
        except psycopg.Error as exc:
            raise Fatal(f"configuring the vault for reports failed on {describe_dsn(dsn)}: "
                        f"{exc.sqlstate} {str(exc).strip().splitlines()[0]}") from exc
    log.info("%s: %s", describe_dsn(dsn), where)
    return where


def check_vault_reports(dsn: str) -> str | None:
    """None when the reports of this source database reach the vault, else the one-line reason."""
    with connect(dsn, "source") as conn:
        try:
            conn.execute("select count(*) from script_tracking.get_execution_history(1)")
        except psycopg.Error as exc:
            return str(exc).strip().splitlines()[0]
    return None
