"""Decoded wal2json changes -> pgtrail events, one transaction at a time, change by change.

The normalizer keeps only the current transaction's header (commit LSN, time, position counter and
the last attribution context), never its rows, so memory does not grow with transaction size.

Positions count every line wal2json emits between B and C, so a replay of the same transaction
gives every event the same position and therefore the same id.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from consumer.decoder import Begin, Change, Commit, Message, RowChange
from pgtrail.errors import Poison
from schemas import (
    Actor,
    DdlEvent,
    DdlPayload,
    DmlEvent,
    DmlPayload,
    Event,
    OperationEvent,
    OperationPayload,
    Source,
    event_id,
)

MESSAGE_PREFIX = "pgtrail"
_OPERATIONS = {"I": "insert", "U": "update", "D": "delete", "T": "truncate"}
_ACTOR_FIELDS = frozenset(Actor.model_fields)


@dataclass(slots=True)
class _Txn:
    xid: int
    commit_lsn: str
    commit_time: datetime | None
    position: int = 0
    actor: Actor | None = None


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _json_value(value: Any) -> Any:
    # Decimal keeps numeric precision through decoding; on the wire it is a string.
    return str(value) if isinstance(value, Decimal) else value


def _values(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _json_value(v) for k, v in values.items()}


def _actor(obj: Any) -> Actor | None:
    if not isinstance(obj, dict):
        return None
    return Actor(**{k: v for k, v in obj.items() if k in _ACTOR_FIELDS})


class Normalizer:
    """Turns one slot's decoded changes into events.

    `feed()` returns the events a change produces (often none: B, C and context messages produce
    none). Raises Poison for a change it cannot turn into an event; the caller dead-letters it and
    goes on, and the position counter has already advanced, so later ids are unaffected.
    """

    def __init__(self, system_id: str, database: str, slot: str, prefix: str = MESSAGE_PREFIX):
        self.system_id = system_id
        self.database = database
        self.slot = slot
        self.prefix = prefix
        self._txn: _Txn | None = None

    def feed(self, change: Change) -> list[Event]:
        if isinstance(change, Begin):
            self._txn = _Txn(change.xid, change.commit_lsn, _time(change.timestamp))
            return []
        if isinstance(change, Commit):
            self._txn = None
            return []
        txn = self._txn
        if isinstance(change, Message) and not change.transactional:
            # Emitted at once, outside any transaction: its own LSN identifies it.
            source = Source(system_id=self.system_id, database=self.database, slot=self.slot,
                            commit_lsn=None, change_lsn=change.lsn, position=0)
            return self._message(change, source, event_id(self.system_id, self.database, change.lsn, 0), None)
        if txn is None:
            raise Poison(f"{type(change).__name__} outside a transaction at {getattr(change, 'lsn', '?')}")
        position = txn.position
        txn.position += 1
        source = Source(system_id=self.system_id, database=self.database, slot=self.slot, xid=txn.xid,
                        commit_lsn=txn.commit_lsn, change_lsn=change.lsn, position=position,
                        commit_time=txn.commit_time)
        eid = event_id(self.system_id, self.database, txn.commit_lsn, position)
        if isinstance(change, Message):
            return self._message(change, source, eid, txn)
        return [self._row(change, source, eid, txn.actor)]

    def _row(self, change: RowChange, source: Source, eid: UUID, actor: Actor | None) -> DmlEvent:
        op = _OPERATIONS[change.action]
        new = _values(change.columns) if change.action in ("I", "U") else None
        old = _values(change.identity) if change.identity else None
        keys = change.pk
        row = new if new is not None else (old or {})
        primary_key = {k: row.get(k) for k in keys if k in row}
        changed: list[str] = []
        if op == "update" and old is not None and new is not None and set(old) - set(keys):
            changed = [k for k, v in new.items() if k in old and old[k] != v]
        payload = DmlPayload(operation=op, schema_name=change.schema, table=change.table,
                             primary_key=primary_key, new=new, old=old, changed_columns=changed)
        return DmlEvent(event_id=eid, source=source, actor=actor, payload=payload)

    def _message(self, msg: Message, source: Source, eid: UUID, txn: _Txn | None) -> list[Event]:
        if msg.prefix != self.prefix:
            return []
        try:
            body = json.loads(msg.content)
            kind = body["kind"]
        except (ValueError, KeyError, TypeError) as exc:
            raise Poison(f"pgtrail message at {msg.lsn} is not valid JSON with a kind: {exc!s}") from exc
        actor = _actor(body.get("actor"))
        try:
            if kind == "context":
                if txn is not None:
                    txn.actor = actor
                return []
            if kind == "ddl":
                payload = DdlPayload(command_tag=body["command_tag"], object_type=body.get("object_type"),
                                     schema_name=body.get("schema_name"),
                                     object_identity=body.get("object_identity"),
                                     statement=body.get("statement"))
                return [DdlEvent(event_id=eid, source=source, actor=actor, payload=payload)]
            if kind == "operation":
                payload = OperationPayload(operation_id=body["operation_id"], name=body["name"],
                                           operation_type=body["operation_type"])
                return [OperationEvent(event_id=eid, source=source, actor=actor, payload=payload)]
        except (KeyError, ValueError) as exc:
            raise Poison(f"pgtrail {kind} message at {msg.lsn} is incomplete: {exc!s}") from exc
        raise Poison(f"pgtrail message at {msg.lsn} has unknown kind {kind!r}")
