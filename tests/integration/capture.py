"""Read what a workload wrote to a fresh slot through the consumer's own stream, decoder and
normalizer (real PostgreSQL and wal2json; no Kafka): for tests of the source side."""
from __future__ import annotations

import time
import uuid

import psycopg

from consumer.classify import Redactor
from consumer.decoder import decode
from consumer.normalizer import Normalizer
from consumer.source import SourceSession
from consumer.stream import ReplicationStream
from schemas import OperationEvent
from tests.conftest import dsn


class Capture:
    def __init__(self, db: str):
        self.db = db
        self.slot = f"cap_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(dsn(db), autocommit=True) as conn:
            conn.execute("select pg_create_logical_replication_slot(%s, 'wal2json')", (self.slot,))

    def read(self, timeout: float = 30.0) -> list:
        """Every event committed so far: reads up to an operation written now, as an end marker
        (the server's WAL position alone says nothing of what decoding has delivered)."""
        marker = f"capture-end:{uuid.uuid4()}"
        with psycopg.connect(dsn(self.db), autocommit=True) as conn:
            conn.execute("select script_tracking.track_operation(%s, 'TEST')", (marker,))
        stream = ReplicationStream(dsn(self.db), self.slot, status_interval=1)
        identity = stream.open()
        session = SourceSession(dsn(self.db))
        n = Normalizer(identity.system_id, identity.database, self.slot, session.signing_keys(), Redactor(b"test"))
        session.close()
        events = []
        self.lines = []   # the stream's raw wal2json lines, as the consumer's options ask for them
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                msg = stream.read(timeout=0.5)
                if msg is None:
                    continue
                self.lines.append(msg.payload)
                new = [enc.event for enc in n.feed(decode(msg.payload))]
                if any(isinstance(e, OperationEvent) and e.payload.name == marker for e in new):
                    break
                events.extend(new)
            else:
                raise AssertionError(f"the end marker did not arrive within {timeout}s")
        finally:
            stream.close()
        self.untracked = n.rows_untracked
        return events

    def drop(self) -> None:
        with psycopg.connect(dsn(self.db), autocommit=True) as conn:
            conn.execute("select pg_drop_replication_slot(%s)", (self.slot,))
