"""Events larger than Kafka takes: the largest values left out and referenced, so capture never stalls.

A row with a 50 MB value would be refused by the broker (MessageSizeTooLarge) on every restart:
the slot could not move past it until someone dropped it and lost the change. Instead, an event
whose record would exceed the limit goes out with its largest values taken out, largest first,
until it fits. Each one is listed in the event's `oversize` (schemas.OversizeValue): its path, size,
SHA-256 and, for a row's column, where to read it (table, column, primary key). A column is left
out of `new`/`old` (never sent as null, as wal2json does for unchanged TOAST); any other text field
keeps a short prefix. The rest of the event (attribution, tags, keys) is unchanged.
"""
from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from pgtrail.errors import Poison
from schemas.wire import Encoded

# a record's framing in a batch (offsets, lengths, attributes, batch header): generous
RECORD_OVERHEAD = 512
PREFIX_CHARS = 256
WORTH_TAKING = 1024  # a smaller value costs less than its reference
_COLUMN_SECTIONS = ("new", "old", "primary_key")

# numbers are kept as their exact JSON text: re-encoding never changes a value it does not remove
_decode = msgspec.json.Decoder(float_hook=lambda text: msgspec.Raw(text.encode())).decode
_encode = msgspec.json.Encoder().encode


def budget(limit: int, enc: Encoded) -> int:
    """Bytes left for the value of a record of `enc` under a message limit of `limit`."""
    return limit - RECORD_OVERHEAD - len(enc.key) - sum(len(k) + len(v) for k, v in enc.headers)


def fit(enc: Encoded, limit: int) -> tuple[Encoded, int]:
    """`enc` as is when it fits, else with its largest values referenced. Returns the event and how
    many values were left out. Raises Poison when even without them the event does not fit."""
    room = budget(limit, enc)
    if len(enc.value) <= room:
        return enc, 0
    doc = _decode(enc.value)
    payload = doc.get("payload")
    if not isinstance(payload, dict):
        raise Poison(f"{enc.kind} event of {len(enc.value)} bytes exceeds Kafka's limit ({room}) and has no payload")
    candidates = []  # (size of its JSON, path, container, key)
    for section in _COLUMN_SECTIONS:
        values = payload.get(section)
        if isinstance(values, dict):
            for column, value in values.items():
                candidates.append((len(_encode(value)), f"payload.{section}.{column}", values, column))
    for field, value in payload.items():
        if field not in _COLUMN_SECTIONS and isinstance(value, (str, dict, list)):
            candidates.append((len(_encode(value)), f"payload.{field}", payload, field))
    candidates = sorted((c for c in candidates if c[0] >= WORTH_TAKING), key=lambda c: c[0], reverse=True)
    size, taken, refs = len(enc.value), 0, []
    while True:
        # each reference costs a few hundred bytes of its own
        while taken < len(candidates) and size > room - 512 * (len(refs) + 1):
            value_size, path, container, key = candidates[taken]
            taken += 1
            refs.append(_take(payload, container, key, path))
            size -= value_size - (len(_encode(container[key])) if key in container else 0)
        doc["oversize"] = refs
        value = _encode(doc)
        if len(value) <= room:
            break
        if taken == len(candidates):
            raise Poison(f"{enc.kind} event of {len(enc.value)} bytes exceeds Kafka's limit ({room} bytes for the "
                         f"value) even with {len(refs)} values left out")
        size = len(value)
    return Encoded(enc.kind, enc.key, value, enc.headers, enc.tags), len(refs)


def _take(payload: dict, container: dict, key: str, path: str) -> dict[str, Any]:
    """Take one value out of the event; return its reference."""
    value = container[key]
    raw = value.encode() if isinstance(value, str) else _encode(value)
    ref: dict[str, Any] = {"path": path, "size_bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest(),
                           "fetch": None}
    if container is payload:
        # a field of the payload's own schema keeps its type: a prefix of a text, an empty container
        container[key] = value[:PREFIX_CHARS] if isinstance(value, str) else type(value)()
    else:
        del container[key]  # a column: absent, listed in `oversize`, never null
        if "schema_name" in payload and "table" in payload:
            ref["fetch"] = {"schema": payload["schema_name"], "table": payload["table"], "column": key,
                            "primary_key": dict(payload.get("primary_key") or {})}
    return ref


__all__ = ["budget", "fit", "RECORD_OVERHEAD"]
