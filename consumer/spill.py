"""A FIFO of row changes that stays small in memory: past a bound it spills to a temporary file."""
from __future__ import annotations

import pickle
import tempfile
from typing import Iterator

from consumer.decoder import RowChange


class SpillBuffer:
    """Holds the rows of a CREATE TABLE AS until its DDL message has passed.

    Memory is bounded by `max_in_memory` rows whatever the size of the statement; the rest goes
    to an anonymous temporary file, deleted on close.
    """

    def __init__(self, max_in_memory: int = 10000):
        self.max_in_memory = max_in_memory
        self._rows: list[RowChange] = []
        self._file = None
        self._spilled = 0

    def append(self, row: RowChange) -> None:
        if self._file is None and len(self._rows) < self.max_in_memory:
            self._rows.append(row)
            return
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="pgtrail-held-")
        pickle.dump(row, self._file, protocol=pickle.HIGHEST_PROTOCOL)
        self._spilled += 1

    def __len__(self) -> int:
        return len(self._rows) + self._spilled

    def __iter__(self) -> Iterator[RowChange]:
        yield from self._rows
        if self._file is not None:
            self._file.flush()
            self._file.seek(0)
            for _ in range(self._spilled):
                yield pickle.load(self._file)

    def close(self) -> None:
        self._rows = []
        if self._file is not None:
            self._file.close()
            self._file = None
            self._spilled = 0
