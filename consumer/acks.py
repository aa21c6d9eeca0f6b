"""Which WAL position may be confirmed: only ends of transactions whose events Kafka has."""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass


def lsn_to_int(lsn: str) -> int:
    hi, lo = lsn.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def int_to_lsn(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


@dataclass(slots=True)
class _Unit:
    end_lsn: int | None  # None: still open (no C yet), or a non-transactional message
    closed: bool = False
    outstanding: int = 0


class AckTracker:
    """Tracks Kafka acknowledgements per transaction, in stream order.

    Guarantee: `confirmable()` returns the end LSN of the newest transaction such that it and every
    transaction before it were closed (C seen) and had all their events acknowledged. Nothing
    later is ever reported, so a crash re-reads from there and loses nothing.

    Callbacks arrive on the Kafka client's thread; counts are guarded by one lock.
    """

    def __init__(self) -> None:
        self._units: deque[_Unit] = deque()
        self._lock = threading.Lock()
        self._pending = 0
        self.acked = 0
        self.failure: BaseException | None = None

    @property
    def pending(self) -> int:
        return self._pending

    def begin(self) -> _Unit:
        unit = _Unit(end_lsn=None)
        self._units.append(unit)
        return unit

    def add(self, unit: _Unit):
        """Count one event of `unit` as sent; returns its delivery callback."""
        with self._lock:
            unit.outstanding += 1
            self._pending += 1

        def done(exc: BaseException | None) -> None:
            with self._lock:
                unit.outstanding -= 1
                self._pending -= 1
                if exc is None:
                    self.acked += 1
                elif self.failure is None:
                    self.failure = exc
        return done

    def close(self, unit: _Unit, end_lsn: int | None) -> None:
        unit.end_lsn = end_lsn
        unit.closed = True

    def confirmable(self) -> int | None:
        """Pop finished units from the front; return the newest end LSN among them, if any."""
        newest = None
        with self._lock:
            if self.failure is not None:
                return None  # never confirm past a message Kafka refused
            while self._units and self._units[0].closed and self._units[0].outstanding == 0:
                unit = self._units.popleft()
                if unit.end_lsn is not None:
                    newest = unit.end_lsn
        return newest
