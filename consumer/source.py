"""An ordinary (non-replication) session on the source: signing keys and heartbeats."""
from __future__ import annotations

import psycopg

from pgtrail.dsn import describe_dsn
from pgtrail.errors import Fatal, Retryable, classify_sqlstate


class SourceSession:
    """Reads the keys that verify pgtrail's messages, and writes heartbeats."""

    def __init__(self, dsn: str):
        self.dsn = dsn
        self._conn: psycopg.Connection | None = None

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=10,
                                             application_name="pgtrail-consumer")
                self._conn.execute("set statement_timeout = '10s'")
            except psycopg.OperationalError as exc:
                raise Retryable(f"cannot connect to the source database ({describe_dsn(self.dsn)}): "
                                f"{str(exc).strip().splitlines()[-1]}; check PGTRAIL_SOURCE_DSN") from exc
        return self._conn

    def signing_keys(self) -> dict[int, bytes]:
        try:
            rows = self._connection().execute("select kid, key from script_tracking.signing_keys()").fetchall()
        except psycopg.Error as exc:
            self.close()
            if exc.sqlstate in ("42883", "3F000", "42P01"):
                raise Fatal(f"pgtrail's tracking SQL is not installed in {describe_dsn(self.dsn)}: "
                            "run `pgtrail install source`") from exc
            if exc.sqlstate == "42501":
                raise Fatal(f"the consumer's role may not read pgtrail's signing keys on {describe_dsn(self.dsn)}: "
                            "GRANT pgtrail_consumer TO that role") from exc
            raise classify_sqlstate(exc.sqlstate)(f"reading signing keys: {str(exc).strip().splitlines()[0]}") from exc
        if not rows:
            raise Fatal(f"no signing key in {describe_dsn(self.dsn)}: run `pgtrail install source`")
        return {int(kid): bytes(key) for kid, key in rows}

    def slot_status(self, slot: str) -> tuple[str | None, int | None]:
        """(wal_status, safe_wal_size) of the slot, from pg_replication_slots."""
        try:
            row = self._connection().execute(
                "select wal_status, safe_wal_size from pg_replication_slots where slot_name = %s", (slot,)).fetchone()
        except psycopg.Error as exc:
            self.close()
            raise classify_sqlstate(exc.sqlstate)(f"slot status: {str(exc).strip().splitlines()[0]}") from exc
        return (row[0], row[1]) if row else (None, None)

    def heartbeat(self) -> None:
        try:
            self._connection().execute("select script_tracking.heartbeat()")
        except psycopg.Error as exc:
            self.close()
            raise classify_sqlstate(exc.sqlstate)(f"heartbeat: {str(exc).strip().splitlines()[0]}") from exc

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                pass
            self._conn = None
