"""Events on the wire: Kafka key, JSON body and CloudEvents headers.

Two ways to the same bytes. `encode(event)` serialises a pydantic event (every kind; the
reference). `DmlWire` writes a DML event's body straight from the consumer's own values, without
building and re-validating a model per row: the consumer made those values itself, the parts that
are the same for a whole transaction (source, actor, commit time, headers) are serialised once by
pydantic, and the per-row rest by msgspec, whose JSON output is pydantic's byte for byte (same
escaping, same key order). tests/unit/test_wire.py proves both give identical bytes over a corpus
of every event kind and column type, with redaction on and off.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Any

import msgspec
from pydantic import BaseModel, TypeAdapter

from schemas.events import SCHEMA_VERSION, Actor, DmlPayload, Event, Source, parse_event
from schemas.ids import PGTRAIL_NAMESPACE, quote_ident, uuid5_text

_json = msgspec.json.Encoder()
_encode_json = _json.encode
_tags_adapter = TypeAdapter(list[str])
Headers = list[tuple[str, bytes]]


@lru_cache(maxsize=4096)
def ce_source(system_id: str, database: str) -> bytes:
    return f"pgtrail://{system_id}/{database}".encode()


@lru_cache(maxsize=64)
def ce_type(kind: str) -> bytes:
    return f"dev.pgtrail.{kind}.v{SCHEMA_VERSION}".encode()


def cloudevent_headers(event: Event) -> Headers:
    """CloudEvents binary-mode headers, so any client can route without parsing the body."""
    src = event.source
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", str(event.event_id).encode()),
        ("ce_source", ce_source(src.system_id, src.database)),
        ("ce_type", ce_type(event.kind)),
        ("content-type", b"application/json"),
    ]
    if event.time is not None:
        headers.append(("ce_time", event.time.isoformat().encode()))
    return headers


class Encoded(msgspec.Struct):
    """One event ready for Kafka. `event` is the pydantic model (parsed back from the body when the
    fast path made it, for the rare reader that needs fields: tests, metrics of rare kinds)."""

    kind: str
    key: bytes
    value: bytes
    headers: list
    tags: list
    model: Any = None

    @property
    def event(self) -> Event:
        if self.model is None:
            self.model = parse_event(self.value)
        return self.model


def encode(event: Event) -> Encoded:
    """The reference serialisation of any event: a pydantic model, or a wire Struct of
    schemas.fast.build_event (msgspec writes it as pydantic would; `.event` parses it back)."""
    if isinstance(event, BaseModel):
        return Encoded(event.kind, event.object_key().encode(), event.model_dump_json().encode(),
                       cloudevent_headers(event), event.tags, event)
    return Encoded(event.kind, event.object_key().encode(), _encode_json(event), cloudevent_headers(event),
                   event.tags)


_SPEC = ("ce_specversion", b"1.0")

# DmlPayload's fields in its declared order, as a Struct: msgspec writes it as the model's JSON
# object, its keys encoded once for all rows (a dict per row costs ~0.3 us more to build and write).
_PAYLOAD_FIELDS = ("operation", "schema_name", "table", "primary_key", "new", "old", "changed_columns",
                   "unchanged_toast", "redacted")
if tuple(DmlPayload.model_fields) != _PAYLOAD_FIELDS:
    raise AssertionError(f"DmlPayload's fields changed; DmlWire.row must follow them: {list(DmlPayload.model_fields)}")
_Payload = msgspec.defstruct("DmlPayloadWire", [(name, Any) for name in _PAYLOAD_FIELDS], gc=False)


def _uuid5_text(digest: bytes) -> bytes:
    """RFC 4122 version-5 text form of a SHA-1 digest (what uuid.uuid5 gives, without the object)."""
    return uuid5_text(digest).encode()


class DmlWire:
    """The per-transaction part of DML events, serialised once; `row()` adds one row's part.

    Ids are schemas.ids.event_id: SHA-1 over the namespace and "system/database/COMMIT_LSN/" is
    hashed once per transaction and copied per row.
    """

    __slots__ = ("database", "_id_base", "_parts", "_actor", "_headers_tail", "_tables")

    def __init__(self, system_id: str, database: str, slot: str, xid: int | None, commit_lsn: str, commit_time,
                 actor: Actor | None):
        self.database = database
        self._id_base = hashlib.sha1(PGTRAIL_NAMESPACE.bytes + f"{system_id}/{database}/{commit_lsn.upper()}/".encode())
        # A Source with placeholder per-row fields, cut around them: pydantic writes the
        # transaction's constant fields, and the commit time in its exact format.
        src = Source(system_id=system_id, database=database, slot=slot, xid=xid, commit_lsn=commit_lsn,
                     change_lsn=None, position=0, commit_time=commit_time).model_dump_json().encode()
        head, marker, tail = src.partition(b'"change_lsn":null,"position":0,')
        if not marker or not tail.startswith(b'"commit_time":'):
            raise AssertionError(f"Source's field order changed; DmlWire must follow it: {src!r}")
        # body = START id MID1 change_lsn MID2 position TAIL actor tags payload }
        self._parts = (b'{"schema_version":%d,"event_id":"' % SCHEMA_VERSION,
                       b'","source":' + head + b'"change_lsn":', b',"position":', b"," + tail)
        self._headers_tail = [("ce_source", ce_source(system_id, database)), ("ce_type", ce_type("dml")),
                              ("content-type", b"application/json")]
        if commit_time is not None:
            self._headers_tail.append(("ce_time", commit_time.isoformat().encode()))
        self._tables: dict[tuple[str, str], tuple[bytes, bytes, list[str]]] = {}
        self._actor = b""
        self.set_actor(actor)

    def set_actor(self, actor: Actor | None) -> None:
        self._actor = b',"actor":' + (actor.model_dump_json().encode() if actor is not None else b"null")

    def row(self, position: int, change_lsn: str | None, schema: str, table: str, tags: list[str], operation: str,
            primary_key: dict, new: dict | None, old: dict | None, changed: list[str], unchanged: list[str],
            redacted: dict[str, str]) -> Encoded:
        """One DML event; the rest of the arguments are DmlPayload's fields, in its declared order."""
        h = self._id_base.copy()
        h.update(b"%d" % position)
        eid = _uuid5_text(h.digest())
        cached = self._tables.get((schema, table))
        if cached is None or cached[2] is not tags:
            cached = self._tables[(schema, table)] = (
                b',"tags":' + _tags_adapter.dump_json(tags) + b',"oversize":[],"kind":"dml","payload":',
                f"{self.database}.{quote_ident(schema)}.{quote_ident(table)}".encode(), tags)
        tags_part, key, _ = cached
        start, mid1, mid2, tail = self._parts
        lsn = b"null" if change_lsn is None else _encode_json(change_lsn)
        value = b"".join((start, eid, mid1, lsn, mid2, b"%d" % position, tail, self._actor, tags_part,
                          _encode_json(_Payload(operation, schema, table, primary_key, new, old, changed, unchanged,
                                                redacted)), b"}"))
        return Encoded("dml", key, value, [_SPEC, ("ce_id", eid), *self._headers_tail], tags)


__all__ = ["DmlWire", "Encoded", "Headers", "ce_source", "ce_type", "cloudevent_headers", "encode"]
