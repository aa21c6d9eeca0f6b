"""Many sources in one process: one capture loop per database, each on its own thread.

A source that fails — server down, bad credentials, slot lost, tracking SQL missing — is retried
on its own with a capped backoff; the others never notice. Its state is visible while it is down
(`pgtrail_consumer_source_up` 0, the reason in the log and in `states()`), so the process stays up
and keeps exporting metrics instead of exiting, which is what a single-source consumer does.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from consumer import metrics
from consumer.service import CaptureService
from pgtrail.errors import Fatal

log = logging.getLogger(__name__)


@dataclass
class SourceState:
    name: str
    status: str = "starting"          # starting | streaming | retrying | stopped
    last_error: str | None = None
    failures: int = 0
    since: float = field(default_factory=time.time)


class FleetConsumer:
    """Runs `make(name)` capture services for every name until `stop()`.

    Guarantee: each source keeps the single-source guarantee (an LSN is confirmed only after Kafka
    acknowledged its events); a failure of one source is contained to its own thread.
    """

    def __init__(self, names: list[str], make: Callable[[str], CaptureService], max_backoff: float = 60.0):
        if not names:
            raise Fatal("no source to consume: the selection (--source/--shard) matched none")
        self.names = names
        self.make = make
        self.max_backoff = max_backoff
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._running: dict[str, CaptureService] = {}
        self._states = {n: SourceState(n) for n in names}

    def states(self) -> list[SourceState]:
        with self._lock:
            return [SourceState(**vars(s)) for s in self._states.values()]

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            for service in self._running.values():
                service.stop()

    def run(self) -> None:
        threads = [threading.Thread(target=self._supervise, args=(n,), name=f"capture-{n}", daemon=True)
                   for n in self.names]
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.5)

    def _set(self, name: str, status: str, error: str | None = None) -> None:
        with self._lock:
            st = self._states[name]
            st.status, st.since = status, time.time()
            if error is not None:
                st.last_error = error
                st.failures += 1

    def _supervise(self, name: str) -> None:
        backoff = 1.0
        up = metrics.SOURCE_UP.labels(name)
        up.set(0)
        while not self._stopping.is_set():
            service = None
            try:
                service = self.make(name)
                with self._lock:
                    self._running[name] = service
                if self._stopping.is_set():
                    break
                self._set(name, "streaming")
                service.run()
                if self._stopping.is_set():
                    break
                error = "the capture loop ended"
            except Exception as exc:  # noqa: BLE001 - whatever one source does, the others go on
                error = f"{type(exc).__name__}: {exc}" if not isinstance(exc, (Fatal,)) else str(exc)
                kind = "fatal" if isinstance(exc, Fatal) else "retryable"
                metrics.ERRORS.labels(name, kind).inc()
                if service is not None and service.streamed:
                    backoff = 1.0  # it worked until now: come back quickly
            finally:
                up.set(0)
                with self._lock:
                    self._running.pop(name, None)
                if service is not None:
                    try:
                        service.publisher.close()
                    except Exception:  # noqa: BLE001 - closing after a failure must not mask it
                        log.debug("publisher close failed", exc_info=True)
            if self._stopping.is_set():
                break
            metrics.SOURCE_RESTARTS.labels(name).inc()
            self._set(name, "retrying", error)
            log.error("source %s: %s; retrying in %.0fs (the other sources go on)", name, error, backoff)
            self._stopping.wait(backoff)
            backoff = min(self.max_backoff, backoff * 2)
        self._set(name, "stopped")
