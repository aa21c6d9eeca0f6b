"""SinkService.run's two stages (sink/service.py): batches parsed ahead and loaded in order on the
vault thread, offsets committed only after their batch's vault commit and in order, and nothing
loaded behind a batch that failed. Pure logic: a scripted reader and loader stand in for Kafka and
the vault (the real ones are in tests/integration: crash, faults, poison)."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from pgtrail.errors import Fatal
from sink.reader import Rec
from sink.service import SinkService

BODIES = (Path(__file__).parent / "fixtures" / "events_v1.jsonl").read_bytes().splitlines()


class ScriptedReader:
    """Hands out `batches` (lists of record indexes into BODIES), then nothing."""

    def __init__(self, batches: list[list[int]]):
        self.batches = list(batches)
        self.commits: list[dict] = []
        self.log: list[tuple] = []

    def poll(self, max_records: int, timeout: float) -> list[Rec]:
        if not self.batches:
            return []
        return [Rec("t.dml", 0, i, BODIES[i]) for i in self.batches.pop(0)]

    def commit(self, offsets: dict) -> bool:
        self.commits.append(dict(offsets))
        self.log.append(("commit", offsets[("t.dml", 0)]))
        return True

    def assigned(self) -> int:
        return 1

    def close(self) -> None:
        pass


class ScriptedLoader:
    def __init__(self, log: list, fail_on: int | None = None, delay: float = 0.05):
        self.log, self.fail_on, self.delay = log, fail_on, delay
        self.loaded: list[int] = []

    def load(self, events, rows=None) -> set:
        time.sleep(self.delay)  # the vault is slower than parsing: batches queue up behind it
        n = len(self.loaded)
        self.loaded.append(n)
        if n == self.fail_on:
            raise Fatal("vault refused the batch")
        self.log.append(("loaded", n))
        return {e.event_id for e in events}

    def close(self) -> None:
        pass


class NoDeadLetters:
    def dead_letter(self, *a, **k):
        raise AssertionError("no record here is poison")

    def flush(self, timeout=None):
        return 0


def service(reader, loader) -> SinkService:
    return SinkService(reader, lambda: loader, NoDeadLetters(), max_batch=10, poll_timeout_ms=10,
                       sleep=lambda s: None)


def test_offsets_follow_their_batch_vault_commit_in_order():
    batches = [[0, 1], [2, 3], [4, 5], [6, 7], [8]]
    reader = ScriptedReader(batches)
    loader = ScriptedLoader(reader.log)
    svc = service(reader, loader)
    svc.run(until=lambda: not reader.batches and len(reader.commits) == len(batches))
    assert loader.loaded == [0, 1, 2, 3, 4]
    # each commit comes after its own batch's load, and the offsets only grow
    assert [c[("t.dml", 0)] for c in reader.commits] == [2, 4, 6, 8, 9]
    for k, offset in enumerate([2, 4, 6, 8, 9]):
        assert reader.log.index(("loaded", k)) < reader.log.index(("commit", offset))


def test_nothing_is_loaded_or_committed_behind_a_batch_that_failed():
    reader = ScriptedReader([[0, 1], [2, 3], [4, 5], [6, 7]])
    loader = ScriptedLoader(reader.log, fail_on=1, delay=0.1)
    svc = service(reader, loader)
    with pytest.raises(Fatal, match="vault refused"):
        svc.run()
    # batch 0 committed; batch 1 failed; the batches queued behind it never reached the vault
    assert reader.commits == [{("t.dml", 0): 2}]
    assert ("loaded", 2) not in reader.log and ("loaded", 3) not in reader.log
    assert loader.loaded == [0, 1]
    assert threading.active_count() == 1 or all(not t.name.startswith("pgtrail-vault")
                                                 for t in threading.enumerate())
