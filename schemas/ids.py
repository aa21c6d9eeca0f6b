"""Deterministic event ids.

An event's id is a UUIDv5 over (source system identifier, database, commit LSN, position in the
transaction). Replaying the same WAL after a crash yields the same ids, which is what lets the
vault ignore repeats and be exactly-once in effect.
"""
from __future__ import annotations

import uuid

# Fixed forever: changing it would give every replayed event a new identity.
PGTRAIL_NAMESPACE = uuid.UUID("5d7c1a3e-8f4b-5b7e-9c1d-2a6f0e4b8c11")


def event_id(system_id: str, database: str, commit_lsn: str, position: int) -> uuid.UUID:
    """Id of the `position`-th change (0-based, counted over every line wal2json emits between
    B and C) of the transaction that committed at `commit_lsn`.

    Non-transactional messages have no commit; they use their own LSN and position 0.
    """
    if position < 0:
        raise ValueError("position must be >= 0")
    name = f"{system_id}/{database}/{commit_lsn.upper()}/{position}"
    return uuid.uuid5(PGTRAIL_NAMESPACE, name)


def log_entry_id(server: str, key: str) -> uuid.UUID:
    """Id of one entry imported from a server log.

    `key` is built from the entry's content, never from the file it was read from, so the same
    entry found again (a second import, a rotated file overlapping the last one, the gzip of a
    file already imported) gets the same id and the vault adds nothing.
    """
    return uuid.uuid5(PGTRAIL_NAMESPACE, f"log/{server}/{key}")
