"""Decoded wal2json changes -> pgtrail events, one transaction at a time, change by change.

Per transaction the normalizer keeps its header (commit LSN and time), the attribution context
and which tables are tracked in it. Rows of a transaction are never accumulated, with one
exception: after the marker of CREATE TABLE AS / SELECT INTO / CREATE MATERIALIZED VIEW, the rows
that precede the DDL message in the WAL are held back (spilled to disk past a bound) and emitted
after the table's creation.

Messages with pgtrail's prefix must carry a valid signature (consumer/signing.py); anything else
becomes a security event, never a trusted one. Row changes are published only for tables whose
tracking trigger emitted a context in the same transaction, attributed to that context's actor,
with sensitive values redacted.

Positions number the events of a transaction in the order they are emitted. Replaying the same
WAL emits the same events in the same order, so ids (schemas/ids.py) repeat exactly.
"""
from __future__ import annotations

import json
import logging
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterator
from uuid import UUID

from consumer.classify import ColumnRule, Redactor, tags_for
from consumer.decoder import Begin, Change, Commit, Message, RowChange
from consumer.logs import log_import_events
from consumer.signing import Forged, verify
from consumer.spill import SpillBuffer
from pgtrail.errors import Poison
from schemas import (
    Actor,
    DdlEvent,
    DdlPayload,
    DmlEvent,
    DmlPayload,
    Event,
    HeartbeatEvent,
    HeartbeatPayload,
    OperationEvent,
    OperationPayload,
    ScriptEvent,
    ScriptPayload,
    SecurityEvent,
    SecurityPayload,
    Source,
    event_id,
)
from schemas.wire import DmlWire, Encoded, encode

MESSAGE_PREFIX = "pgtrail"
SECURITY_CONTENT_LIMIT = 65536
GENERAL = object()   # Normalizer.row(): this change goes through feed()
_OPERATIONS = {"I": "insert", "U": "update", "D": "delete", "T": "truncate"}
_ACTOR_FIELDS = frozenset(Actor.model_fields)
_SCRIPT_FIELDS = frozenset(ScriptPayload.model_fields)
_OPERATION_FIELDS = frozenset(OperationPayload.model_fields)

log = logging.getLogger(__name__)


@dataclass(slots=True, frozen=True)
class _Table:
    """A tracked table as its context message described it."""

    overrides: dict[str, Any]
    categories: frozenset[str]
    columns: tuple[str, ...]
    sensitive: dict[str, ColumnRule]  # rules of the sensitive columns, worked out once per transaction
    column_set: frozenset[str]
    tags: list[str]  # tags_for(categories)


@dataclass(slots=True)
class _Txn:
    xid: int
    commit_lsn: str
    commit_time: datetime | None
    position: int = 0
    actor: Actor | None = None
    tracked: dict[tuple[str, str], _Table] = field(default_factory=dict)
    held: SpillBuffer | None = None  # rows waiting for their CREATE TABLE AS
    ddl_seen: bool = False
    wire: DmlWire | None = None  # the serialised constant part of this transaction's DML events
    # exact NaN/Infinity/-Infinity values of the next rows of a table, which wal2json sends as null
    specials: dict[tuple[str, str], deque] = field(default_factory=dict)


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _actor(obj: Any) -> Actor | None:
    if not isinstance(obj, dict):
        return None
    return Actor(**{k: v for k, v in obj.items() if k in _ACTOR_FIELDS})


