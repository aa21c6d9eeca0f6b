"""The capture loop: replication stream -> decoder -> normalizer -> publisher, confirming LSNs.

It never blocks on Kafka: sends are asynchronous, acknowledgements are served by polling the
publisher on the loop's own thread (no per-record thread hand-off), and the loop confirms to PostgreSQL only what `AckTracker` says Kafka has. When too many events
await acknowledgement it stops reading WAL but keeps sending status updates, so a slow Kafka
never trips wal_sender_timeout.
"""
from __future__ import annotations

import hashlib
import logging
import time
from typing import Callable, Mapping

import psycopg2

from consumer import metrics
from consumer.acks import AckTracker, int_to_lsn, lsn_to_int
from consumer.classify import Redactor
from consumer.decoder import Begin, Commit, Message, RowChange, decode
from consumer.normalizer import GENERAL, Normalizer
from consumer.oversize import fit
from consumer.source import SourceSession
from consumer.stream import ReplicationStream, SlotLost
from pgtrail.errors import Fatal, Poison, Retryable, classify_kafka
from publisher.base import Publisher
from schemas import DdlEvent, LogImportEvent, SecurityEvent

log = logging.getLogger(__name__)
_SENSITIVE = frozenset(("PII", "PHI", "FINANCIAL"))
# the `kind` label of simulated history (import_historical_operations): apart from the real events
SIMULATED = "log_import_simulated"


