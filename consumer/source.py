"""An ordinary (non-replication) session on the source: signing keys and heartbeats.

psycopg2, the driver the replication stream already uses: the consumer loads one PostgreSQL
driver, not two (psycopg 3 would add ~10 MB to its resident memory)."""
from __future__ import annotations

import psycopg2

from consumer.stream import first_line
from pgtrail.dsn import describe_dsn
from pgtrail.errors import Fatal, Retryable, classify_sqlstate


class SourceSession:
    """Reads the keys that verify pgtrail's messages, and writes heartbeats."""

    def __init__(self, dsn: str):
        self.dsn = dsn
        self._conn = None

    def _connection(self):
        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg2.connect(self.dsn, connect_timeout=10, application_name="pgtrail-consumer")
                self._conn.autocommit = True
                with self._conn.cursor() as cur:
                    cur.execute("set statement_timeout = '10s'")
            except psycopg2.OperationalError as exc:
                self.close()
                raise Retryable(f"cannot connect to the source database ({describe_dsn(self.dsn)}): "
                                f"{str(exc).strip().splitlines()[-1]}; check PGTRAIL_SOURCE_DSN") from exc
        return self._conn

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._connection().cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description is not None else []

    def signing_keys(self) -> dict[int, bytes]:
        try:
            rows = self._query("select kid, key from script_tracking.signing_keys()")
        except psycopg2.Error as exc:
            self.close()
            if exc.pgcode in ("42883", "3F000", "42P01"):
                raise Fatal(f"pgtrail's tracking SQL is not installed in {describe_dsn(self.dsn)}: "
                            "run `pgtrail install source`") from exc
            if exc.pgcode == "42501":
                raise Fatal(f"the consumer's role may not read pgtrail's signing keys on {describe_dsn(self.dsn)}: "
                            "GRANT pgtrail_consumer TO that role") from exc
            raise classify_sqlstate(exc.pgcode)(f"reading signing keys: {first_line(exc)}") from exc
        if not rows:
            raise Fatal(f"no signing key in {describe_dsn(self.dsn)}: run `pgtrail install source`")
        return {int(kid): bytes(key) for kid, key in rows}

    def slot_status(self, slot: str) -> tuple[str | None, int | None]:
        """(wal_status, safe_wal_size) of the slot, from pg_replication_slots."""
        try:
            rows = self._query("select wal_status, safe_wal_size from pg_replication_slots where slot_name = %s",
                               (slot,))
        except psycopg2.Error as exc:
            self.close()
            raise classify_sqlstate(exc.pgcode)(f"slot status: {first_line(exc)}") from exc
        return (rows[0][0], rows[0][1]) if rows else (None, None)

    def heartbeat(self) -> None:
        try:
            self._query("select script_tracking.heartbeat()")
        except psycopg2.Error as exc:
            self.close()
            raise classify_sqlstate(exc.pgcode)(f"heartbeat: {first_line(exc)}") from exc

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg2.Error:
                pass
            self._conn = None