class Normalizer:
    """Turns one slot's decoded changes into events.

    `feed()` yields the events a change produces (often none), encoded for Kafka. Raises Poison
    for a change it cannot turn into an event; the caller dead-letters it and goes on.

    DML events are written by schemas.wire.DmlWire without building a pydantic model per row;
    `reference=True` builds every event through the pydantic models instead (what the fast path
    must equal byte for byte: tests/unit/test_wire.py).
    """

    def __init__(self, system_id: str, database: str, slot: str, keys: dict[int, bytes],
                 redactor: Redactor, prefix: str = MESSAGE_PREFIX, reference: bool = False):
        self.reference = reference
        self.system_id = system_id
        self.database = database
        self.slot = slot
        self.keys = keys
        self.redactor = redactor
        self.prefix = prefix
        self.rows_untracked = 0  # row changes of untracked tables, skipped by design
        # UPDATE/DELETE statements on tracked tables without replica identity, by (schema, table):
        # wal2json sends none of their rows; the source's context trigger reports each statement
        self.uncapturable: dict[tuple[str, str], int] = {}
        self._warned_uncapturable: set[tuple[str, str]] = set()
        self._txn: _Txn | None = None
        # Script executions started and not yet finished, by backend pid: DDL that one of them runs
        # is linked to it; any other DDL is flagged as untracked. Bounded: a session that never
        # finishes its execution cannot grow this without end.
        self._open_executions: OrderedDict[int, UUID] = OrderedDict()

    # ------------------------------------------------------------------ entry point
    def feed(self, change: Change) -> list[Encoded]:
        return [e if type(e) is Encoded else encode(e) for e in self._feed(change)]

    def row(self, change: RowChange) -> Encoded | None | object:
        """The capture loop's hot path: a row change's event without feed()'s generator and list;
        or None (a table not tracked in this transaction), or GENERAL when feed() must take it
        (outside a transaction, rows held back for a DDL, reference mode)."""
        txn = self._txn
        if txn is None or txn.held is not None or self.reference:
            return GENERAL
        return self._row(change, txn)

    def _feed(self, change: Change) -> Iterator[Event | Encoded]:
        if isinstance(change, Begin):
            self._txn = _Txn(change.xid, change.commit_lsn, _time(change.timestamp))
            return
        txn = self._txn
        if isinstance(change, Commit):
            if txn is not None:
                yield from self._release(txn)
                if txn.held is not None:
                    txn.held.close()
            self._txn = None
            return
        if isinstance(change, Message):
            if change.prefix != self.prefix:
                return
            if not change.transactional:
                source = Source(system_id=self.system_id, database=self.database, slot=self.slot,
                                change_lsn=change.lsn, position=0)
                yield from self._message(change, source, event_id(self.system_id, self.database, change.lsn, 0), None)
                return
            if txn is None:
                raise Poison(f"transactional message outside a transaction at {change.lsn}")
            yield from self._message(change, None, None, txn)
            return
        if txn is None:
            raise Poison(f"row change outside a transaction at {change.lsn}")
        if txn.held is not None:
            if txn.ddl_seen:
                yield from self._release(txn)  # the DDL and its contexts are through: rows flow again
            else:
                txn.held.append(change)
                return
        event = self._row(change, txn)
        if event is not None:
            yield event

    # ------------------------------------------------------------------ helpers
    def _source(self, txn: _Txn, change_lsn: str | None) -> tuple[Source, UUID]:
        position = txn.position
        txn.position += 1
        source = Source(system_id=self.system_id, database=self.database, slot=self.slot, xid=txn.xid,
                        commit_lsn=txn.commit_lsn, change_lsn=change_lsn, position=position,
                        commit_time=txn.commit_time)
        return source, event_id(self.system_id, self.database, txn.commit_lsn, position)

    def _release(self, txn: _Txn) -> Iterator[Event]:
        held, txn.held, txn.ddl_seen = txn.held, None, False
        if held is None:
            return
        try:
            for row in held:
                event = self._row(row, txn)
                if event is not None:
                    yield event
        finally:
            held.close()

    def _row(self, change: RowChange, txn: _Txn) -> Event | Encoded | None:
        table = txn.tracked.get((change.schema, change.table))
        if table is None:
            self.rows_untracked += 1
            return None
        action = change.action
        op = _OPERATIONS[action]
        new = change.columns if action == "I" or action == "U" else None
        if txn.specials and new is not None:
            new = self._special_numbers(txn, change, new)
        old = change.identity or None
        keys = change.pk
        row = new if new is not None else (old or {})
        primary_key = {k: row[k] for k in keys if k in row}
        changed: list[str] = []
        unchanged: list[str] = []
        if action == "U":
            if old is not None and new is not None and set(old) - set(keys):
                changed = [k for k, v in new.items() if k in old and old[k] != v]
            # wal2json leaves unchanged TOASTed values out of an UPDATE: say so, never pretend null
            if not new.keys() >= table.column_set:
                unchanged = [c for c in table.columns if c not in new]
        redacted: dict[str, str] = {}
        tags = table.tags
        redactor = self.redactor
        if (new is None or new.keys() <= table.column_set) and (old is None or old.keys() <= table.column_set):
            sensitive = table.sensitive
            if sensitive:  # every rule's categories are the table's already: none to collect
                new = redactor.apply(new, sensitive, redacted, None)
                old = redactor.apply(old, sensitive, redacted, None)
                if not sensitive.keys().isdisjoint(primary_key):
                    primary_key = redactor.apply(primary_key, sensitive, redacted, None)
        else:  # a column the context did not list (added later in the transaction): rules by name
            categories: set[str] = set(table.categories)
            new = redactor.redact(new, table.overrides, redacted, categories)
            old = redactor.redact(old, table.overrides, redacted, categories)
            primary_key = redactor.redact(primary_key, table.overrides, redacted, categories)
            if len(categories) != len(table.categories):
                tags = tags_for(categories)
        position = txn.position
        txn.position += 1
        if self.reference:
            source = Source(system_id=self.system_id, database=self.database, slot=self.slot, xid=txn.xid,
                            commit_lsn=txn.commit_lsn, change_lsn=change.lsn, position=position,
                            commit_time=txn.commit_time)
            payload = DmlPayload(operation=op, schema_name=change.schema, table=change.table,
                                 primary_key=primary_key, new=new, old=old, changed_columns=changed,
                                 redacted=redacted, unchanged_toast=unchanged)
            return DmlEvent(event_id=event_id(self.system_id, self.database, txn.commit_lsn, position), source=source,
                            actor=txn.actor, tags=tags, payload=payload)
        wire = txn.wire
        if wire is None:
            wire = txn.wire = DmlWire(self.system_id, self.database, self.slot, txn.xid, txn.commit_lsn,
                                      txn.commit_time, txn.actor)
        return wire.row(position, change.lsn, change.schema, change.table, tags, op, primary_key, new, old, changed,
                        unchanged, redacted)

    def _special_numbers(self, txn: _Txn, change: RowChange, new: dict[str, Any]) -> dict[str, Any]:
        """Put back the exact NaN/Infinity/-Infinity values the source reported for this row (its
        special-numbers trigger fired just before the row reached the WAL)."""
        pending = txn.specials.get((change.schema, change.table))
        if not pending:
            return new
        values = pending.popleft()
        if not all(c in new and new[c] is None for c in values):
            # not this row (a later BEFORE trigger changed or skipped it): never guess
            log.warning("special numbers reported for %s.%s do not match its next row at %s; left as null",
                        change.schema, change.table, change.lsn)
            return new
        return {**new, **values}

    def _security(self, msg: Message, reason: str, source: Source | None, eid: UUID | None,
                  txn: _Txn | None, claimed_kind: str | None = None) -> SecurityEvent:
        if source is None:
            source, eid = self._source(txn, msg.lsn)
        raw = msg.content.encode("utf-8", "replace")
        payload = SecurityPayload(reason=reason, prefix=msg.prefix, transactional=msg.transactional,
                                  claimed_kind=claimed_kind,
                                  content=raw[:SECURITY_CONTENT_LIMIT].decode("utf-8", "ignore"),
                                  content_bytes=len(raw))
        return SecurityEvent(event_id=eid, source=source, actor=None, tags=["SECURITY"], payload=payload)

    def _message(self, msg: Message, source: Source | None, eid: UUID | None, txn: _Txn | None) -> Iterator[Event]:
        try:
            body_text = verify(msg.content, self.keys)
        except Forged as exc:
            yield self._security(msg, str(exc), source, eid, txn)
            return
        try:
            body = json.loads(body_text)
            kind = body["kind"]
        except (ValueError, KeyError, TypeError) as exc:
            raise Poison(f"signed pgtrail message at {msg.lsn} has no valid JSON body: {exc!s}") from exc
        if msg.transactional and (msg.xid is None or body.get("xid") != msg.xid % 4294967296):
            yield self._security(msg, f"signed for transaction {body.get('xid')}, found in {msg.xid} (replayed)",
                                 source, eid, txn, kind)
            return
        actor = _actor(body.get("actor"))
        if kind == "context":
            if txn is not None:
                txn.actor = actor
                if txn.wire is not None:
                    txn.wire.set_actor(actor)
                if body.get("schema_name") and body.get("table"):
                    overrides = body.get("overrides") or {}
                    columns = tuple(body.get("columns") or ())
                    sensitive = self.redactor.sensitive_rules(columns, overrides)
                    categories = {c for rule in sensitive.values() for c in rule.categories}
                    txn.tracked[(body["schema_name"], body["table"])] = _Table(
                        overrides, frozenset(categories), columns, sensitive, frozenset(columns),
                        tags_for(categories))
            return
        if kind == "special_numbers":
            if txn is not None and isinstance(body.get("values"), dict):
                txn.specials.setdefault((str(body.get("schema_name")), str(body.get("table"))), deque()).append(
                    {str(k): v for k, v in body["values"].items() if v in ("NaN", "Infinity", "-Infinity")})
            return
        if kind == "uncapturable":
            table = (str(body.get("schema_name")), str(body.get("table")))
            if table not in self._warned_uncapturable:
                self._warned_uncapturable.add(table)
                log.warning("%s.%s in %s has no replica identity: its UPDATE and DELETE are not captured (add a "
                            "primary key or REPLICA IDENTITY FULL); counted in "
                            "pgtrail_consumer_uncapturable_statements_total", *table, self.database)
            self.uncapturable[table] = self.uncapturable.get(table, 0) + 1
            return
        if kind == "ddl_start":
            if txn is not None:
                yield from self._release(txn)
                txn.held = SpillBuffer()
            return
        if kind == "ddl" and txn is not None and txn.held is not None:
            txn.ddl_seen = True
        if source is None:
            source, eid = self._source(txn, msg.lsn)
        try:
            if kind == "ddl":
                yield self._ddl(body, source, eid, actor)
            elif kind == "operation":
                payload = OperationPayload(**{k: v for k, v in body.items() if k in _OPERATION_FIELDS})
                yield OperationEvent(event_id=eid, source=source, actor=actor,
                                     tags=self._redact_arguments(payload), payload=payload)
            elif kind == "script":
                payload = ScriptPayload(**{k: v for k, v in body.items() if k in _SCRIPT_FIELDS})
                self._note_execution(payload, actor)
                yield ScriptEvent(event_id=eid, source=source, actor=actor, payload=payload)
            elif kind == "log_import":
                yield from log_import_events(body, self.system_id, source, eid, actor)
            elif kind == "heartbeat":
                yield HeartbeatEvent(event_id=eid, source=source, actor=actor,
                                     payload=HeartbeatPayload(sent_at=float(body["sent_at"])))
            else:
                raise Poison(f"pgtrail message at {msg.lsn} has unknown kind {kind!r}")
        except (KeyError, ValueError, TypeError) as exc:
            raise Poison(f"pgtrail {kind} message at {msg.lsn} is incomplete: {exc!s}") from exc

    def _redact_arguments(self, payload: OperationPayload) -> list[str]:
        """A tracked call's arguments are classified and redacted as a row's columns are (name
        rules, then the function's declared overrides); returns the event's compliance tags."""
        details = payload.details
        if not details or not isinstance(details.get("arguments"), dict):
            return []
        overrides = details.pop("argument_overrides", None) or {}
        redacted: dict[str, str] = {}
        categories: set[str] = set()
        details["arguments"] = self.redactor.redact(details["arguments"], overrides, redacted, categories)
        if redacted:
            details["redacted"] = redacted
        return tags_for(categories)

    def _note_execution(self, payload: ScriptPayload, actor: Actor | None) -> None:
        pid = actor.backend_pid if actor else None
        if pid is None:
            return
        if payload.status == "started":
            self._open_executions[pid] = payload.execution_id
            self._open_executions.move_to_end(pid)
            while len(self._open_executions) > 10000:
                self._open_executions.popitem(last=False)
        elif self._open_executions.get(pid) == payload.execution_id:
            del self._open_executions[pid]

    def _ddl(self, body: dict[str, Any], source: Source, eid: UUID, actor: Actor | None) -> DdlEvent:
        definition = body.get("definition")
        categories: set[str] = set()
        if isinstance(definition, dict) and isinstance(definition.get("columns"), list):
            overrides = definition.get("overrides") or {}
            for col in definition["columns"]:
                override = dict(overrides.get(col.get("name"), {}))
                if col.get("comment") and "comment" not in override:
                    override["comment"] = col["comment"]
                rule = self.redactor.rule(col.get("name", ""), override)
                if rule.sensitive:
                    col["classification"] = sorted(rule.categories)
                    col["policy"] = rule.policy
                    categories.update(rule.categories)
        execution = self._open_executions.get(actor.backend_pid) if actor and actor.backend_pid else None
        # GLOBAL OBJECTS CHANGED is detected, not run: it has no session to attribute.
        detected = body.get("detected_by") is not None
        payload = DdlPayload(command_tag=body["command_tag"], object_type=body.get("object_type"),
                             schema_name=body.get("schema_name"), object_identity=body.get("object_identity"),
                             parent_identity=body.get("parent_identity"), table_identity=body.get("table_identity"),
                             statement=body.get("statement"), definition=definition,
                             rewrite=bool(body.get("rewrite")), cascade=bool(body.get("cascade")),
                             execution_id=execution, managed_by=body.get("managed_by"),
                             untracked=execution is None and not detected and not body.get("managed_by"))
        return DdlEvent(event_id=eid, source=source, actor=actor, tags=tags_for(categories), payload=payload)
