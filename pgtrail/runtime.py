"""Process-wide interpreter settings for pgtrail's long-running, high-rate processes."""
from __future__ import annotations

import gc
import sys


def tune_for_throughput() -> None:
    """Collect garbage rarely and hand the GIL over every millisecond.

    A capture or sink process makes a few short-lived objects per row and keeps the state of up to
    max_pending_events in-flight messages alive. With CPython's default thresholds (700
    allocations) the collector runs every hundred rows or so and its older generations re-scan
    all that live state: measured here, 27% of the kafka-python driver's time and 15% of a bare
    send loop's. Nothing on the hot path makes reference cycles, so a rare collection loses
    nothing. A 1 ms switch interval (default 5 ms) lets kafka-python's I/O thread run promptly
    while the loop is busy. bench.capture applies the same to the drivers' bare-loop floors.
    """
    gc.collect()
    gc.freeze()  # start-up objects (modules, settings) are never scanned again
    gc.set_threshold(100_000, 50, 1000)
    sys.setswitchinterval(0.001)
