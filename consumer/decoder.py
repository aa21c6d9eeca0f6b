"""wal2json format-version 2 lines -> typed changes.

One JSON object per line (B, I, U, D, T, M, C), decoded by msgspec straight into typed structs.
A number with a fraction or an exponent is kept as the exact text wal2json wrote ("12.50",
"1e+20"), never a float, so numeric values keep their precision; integers of any size stay
Python ints. NaN/Infinity arrive from wal2json 2.5 as null.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from pgtrail.errors import Poison


class _Column(msgspec.Struct, gc=False):
    name: str
    type: str = ""
    value: Any = None


class _Key(msgspec.Struct, gc=False):
    name: str


class _Line(msgspec.Struct, gc=False):
    action: str
    xid: int | None = None
    lsn: str | None = None
    nextlsn: str | None = None
    timestamp: str | None = None
    schema: str | None = None
    table: str | None = None
    columns: list[_Column] | None = None
    identity: list[_Column] | None = None
    pk: list[_Key] | None = None
    transactional: bool | None = None
    prefix: str | None = None
    content: str | None = None


_decode_line = msgspec.json.Decoder(_Line, float_hook=str).decode


@dataclass(slots=True)
class Begin:
    xid: int
    commit_lsn: str
    end_lsn: str
    timestamp: str | None


@dataclass(slots=True)
class Commit:
    xid: int
    commit_lsn: str
    end_lsn: str
    timestamp: str | None


class RowChange(msgspec.Struct):
    """One row's change. `columns`/`identity` map names to values; `raw` keeps wal2json's column
    lists (names, types, values) for `types`. A msgspec Struct: made in C, once per row."""

    action: str  # I, U, D, T
    xid: int | None
    lsn: str | None
    schema: str
    table: str
    columns: dict = {}
    identity: dict = {}
    pk: list = []
    raw: tuple = ((), ())

    @property
    def types(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for cols in self.raw:
            for c in cols or ():
                out.setdefault(c.name, c.type)
        return out


@dataclass(slots=True)
class Message:
    xid: int | None
    lsn: str
    transactional: bool
    prefix: str
    content: str


Change = Begin | Commit | RowChange | Message


def decode(line: bytes | str) -> Change:
    """Decode one wal2json v2 line. Raises Poison when the line is not valid wal2json v2."""
    try:
        obj = _decode_line(line)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise Poison(f"not a wal2json v2 line: {exc!s}") from exc
    action = obj.action
    if action == "I" or action == "U" or action == "D" or action == "T":
        if obj.schema is None or obj.table is None:
            raise Poison(f"not a wal2json v2 line: {action} without schema and table")
        cols, ident = obj.columns, obj.identity
        return RowChange(action, obj.xid, obj.lsn, obj.schema, obj.table,
                         {c.name: c.value for c in cols} if cols else {},
                         {c.name: c.value for c in ident} if ident else {},
                         [p.name for p in obj.pk] if obj.pk else [], (cols, ident))
    if action == "B" or action == "C":
        if obj.xid is None or obj.lsn is None or obj.nextlsn is None:
            raise Poison(f"not a wal2json v2 line: {action} without xid, lsn and nextlsn")
        return (Begin if action == "B" else Commit)(obj.xid, obj.lsn, obj.nextlsn, obj.timestamp)
    if action == "M":
        if obj.lsn is None or obj.transactional is None or obj.prefix is None or obj.content is None:
            raise Poison("not a wal2json v2 line: M without lsn, transactional, prefix and content")
        return Message(obj.xid, obj.lsn, obj.transactional, obj.prefix, obj.content)
    raise Poison(f"unknown wal2json action {action!r}")
