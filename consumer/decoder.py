"""wal2json format-version 2 lines -> typed changes.

One JSON object per line (B, I, U, D, T, M, C), decoded by msgspec straight into typed structs.
A number with a fraction or an exponent is kept as the exact text wal2json wrote ("12.50",
"1e+20"), never a float, so numeric values keep their precision; integers of any size stay
Python ints. NaN/Infinity arrive from wal2json 2.5 as null.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

import msgspec

from pgtrail.errors import Poison


class _Column(msgspec.Struct, gc=False):
    name: str
    value: Any = None   # the column's "type" is not read: no event carries it (a string less a column)


class _Key(msgspec.Struct, gc=False):
    name: str


# One struct per kind of line, told apart by "action" (wal2json writes it first): a line gets only
# its kind's fields, and a missing required one is a decode error.
class _RowLine(msgspec.Struct, gc=False, tag_field="action"):
    schema: str
    table: str
    xid: int | None = None
    lsn: str | None = None
    columns: list[_Column] | None = None
    identity: list[_Column] | None = None
    pk: list[_Key] | None = None


# I, U, D, T: the same fields, one struct each, so the tag says which action a row line is
_ROW_LINES = {tag: msgspec.defstruct(f"_RowLine{tag}", [], bases=(_RowLine,), tag=tag) for tag in "IUDT"}
_ACTION = {cls: tag for tag, cls in _ROW_LINES.items()}


class _BeginLine(msgspec.Struct, gc=False, tag_field="action", tag="B"):
    xid: int
    lsn: str
    nextlsn: str
    timestamp: str | None = None


class _CommitLine(_BeginLine, tag="C"):
    pass


class _MessageLine(msgspec.Struct, gc=False, tag_field="action", tag="M"):
    lsn: str
    transactional: bool
    prefix: str
    content: str
    xid: int | None = None


_decode_line = msgspec.json.Decoder(Union[(*_ROW_LINES.values(), _BeginLine, _CommitLine, _MessageLine)],
                                   float_hook=str).decode


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
    """One row's change. `columns`/`identity` map names to values. A msgspec Struct: made in C,
    once per row."""

    action: str  # I, U, D, T
    xid: int | None
    lsn: str | None
    schema: str
    table: str
    columns: dict = {}
    identity: dict = {}
    pk: list = []


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
    action = _ACTION.get(type(obj))
    if action is not None:
        cols, ident = obj.columns, obj.identity
        return RowChange(action, obj.xid, obj.lsn, obj.schema, obj.table,
                         {c.name: c.value for c in cols} if cols else {},
                         {c.name: c.value for c in ident} if ident else {},
                         [p.name for p in obj.pk] if obj.pk else [])
    if type(obj) is _MessageLine:
        return Message(obj.xid, obj.lsn, obj.transactional, obj.prefix, obj.content)
    return (Begin if type(obj) is _BeginLine else Commit)(obj.xid, obj.lsn, obj.nextlsn, obj.timestamp)
