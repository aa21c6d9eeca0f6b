"""`pgtrail migrate status|apply|validate`: tracked migrations from a folder of SQL files.

Files: `V<version>__<description>.sql` (versioned, applied once, in version order) and
`R__<description>.sql` (repeatable, applied again whenever its checksum changes, after the
versioned ones). Header comments in the first lines set options:

    -- pgtrail:no-transaction        run statement by statement outside a transaction
                                     (CREATE INDEX CONCURRENTLY); a failure can leave earlier
                                     statements applied
    -- ticket: JIRA-123
    -- justification: why this change is needed

Each migration is a tracked script execution (script_tracking.track_script_execution): its start
is on record at once, its DDL events link to it, and it ends completed (with the migration's own
transaction, together with its row in script_tracking.migration_history) or failed (recorded
even though the transaction rolls back). A session-level advisory lock keeps two `apply` runs
from applying the same version twice. Checksums normalise line endings, so a checkout on another
operating system does not count as a change.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from pgtrail import sqlsplit
from pgtrail.errors import Fatal

_NAME = re.compile(r"^(?:V(?P<version>\d+(?:[._]\d+)*)|(?P<repeatable>R))__(?P<description>[^/]+)\.sql$")
_LOCK_KEY = "pgtrail.migrate"


class MigrationFailed(Fatal):
    """A migration failed and was rolled back; the message names the file, statement and error."""


@dataclass(frozen=True)
class Migration:
    path: Path
    version: str | None  # None for repeatable
    description: str
    content: str
    no_transaction: bool
    ticket: str | None
    justification: str | None

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def key(self) -> str:
        """migration_history.version: the version, or the file name of a repeatable."""
        return self.version if self.version is not None else self.name

    @property
    def order(self) -> tuple:
        if self.version is None:
            return (1, (), self.name)
        return (0, tuple(int(p) for p in re.split(r"[._]", self.version)), self.name)


def _header(content: str, key: str) -> str | None:
    for line in content.splitlines()[:20]:
        m = re.match(rf"\s*--\s*{key}\s*:\s*(.+?)\s*$", line, re.I)
        if m:
            return m.group(1)
    return None


def load_folder(folder: Path) -> list[Migration]:
    if not folder.is_dir():
        raise Fatal(f"migration folder {folder} does not exist")
    migrations, bad, seen = [], [], {}
    for path in sorted(folder.iterdir()):
        if path.suffix != ".sql":
            continue
        m = _NAME.match(path.name)
        if not m:
            bad.append(path.name)
            continue
        content = path.read_text(encoding="utf-8")
        head = "\n".join(content.splitlines()[:20]).lower()
        mig = Migration(path, m.group("version"), m.group("description").replace("_", " "), content,
                        "pgtrail:no-transaction" in head, _header(content, "ticket"),
                        _header(content, "justification"))
        if mig.version is not None:
            norm = tuple(int(p) for p in re.split(r"[._]", mig.version))
            if norm in seen:
                raise Fatal(f"{path.name} and {seen[norm]} have the same version")
            seen[norm] = path.name
        migrations.append(mig)
    if bad:
        raise Fatal(f"not migration file names (V<version>__<description>.sql or R__<description>.sql): "
                    f"{', '.join(bad)}")
    return sorted(migrations, key=lambda m: m.order)


class Migrator:
    def __init__(self, conn: psycopg.Connection, migrations: list[Migration], ticket: str | None = None,
                 justification: str | None = None, tenant: str | None = None):
        self.conn = conn
        self.migrations = migrations
        self.ticket = ticket
        self.justification = justification
        self.tenant = tenant
        try:
            conn.execute("select 1 from script_tracking.migration_history limit 1")
        except psycopg.errors.UndefinedTable:
            raise Fatal("pgtrail's tracking SQL is not installed (or is older than migrations): "
                        "run `pgtrail install source`") from None

    def _checksum(self, content: str) -> str:
        return self.conn.execute("select script_tracking.script_checksum(%s)", (content,)).fetchone()[0]

    def _applied(self) -> dict[str, list[dict[str, Any]]]:
        rows = self.conn.execute(
            "select version, checksum, file_name, applied_at, applied_by, duration_ms, repeatable "
            "from script_tracking.migration_history order by id").fetchall()
        applied: dict[str, list[dict[str, Any]]] = {}
        for version, checksum, file_name, at, by, ms, repeatable in rows:
            applied.setdefault(version, []).append({"checksum": checksum, "file_name": file_name, "applied_at": at,
                                                    "applied_by": by, "duration_ms": ms, "repeatable": repeatable})
        return applied

    def status(self) -> list[dict[str, Any]]:
        applied = self._applied()
        out = []
        for m in self.migrations:
            checksum = self._checksum(m.content)
            history = applied.pop(m.key, [])
            last = history[-1] if history else None
            if last is None:
                state = "pending"
            elif m.version is None:
                state = "applied" if last["checksum"] == checksum else "pending (changed)"
            else:
                state = "applied" if last["checksum"] == checksum else "changed after apply"
            out.append({"file": m.name, "version": m.version or "repeatable", "state": state,
                        "checksum": checksum, "applied_checksum": last["checksum"] if last else None,
                        "applied_at": last["applied_at"] if last else None,
                        "applied_by": last["applied_by"] if last else None,
                        "duration_ms": last["duration_ms"] if last else None})
        for key, history in applied.items():  # applied, but its file is gone
            last = history[-1]
            out.append({"file": last["file_name"], "version": key, "state": "applied, file missing",
                        "checksum": None, "applied_checksum": last["checksum"], "applied_at": last["applied_at"],
                        "applied_by": last["applied_by"], "duration_ms": last["duration_ms"]})
        return out

    def validate(self) -> list[str]:
        """Problems that forbid applying: applied versioned files whose content changed."""
        return [f"{s['file']} was changed after it was applied: applied checksum {s['applied_checksum']}, "
                f"file checksum {s['checksum']}" for s in self.status() if s["state"] == "changed after apply"]

    def apply(self, on_applied=print) -> list[str]:
        self.conn.execute("select pg_advisory_lock(hashtext(%s))", (_LOCK_KEY,))
        try:
            problems = self.validate()  # under the lock: another run may have just applied
            if problems:
                raise Fatal("refusing to apply: " + "; ".join(problems))
            done = []
            for s, m in zip(self.status(), self.migrations):
                if s["state"] in ("pending", "pending (changed)"):
                    ms = self._run(m, s["checksum"])
                    on_applied(f"applied {m.name} ({ms:.0f} ms)")
                    done.append(m.name)
            return done
        finally:
            self.conn.execute("select pg_advisory_unlock(hashtext(%s))", (_LOCK_KEY,))

    def _run(self, m: Migration, checksum: str) -> float:
        c = self.conn
        execution_id = c.execute(
            "select script_tracking.track_script_execution(%s, 'MIGRATION', %s, %s, %s, %s, %s, %s, %s)",
            (m.name, "REPEATABLE" if m.version is None else "VERSIONED", m.content, str(m.path), m.version,
             self.tenant, m.justification or self.justification, m.ticket or self.ticket)).fetchone()[0]
        started = time.monotonic()
        statement = None
        rows = 0
        try:
            if m.no_transaction:
                for _, statement in sqlsplit.split(m.content):
                    rows += max(c.execute(statement).rowcount, 0)
                statement = None
                with c.transaction():
                    self._record(m, checksum, execution_id, started, rows)
            else:
                with c.transaction():
                    if re.search(r"\bbegin\s+atomic\b", m.content, re.I):  # SQL-standard bodies: not splittable
                        rows = max(c.execute(m.content).rowcount, 0)
                    else:
                        for _, statement in sqlsplit.split(m.content):
                            rows += max(c.execute(statement).rowcount, 0)
                        statement = None
                    self._record(m, checksum, execution_id, started, rows)
        except psycopg.Error as exc:
            message = (exc.diag.message_primary or str(exc)).strip()
            if statement is None and exc.diag.statement_position:
                statement = sqlsplit.statement_at(m.content, int(exc.diag.statement_position) - 1)
            c.execute("select script_tracking.fail_script_execution(%s, %s, %s, %s)",
                      (execution_id, message, exc.sqlstate, statement))
            where = f" in statement: {' '.join(statement.split())[:300]}" if statement else ""
            rolled = "earlier statements stay applied (no-transaction)" if m.no_transaction else "rolled back"
            raise MigrationFailed(f"{m.name} failed ({exc.sqlstate}: {message}){where}; {rolled}; "
                                  f"execution {execution_id} recorded as failed") from exc
        return (time.monotonic() - started) * 1000

    def _record(self, m: Migration, checksum: str, execution_id, started: float, rows: int) -> None:
        ms = (time.monotonic() - started) * 1000
        self.conn.execute(
            "insert into script_tracking.migration_history (version, description, file_name, repeatable, checksum, "
            "execution_id, duration_ms) values (%s, %s, %s, %s, %s, %s, %s)",
            (m.key, m.description, m.name, m.version is None, checksum, execution_id, ms))
        self.conn.execute("select script_tracking.complete_script_execution(%s, %s)", (execution_id, rows))
