"""The sink loop: Kafka consumer group -> parse -> vault loader -> commit offsets."""
from __future__ import annotations

import logging
import time
from collections import deque
from typing import Callable

import psycopg
from pydantic import ValidationError

from pgtrail.errors import Fatal, Poison, Retryable, classify_sqlstate
from publisher.base import Publisher
from schemas import Event, parse_event
from sink import metrics
from sink.loader import Loader
from sink.reader import Reader

log = logging.getLogger(__name__)


def classify_db_error(exc: psycopg.Error) -> type:
    if isinstance(exc, psycopg.OperationalError) and getattr(exc, "sqlstate", None) is None:
        return Retryable
    return classify_sqlstate(getattr(exc, "sqlstate", None))


def _why(exc: Exception) -> str:
    """The first thing wrong with a record, by field, e.g. 'dml.schema_version: Input should be ...'."""
    if isinstance(exc, ValidationError) and exc.errors():
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err.get("loc", ())) or "body"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        return f"{where}: {err.get('msg')}{more}"
    return str(exc).splitlines()[0]


class SinkService:
    """Loads one batch of records at a time.

    Guarantee: offsets are committed only after the vault transaction holding the batch has
    committed and every dead-lettered record of it is acknowledged by Kafka. A crash re-delivers
    the batch; the loader ignores what it already has.
    """

    def __init__(self, consumer: Reader, make_loader: Callable[[], Loader], dead_letters: Publisher,
                 max_batch: int, poll_timeout_ms: int, max_event_bytes: int = 8 * 1024 * 1024,
                 poison_ratio_limit: float = 0.5, poison_window: int = 200,
                 sleep: Callable[[float], None] = time.sleep):
        self.consumer = consumer
        self.make_loader = make_loader
        self.loader: Loader | None = None
        self.dead_letters = dead_letters
        self.max_batch = max_batch
        self.poll_timeout_ms = poll_timeout_ms
        self.sleep = sleep
        self.max_event_bytes = max_event_bytes
        self.poison_ratio_limit = poison_ratio_limit
        self._recent: deque[bool] = deque(maxlen=poison_window)  # True: that record was poison
        self._dead: list[str] = []  # dead-lettered in the current batch
        self._stop = False

    def stop(self) -> None:
        self._stop = True

    def run(self, until: Callable[[], bool] | None = None) -> None:
        while not self._stop and not (until and until()):
            self.run_once()

    def run_once(self) -> int:
        try:
            records = self.consumer.poll(self.max_batch, self.poll_timeout_ms / 1000)
        except Retryable as exc:
            metrics.ERRORS.labels("retryable").inc()
            log.warning("Kafka unavailable (%s); retrying", exc)
            self.sleep(1.0)  # the records of this poll were not taken: nothing to redo
            return 0
        metrics.ASSIGNED_PARTITIONS.set(self.consumer.assigned())
        if not records:
            return 0
        events: list[Event] = []
        failures: list[BaseException] = []
        for rec in records:
            if rec.value is not None and len(rec.value) > self.max_event_bytes:
                self._dead_letter(rec, f"oversized: {len(rec.value)} bytes (limit {self.max_event_bytes})",
                                  "oversized", failures)
                continue
            try:
                events.append(parse_event(rec.value))
            except (ValidationError, ValueError, TypeError) as exc:
                self._dead_letter(rec, f"invalid event: {_why(exc)}", "invalid", failures)
        started = time.monotonic()
        self._load_with_retry(events, failures)
        self.dead_letters.flush(timeout=30)
        if failures:
            raise Retryable(f"dead-letter topic did not acknowledge: {failures[0]!r}")
        self._commit(records)
        metrics.BATCH_SECONDS.observe(time.monotonic() - started)
        metrics.LAST_COMMIT.set(time.time())
        poisoned = len(self._dead)
        self._dead.clear()
        self._recent.extend([True] * poisoned + [False] * (len(records) - poisoned))
        self._check_poison_ratio()
        return len(records)

    def _check_poison_ratio(self) -> None:
        """Most records poison means a misconfigured producer or topic, not bad luck: stop and say so
        (after committing, so the dead-lettered records are not read again)."""
        ratio = sum(self._recent) / len(self._recent) if self._recent else 0.0
        metrics.POISON_RATIO.set(ratio)
        if len(self._recent) == self._recent.maxlen and ratio >= self.poison_ratio_limit:
            raise Fatal(f"{sum(self._recent)} of the last {len(self._recent)} records were poison "
                        f"(limit {self.poison_ratio_limit:.0%}): check what writes to the topics; the records "
                        "are in the dead-letter topic with their reasons")

    def _loader(self) -> Loader:
        if self.loader is None:
            self.loader = self.make_loader()
        return self.loader

    def _load_with_retry(self, events: list[Event], failures) -> None:
        backoff = 0.5
        while True:
            try:
                self._load(events, failures)
                return
            except Retryable as exc:
                metrics.ERRORS.labels("retryable").inc()
                log.warning("vault unavailable (%s); retrying in %.1fs", exc, backoff)
                self._drop_loader()
                self.sleep(backoff)
                backoff = min(30.0, backoff * 2)

    def _load(self, events: list[Event], failures) -> None:
        if not events:
            return
        try:
            new = self._loader().load(events)
            self._count(events, new)
            return
        except psycopg.Error as exc:
            kind = classify_db_error(exc)
            if kind is Retryable:
                raise Retryable(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc
            if kind is Fatal:
                metrics.ERRORS.labels("fatal").inc()
                raise Fatal(f"vault refused a batch: {exc.sqlstate} {str(exc).splitlines()[0]}") from exc
        # A data error somewhere in the batch: find it by loading one event at a time.
        for ev in events:
            try:
                self._count([ev], self._loader().load([ev]))
            except psycopg.Error as exc:
                kind = classify_db_error(exc)
                if kind is not Poison:
                    raise (Retryable if kind is Retryable else Fatal)(str(exc).splitlines()[0]) from exc
                metrics.ERRORS.labels("poison").inc()
                self._dead_letter_event(ev, f"vault rejected: {exc.sqlstate} {str(exc).splitlines()[0]}", failures)

    def _count(self, events: list[Event], new: set) -> None:
        for ev in events:
            if ev.event_id in new:
                metrics.EVENTS_LOADED.labels(ev.kind).inc()
            else:
                metrics.EVENTS_DUPLICATE.inc()

    def _dead_letter(self, rec, reason: str, label: str, failures) -> None:
        self._dead.append(label)
        log.warning("dead-lettering %s[%d]@%d: %s", rec.topic, rec.partition, rec.offset, reason)
        metrics.DEAD_LETTERS.labels(label).inc()
        origin = f"{rec.topic}/{rec.partition}/{rec.offset}"
        self.dead_letters.dead_letter(rec.value or b"", reason, origin,
                                      lambda exc, *_: failures.append(exc) if exc is not None else None)

    def _dead_letter_event(self, ev: Event, reason: str, failures) -> None:
        self._dead.append("rejected")
        log.warning("dead-lettering event %s: %s", ev.event_id, reason)
        metrics.DEAD_LETTERS.labels("rejected").inc()
        self.dead_letters.dead_letter(ev.model_dump_json().encode(), reason, str(ev.event_id),
                                      lambda exc, *_: failures.append(exc) if exc is not None else None)

    def _commit(self, records) -> None:
        offsets: dict[tuple[str, int], int] = {}
        for rec in records:
            tp = (rec.topic, rec.partition)
            if offsets.get(tp, -1) < rec.offset + 1:
                offsets[tp] = rec.offset + 1
        try:
            self.consumer.commit(offsets)  # False: a rebalance; the new owner re-reads, the vault ignores repeats
        except Retryable as exc:
            # the vault has the batch; an uncommitted offset only means it is read and ignored again
            metrics.ERRORS.labels("retryable").inc()
            log.warning("offset commit failed (%s); the batch will be re-read and ignored", exc)

    def _drop_loader(self) -> None:
        if self.loader is not None:
            try:
                self.loader.close()
            except Exception:  # noqa: BLE001
                pass
            self.loader = None

    def close(self) -> None:
        self._drop_loader()
