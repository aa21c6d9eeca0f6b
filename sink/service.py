"""The sink loop: Kafka consumer group -> parse -> vault loader -> commit offsets."""
from __future__ import annotations

import logging
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import psycopg
from pydantic import ValidationError

from pgtrail.errors import Fatal, Poison, Retryable, classify_sqlstate
from publisher.base import Publisher
from schemas import Event
from schemas.fast import parse_event_fast
from sink import metrics
from sink.loader import RECORD_SOURCE, Loader, Staged, rows_for
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


@dataclass
class _Batch:
    records: list
    events: list[Event] = field(default_factory=list)
    failures: list = field(default_factory=list)  # dead-letter deliveries that failed
    dead: list[str] = field(default_factory=list)  # why each dead-lettered record was
    started: float = field(default_factory=time.monotonic)
    rows: dict | None = None  # the vault rows of `events` (sink.loader.rows_for)
    loading: Future | None = None  # the vault thread's start of it (_begin_in_turn)
    staged: Staged | None = None   # staged and sent, its commit not yet seen
    loaded: bool = False           # committed in the vault (or nothing to load)
    error: BaseException | None = None

    def settled(self) -> bool:
        """Committed, or failed for good: nothing more will happen to it on the vault thread."""
        return self.loaded or self.error is not None or (
            self.loading is not None and self.loading.done() and self.loading.exception() is not None)


class _Inline:
    """An executor that runs what it is given at once, on the caller's thread."""

    def submit(self, fn, *args) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - handed over like a thread's exception
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


