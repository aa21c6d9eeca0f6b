"""The capture loop: replication stream -> decoder -> normalizer -> publisher, confirming LSNs.

It never blocks on Kafka: sends are asynchronous, acknowledgements arrive on the client's thread,
and the loop confirms to PostgreSQL only what `AckTracker` says Kafka has. When too many events
await acknowledgement it stops reading WAL but keeps sending status updates, so a slow Kafka
never trips wal_sender_timeout.
"""
from __future__ import annotations

import hashlib
import logging
import time
from typing import Callable, Mapping

from consumer import metrics
from consumer.acks import AckTracker, int_to_lsn, lsn_to_int
from consumer.classify import Redactor
from consumer.decoder import Begin, Commit, Message, decode
from consumer.normalizer import Normalizer
from consumer.source import SourceSession
from consumer.stream import ReplicationStream, SlotLost
from pgtrail.errors import Fatal, Poison, Retryable, classify_kafka
from publisher.base import Publisher
from schemas import DdlEvent, DmlEvent, HeartbeatEvent, SecurityEvent

log = logging.getLogger(__name__)


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

    def stop(self) -> None:
        self._stop = True

    def run(self, until: Callable[[], bool] | None = None) -> None:
        try:
            identity = self.stream.open()
        except SlotLost as exc:
            metrics.SLOT_LOST.labels(self.label or exc.database, self.slot).set(1)
            raise
        keys = self.session.signing_keys()
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
        unit = None
        last_keepalive = last_gauges = self.clock()
        last_heartbeat = self.clock() - self.heartbeat_interval
        db = self.database
        untracked = metrics.ROWS_UNTRACKED.labels(db)
        pending, lag = metrics.PENDING_EVENTS.labels(db), metrics.LAG_BYTES.labels(db)
        try:
            while not self._stop and not (until and until()):
                self._check_failure()
                if self.heartbeat_interval and self.clock() - last_heartbeat >= self.heartbeat_interval:
                    last_heartbeat = self.clock()
                    self._heartbeat()
                if self.tracker.pending >= self.max_pending:
                    # Back-pressure: wait for acks without reading WAL, but keep the walsender alive.
                    self._confirm()
                    if self.clock() - last_keepalive >= 1.0:
                        self.stream.keepalive()
                        last_keepalive = self.clock()
                    time.sleep(0.01)
                    continue
                msg = self.stream.read(timeout=0.5)
                if msg is not None:
                    unit = self._handle(msg.payload, unit, db)
                    if self.normalizer.rows_untracked:
                        untracked.inc(self.normalizer.rows_untracked)
                        self.normalizer.rows_untracked = 0
                self._confirm()
                now = self.clock()
                if now - last_gauges >= 0.1:  # gauges are scraped every few seconds: no need per message
                    last_gauges = now
                    pending.set(self.tracker.pending)
                    wal_end = self.stream.wal_end
                    if wal_end and self.confirmed:
                        lag.set(max(0, wal_end - self.confirmed))
            self.publisher.flush(timeout=30)
            self._check_failure()
            self._confirm(force=True)
        finally:
            up.set(0)
            self.stream.close()
            self.session.close()

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

    def _handle(self, payload: bytes, unit, db: str):
        try:
            change = decode(payload)
        except Poison as exc:
            self._dead_letter(payload, str(exc), unit)
            return unit
        if isinstance(change, Begin):
            unit = self.tracker.begin()
        standalone = isinstance(change, Message) and not change.transactional
        target = self.tracker.begin() if standalone else unit
        last_event = False
        try:
            for event in self.normalizer.feed(change):
                kind = event.kind
                consumed = self._consumed.get(kind) or self._consumed.setdefault(
                    kind, metrics.EVENTS_CONSUMED.labels(db, kind))
                consumed.inc()
                if kind != "heartbeat":
                    last_event = True
                if isinstance(event, HeartbeatEvent):
                    now = time.time()
                    metrics.HEARTBEAT_RTT.labels(db).set(max(0.0, now - event.payload.sent_at))
                    metrics.LAST_HEARTBEAT.labels(db).set(now)
                elif isinstance(event, DdlEvent):
                    if event.payload.untracked:
                        metrics.UNTRACKED_DDL.labels(db).inc()
                elif isinstance(event, DmlEvent):
                    for tag in event.tags:
                        if tag in ("PII", "PHI", "FINANCIAL"):
                            counter = self._sensitive.get(tag) or self._sensitive.setdefault(
                                tag, metrics.SENSITIVE_CHANGES.labels(db, tag))
                            counter.inc()
                elif isinstance(event, SecurityEvent):
                    metrics.SECURITY_EVENTS.labels(db).inc()
                    log.warning("security event in %s at %s: %s", db, event.source.change_lsn, event.payload.reason)
                done = self.tracker.add(target)
                self.publisher.publish(event, self._counted(done, db, kind))
        except Poison as exc:
            self._dead_letter(payload, str(exc), target)
        if last_event:
            if self._last_event is None:
                self._last_event = metrics.LAST_EVENT.labels(db)
            self._last_event.set(time.time())
        if standalone:
            self.tracker.close(target, None)
        if isinstance(change, Commit):
            self.tracker.close(unit, lsn_to_int(change.end_lsn))
            unit = None
        return unit

    def _counted(self, done, db: str, kind: str):
        counter = self._published.get(kind) or self._published.setdefault(kind, metrics.EVENTS_PUBLISHED.labels(db, kind))

        def on_delivery(exc: BaseException | None) -> None:
            if exc is None:
                counter.inc()
            done(exc)
        return on_delivery

    def _dead_letter(self, payload: bytes, reason: str, unit) -> None:
        log.warning("dead-lettering a WAL line from %s: %s", self.database, reason)
        metrics.DEAD_LETTERS.labels(self.database).inc()
        metrics.ERRORS.labels(self.database, "poison").inc()
        if unit is None:
            unit = self.tracker.begin()
            self.tracker.close(unit, None)
        self.publisher.dead_letter(payload, reason, f"{self.database}/{self.slot}", self.tracker.add(unit))

    def _check_failure(self) -> None:
        exc = self.tracker.failure
        if exc is not None:
            raise classify_kafka(exc)(f"Kafka did not acknowledge an event: {exc!r}") from exc

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