class CaptureService:
    """Streams one source database into Kafka.

    Guarantee: the slot's confirmed position only ever covers transactions whose events (and
    dead-lettered lines) Kafka acknowledged with acks=all. A crash at any point re-delivers from
    there; event ids repeat, and the sink ignores repeats.
    """

    def __init__(self, stream: ReplicationStream, publisher: Publisher, session: SourceSession, slot: str,
                 max_pending_events: int, heartbeat_interval: float = 10.0, redaction_key: bytes | None = None,
                 redaction_policy: Mapping[str, str] | None = None, clock: Callable[[], float] = time.monotonic,
                 label: str | None = None):
        self.stream = stream
        self.publisher = publisher
        self.session = session
        self.slot = slot
        self.heartbeat_interval = heartbeat_interval
        self.redaction_key = redaction_key
        self.redaction_policy = dict(redaction_policy or {})
        self.max_pending = max_pending_events
        self.clock = clock
        self.tracker = AckTracker()
        self.confirmed = 0
        self._stop = False
        self.streamed = False  # reached the stream at least once
        self.normalizer: Normalizer | None = None
        self.label = label  # the metrics label; by default the database's name
        self.database = label or "?"
        self._consumed: dict[str, object] = {}  # kind -> labelled counter child (labels() is costly per event)
        self._last_event = None  # labelled once the database is known: no series for a placeholder label
        self._published: dict[str, object] = {}
        self._sensitive: dict[str, object] = {}
        self._counts: dict[str, int] = {}  # events decoded per kind since the last metrics flush
        self._sensitive_counts: dict[str, int] = {}
        self._last_metrics = 0.0
        self._last_event_at = 0.0
        self._unit = None  # the open transaction's unit
        self._limit = publisher.settings.max_request_size

    def stop(self) -> None:
        self._stop = True

    def run(self, until: Callable[[], bool] | None = None) -> None:
        # pgtrail's SQL is checked before a slot is created: a slot left by a start that fails
        # (tracking SQL not installed) would pin the source's WAL.
        keys: dict[int, bytes] = {}
        try:
            identity = self.stream.open(before_slot=lambda: keys.update(self.session.signing_keys()))
        except SlotLost as exc:
            metrics.SLOT_LOST.labels(self.label or exc.database, self.slot).set(1)
            raise
        self.database = self.label or identity.database
        # Without an explicit key, hashed values are keyed by the source's first signing key: stable
        # across restarts, and secret wherever the signing key is.
        redaction_key = self.redaction_key or hashlib.sha256(b"pgtrail-redaction:" + keys[min(keys)]).digest()
        self.normalizer = Normalizer(identity.system_id, identity.database, self.slot, keys,
                                     Redactor(redaction_key, self.redaction_policy))
        log.info("streaming slot %s of %s (system %s)", self.slot, identity.database, identity.system_id)
        self.streamed = True
        self._last_event = None  # created at the first event: a 0 would read as "last event in 1970"
        up = metrics.SOURCE_UP.labels(self.database)
        up.set(1)
        self._unit = None
        last_heartbeat = self.clock() - self.heartbeat_interval
        self._last_keepalive = self.clock()
        self.publisher.on_backpressure = self._keepalive
        read_message = self.stream.reader()
        tracker, publisher, clock = self.tracker, self.publisher, self.clock
        handle = self._handle
        try:
            while not self._stop and not (until and until()):
                if tracker.failure is not None:
                    self._check_failure()
                now = clock()
                if self.heartbeat_interval and now - last_heartbeat >= self.heartbeat_interval:
                    last_heartbeat = now
                    self._heartbeat()
                if tracker.pending >= self.max_pending:
                    # Back-pressure: serve acks without reading WAL, but keep the walsender alive.
                    publisher.poll(0.05)
                    self._confirm()
                    self._keepalive()
                    self._flush_metrics(now)
                    continue
                # Up to BATCH messages already buffered, then serve deliveries once: no per-message
                # poll, no per-message thread hand-off.
                n = 0
                try:
                    while n < self.BATCH:
                        msg = read_message()
                        if msg is None:
                            break
                        handle(msg.payload)
                        n += 1
                except psycopg2.Error as exc:
                    raise self.stream.wrap_error(exc) from exc
                if n == 0:
                    publisher.poll(0)
                    msg = self.stream.read(timeout=0.05 if tracker.pending else 0.5)
                    if msg is not None:
                        handle(msg.payload)
                publisher.poll(0)
                self._confirm()
                self._flush_metrics(now)
            publisher.flush(timeout=30)
            self._check_failure()
            self._confirm(force=True)
        finally:
            self._flush_metrics(0.0, force=True)
            up.set(0)
            self.stream.close()
            self.session.close()

    BATCH = 500

    def _keepalive(self) -> None:
        if self.clock() - self._last_keepalive >= 1.0:
            self.stream.keepalive()
            self._last_keepalive = self.clock()

    def _flush_metrics(self, now: float, force: bool = False) -> None:
        """Counts kept in plain dicts on the hot path go to Prometheus at most every 100 ms."""
        if not force and now - self._last_metrics < 0.1:
            return
        self._last_metrics = now
        db = self.database
        for kind, n in self._counts.items():
            if n:
                child = self._consumed.get(kind) or self._consumed.setdefault(kind, metrics.EVENTS_CONSUMED.labels(db, kind))
                child.inc(n)
        self._counts.clear()
        for tag, n in self._sensitive_counts.items():
            child = self._sensitive.get(tag) or self._sensitive.setdefault(tag, metrics.SENSITIVE_CHANGES.labels(db, tag))
            child.inc(n)
        self._sensitive_counts.clear()
        acked = self.tracker.acked_by_kind
        for kind, n in acked.items():
            if n:
                child = self._published.get(kind) or self._published.setdefault(kind, metrics.EVENTS_PUBLISHED.labels(db, kind))
                child.inc(n)
        acked.clear()
        if self.normalizer is not None and self.normalizer.rows_untracked:
            metrics.ROWS_UNTRACKED.labels(db).inc(self.normalizer.rows_untracked)
            self.normalizer.rows_untracked = 0
        if self.normalizer is not None and self.normalizer.uncapturable:
            for (schema, table), n in self.normalizer.uncapturable.items():
                metrics.UNCAPTURABLE_STATEMENTS.labels(db, f"{schema}.{table}").inc(n)
            self.normalizer.uncapturable.clear()
        if self._last_event_at:
            if self._last_event is None:
                self._last_event = metrics.LAST_EVENT.labels(db)
            self._last_event.set(self._last_event_at)
            self._last_event_at = 0.0
        metrics.PENDING_EVENTS.labels(db).set(self.tracker.pending)
        wal_end = self.stream.wal_end
        if wal_end and self.confirmed:
            metrics.LAG_BYTES.labels(db).set(max(0, wal_end - self.confirmed))

    def _heartbeat(self) -> None:
        try:
            self.session.heartbeat()
            status, safe = self.session.slot_status(self.slot)
        except Retryable as exc:  # a missed heartbeat shows as a stale one; the stream goes on
            metrics.ERRORS.labels(self.database, "retryable").inc()
            log.warning("heartbeat failed: %s", exc)
            return
        metrics.SLOT_LOST.labels(self.database, self.slot).set(1 if status == "lost" else 0)
        if safe is not None:
            metrics.SLOT_SAFE_WAL_BYTES.labels(self.database, self.slot).set(safe)

    def _handle(self, payload: bytes) -> None:
        unit = self._unit
        try:
            change = decode(payload)
        except Poison as exc:
            self._dead_letter(payload, str(exc), unit)
            return
        tracker = self.tracker
        if type(change) is RowChange and unit is not None:   # the hot path: one row, at most one event
            enc = self.normalizer.row(change)
            if enc is None:
                return
            if enc is not GENERAL:
                try:
                    self._count_dml(enc.tags)
                    self._publish(enc, "dml", unit, change)
                except Poison as exc:
                    self._dead_letter(payload, str(exc), unit)
                self._last_event_at = time.time()
                return
        if type(change) is Begin:
            unit = self._unit = tracker.begin()
        standalone = type(change) is Message and not change.transactional
        target = tracker.begin() if standalone else unit
        last_event = False
        try:
            for enc in self.normalizer.feed(change):
                kind = label = enc.kind
                if kind == "dml":
                    last_event = True
                    self._count_dml(enc.tags)
                elif kind == "heartbeat":
                    now = time.time()
                    metrics.HEARTBEAT_RTT.labels(self.database).set(max(0.0, now - enc.event.payload.sent_at))
                    metrics.LAST_HEARTBEAT.labels(self.database).set(now)
                else:
                    last_event = True
                    event = enc.event
                    if isinstance(event, DdlEvent):
                        if event.payload.untracked:
                            metrics.UNTRACKED_DDL.labels(self.database).inc()
                    elif isinstance(event, SecurityEvent):
                        metrics.SECURITY_EVENTS.labels(self.database).inc()
                        log.warning("security event in %s at %s: %s", self.database, event.source.change_lsn,
                                    event.payload.reason)
                    elif isinstance(event, LogImportEvent) and event.payload.simulated:
                        label = SIMULATED  # made-up history is never counted as real events
                self._publish(enc, label, target, change)
        except Poison as exc:
            self._dead_letter(payload, str(exc), target)
        if last_event:
            self._last_event_at = time.time()
        if standalone:
            tracker.close(target, None)
        if type(change) is Commit:
            tracker.close(unit, lsn_to_int(change.end_lsn))
            self._unit = None

    def _count_dml(self, tags: list[str]) -> None:
        for tag in tags:
            if tag in _SENSITIVE:
                self._sensitive_counts[tag] = self._sensitive_counts.get(tag, 0) + 1

    def _publish(self, enc, label: str, unit, change) -> None:
        """Send one event of `unit`, counted under `label`; a value over Kafka's limit is fitted first."""
        counts = self._counts
        counts[label] = counts.get(label, 0) + 1
        limit = self._limit
        if len(enc.value) > limit - 65536:  # below this no event needs a look (oversize.fit checks exactly)
            enc, left_out = fit(enc, limit)
            if left_out:
                metrics.OVERSIZE_VALUES.labels(self.database).inc(left_out)
                log.warning("%s event at %s: %d value(s) over Kafka's message limit (%d bytes) left out "
                            "and referenced", enc.kind, getattr(change, "lsn", "?"), left_out, limit)
        self.publisher.send(self.publisher.topic(enc.kind), enc.key, enc.value, enc.headers,
                            self.tracker.add(unit, label))

    def _dead_letter(self, payload: bytes, reason: str, unit) -> None:
        log.warning("dead-lettering a WAL line from %s: %s", self.database, reason)
        metrics.DEAD_LETTERS.labels(self.database).inc()
        metrics.ERRORS.labels(self.database, "poison").inc()
        if unit is None:
            unit = self.tracker.begin()
            self.tracker.close(unit, None)
        self.publisher.dead_letter(payload, reason, f"{self.database}/{self.slot}", self.tracker.add(unit, "deadletter"))

    def _check_failure(self) -> None:
        exc = self.tracker.failure
        if exc is not None:
            cause = exc if isinstance(exc, BaseException) else None
            raise classify_kafka(exc)(f"Kafka did not acknowledge an event: {exc!r}") from cause

    def _confirm(self, force: bool = False) -> None:
        lsn = self.tracker.confirmable()
        if lsn is not None and lsn > self.confirmed:
            self.confirmed = lsn
            metrics.CONFIRMED_LSN.labels(self.database).set(lsn)
        if self.confirmed and (lsn is not None or force):
            self.stream.confirm(self.confirmed, force=force)


def run_with_restarts(make_service: Callable[[], CaptureService], max_backoff: float = 30.0,
                      sleep: Callable[[float], None] = time.sleep) -> None:
    """Run the capture loop; on a retryable error start again from the slot's confirmed position.

    A failure before the first start of the stream is a configuration problem until proven
    otherwise: it is raised as Fatal, so a wrong DSN says so at once instead of retrying forever.
    """
    backoff = 1.0
    ever_streamed = False
    while True:
        service = make_service()
        try:
            service.run()
            return
        except Retryable as exc:
            ever_streamed = ever_streamed or service.streamed
            if not ever_streamed:
                raise Fatal(str(exc)) from exc
            metrics.ERRORS.labels(service.database, "retryable").inc()
            log.warning("capture interrupted (%s); restarting from the confirmed position in %.0fs", exc, backoff)
            sleep(backoff)
            backoff = min(max_backoff, backoff * 2)
        finally:
            try:
                service.publisher.close()
            except Exception:  # noqa: BLE001 - closing after a failure must not mask it
                log.debug("publisher close failed", exc_info=True)


__all__ = ["CaptureService", "run_with_restarts", "int_to_lsn"]