class SinkService:
    """Loads batches of records, in order, on one vault thread, while this thread parses the next.

    With a loader that can stage (sink.loader.PairedLoader) batches overlap in the vault too: the
    vault thread stages batch N in one session while the server moves batch N-1 into the vault in
    the other, then waits for N-1's commit before it sends N's. A batch that fails that way is
    loaded again the sequential way (retries, the bad event searched for and dead-lettered).

    Guarantee: offsets are committed only after the vault transaction holding the batch has
    committed and every dead-lettered record of it is acknowledged by Kafka. A crash re-delivers
    the batch; the loader ignores what it already has.
    """

    def __init__(self, consumer: Reader, make_loader: Callable[[], Loader], dead_letters: Publisher,
                 max_batch: int, poll_timeout_ms: int, max_event_bytes: int = 8 * 1024 * 1024,
                 poison_ratio_limit: float = 0.5, poison_window: int = 200,
                 sleep: Callable[[float], None] = time.sleep, vault_inline: bool = False):
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
        self._stop = False
        self._pool: ThreadPoolExecutor | _Inline | None = None
        # the vault's work on this thread instead of a thread of its own: with an overlapping loader
        # the server already works beside this thread, and a second Python thread only adds GIL
        # hand-offs (bench.vault)
        self.vault_inline = vault_inline

    AHEAD = 2   # batches parsed and queued for the vault thread before this thread waits for it

    def stop(self) -> None:
        self._stop = True

    def run(self, until: Callable[[], bool] | None = None) -> None:
        """Batches flow through two stages: this thread polls and parses the next batches while the
        vault thread loads the ones before, in order, up to AHEAD batches queued for it (so neither
        stage waits for the other's slower moments). A batch's offsets are committed only after its
        vault commit, and in order, so the guarantee is the sequential one; an offset not committed
        only means a batch read again and ignored by the vault."""
        pool = self._pool = (_Inline() if self.vault_inline else
                             ThreadPoolExecutor(1, thread_name_prefix="pgtrail-vault"))
        inflight: deque[_Batch] = deque()
        try:
            while not self._stop and not (until and until()):
                batch = self._take()
                if batch is not None:
                    batch.loading = pool.submit(self._begin_in_turn, batch, inflight[-1] if inflight else None)
                    inflight.append(batch)
                # acknowledge what the vault has committed; wait when the queue is full, or when the
                # topic is quiet (then nothing is gained by waiting to commit)
                while inflight and (inflight[0].settled() or len(inflight) > self.AHEAD or batch is None):
                    self._finish(inflight.popleft())
            while inflight:
                self._finish(inflight.popleft())
        finally:
            pool.shutdown(wait=True, cancel_futures=True)   # a batch after a failed one is not loaded
            self._pool = None

    def run_once(self) -> int:
        """One batch, start to end (no overlap)."""
        batch = self._take()
        if batch is None:
            return 0
        self._load_sequentially(batch)
        self._finish(batch)
        return len(batch.records)

    def _take(self) -> "_Batch | None":
        """Poll and parse one batch; records that are not events go to the dead-letter topic."""
        try:
            records = self.consumer.poll(self.max_batch, self.poll_timeout_ms / 1000)
        except Retryable as exc:
            metrics.ERRORS.labels("retryable").inc()
            log.warning("Kafka unavailable (%s); retrying", exc)
            self.sleep(1.0)  # the records of this poll were not taken: nothing to redo
            return None
        metrics.ASSIGNED_PARTITIONS.set(self.consumer.assigned())
        if not records:
            return None
        batch = _Batch(records)
        for rec in records:
            if rec.value is not None and len(rec.value) > self.max_event_bytes:
                self._dead_letter(rec, f"oversized: {len(rec.value)} bytes (limit {self.max_event_bytes})",
                                  "oversized", batch)
                continue
            try:
                batch.events.append(parse_event_fast(rec.value))
            except (ValidationError, ValueError, TypeError) as exc:
                self._dead_letter(rec, f"invalid event: {_why(exc)}", "invalid", batch)
        batch.rows = rows_for(batch.events, RECORD_SOURCE) if batch.events else None  # pure: here, not on the vault thread
        return batch

    def _finish(self, batch: "_Batch") -> None:
        """After the batch's vault commit: its dead letters acknowledged, then its offsets."""
        if batch.loading is not None:
            batch.loading.result()  # re-raises what the vault thread raised (Fatal)
            if not batch.loaded:    # staged and sent: its commit is seen on the vault thread
                self._pool.submit(self._complete, batch).result()
        self.dead_letters.flush(timeout=30)
        if batch.failures:
            raise Retryable(f"dead-letter topic did not acknowledge: {batch.failures[0]!r}")
        self._commit(batch.records)
        metrics.BATCH_SECONDS.observe(time.monotonic() - batch.started)
        metrics.LAST_COMMIT.set(time.time())
        poisoned = len(batch.dead)
        self._recent.extend([True] * poisoned + [False] * (len(batch.records) - poisoned))
        self._check_poison_ratio()

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

    def _begin_in_turn(self, batch: "_Batch", before: "_Batch | None") -> None:
        """On the vault thread: stage this batch, see the one before committed, send this one.
        A batch queued behind one that failed is not loaded (the vault gets the batches in offset
        order or not at all; both are read again after a restart)."""
        if before is not None and (before.error is not None or before.loading.exception() is not None):
            raise Fatal("not loaded: the batch before it failed")
        staged = None
        loader = self._loader()
        if batch.events and getattr(loader, "overlapping", False):
            try:
                staged = loader.stage(batch.events, batch.rows)
            except psycopg.Error as exc:   # loaded the sequential way below, which classifies it
                log.info("staging a batch failed (%s); loading it the sequential way", _why(exc))
        try:
            if before is not None:
                self._complete(before)
        except BaseException:
            if staged is not None:
                staged.abort()
            raise
        if staged is not None:
            try:
                staged.send()
                batch.staged = staged
                return
            except psycopg.Error as exc:
                log.info("sending a batch failed (%s); loading it the sequential way", _why(exc))
        self._load_sequentially(batch)

    def _complete(self, batch: "_Batch") -> None:
        """On the vault thread: wait for a sent batch's commit; a batch that failed that way is
        loaded again the sequential way (rolled back, nothing of it is in the vault)."""
        if batch.error is not None:
            raise batch.error
        if batch.loaded:
            return
        staged, batch.staged = batch.staged, None
        try:
            if staged is not None:
                try:
                    self._count(batch.events, staged.result())
                    batch.loaded = True
                    return
                except psycopg.Error as exc:
                    log.info("a batch failed in the vault (%s); loading it the sequential way", _why(exc))
            self._load_sequentially(batch)
        except BaseException as exc:
            batch.error = exc
            raise

    def _load_sequentially(self, batch: "_Batch") -> None:
        """The batch in one vault transaction of its own: retried, the bad event searched for and
        dead-lettered (run_once, and a batch that could not be staged, sent or committed overlapped)."""
        self._load_with_retry(batch.events, batch.failures, batch.dead, batch.rows)
        batch.loaded = True

    def _load_with_retry(self, events: list[Event], failures, dead: list[str], rows=None) -> None:
        backoff = 0.5
        while True:
            try:
                self._load(events, failures, dead, rows)
                return
            except Retryable as exc:
                metrics.ERRORS.labels("retryable").inc()
                log.warning("vault unavailable (%s); retrying in %.1fs", exc, backoff)
                self._drop_loader()
                self.sleep(backoff)
                backoff = min(30.0, backoff * 2)

    def _load(self, events: list[Event], failures, dead: list[str], rows=None) -> None:
        if not events:
            return
        try:
            new = self._loader().load(events, rows)
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
                self._dead_letter_event(ev, f"vault rejected: {exc.sqlstate} {str(exc).splitlines()[0]}", failures,
                                        dead)

    def _count(self, events: list[Event], new: set) -> None:
        loaded: dict[str, int] = {}
        duplicates = 0
        every = len(new) == len(events)   # new holds only the batch's ids: then each event is new
        for ev in events:
            if every or ev.event_id in new:
                loaded[ev.kind] = loaded.get(ev.kind, 0) + 1
            else:
                duplicates += 1
        for kind, n in loaded.items():
            metrics.EVENTS_LOADED.labels(kind).inc(n)
        if duplicates:
            metrics.EVENTS_DUPLICATE.inc(duplicates)

    def _dead_letter(self, rec, reason: str, label: str, batch: "_Batch") -> None:
        failures = batch.failures
        batch.dead.append(label)
        log.warning("dead-lettering %s[%d]@%d: %s", rec.topic, rec.partition, rec.offset, reason)
        metrics.DEAD_LETTERS.labels(label).inc()
        origin = f"{rec.topic}/{rec.partition}/{rec.offset}"
        self.dead_letters.dead_letter(rec.value or b"", reason, origin,
                                      lambda exc, *_: failures.append(exc) if exc is not None else None)

    def _dead_letter_event(self, ev: Event, reason: str, failures, dead: list[str]) -> None:
        dead.append("rejected")
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
