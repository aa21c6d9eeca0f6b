"""wal2json format-version 2 lines -> typed changes.

One JSON object per line (B, I, U, D, T, M, C). Numbers are parsed as Decimal, so numeric values
keep their precision; NaN/Infinity arrive from wal2json as null.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pgtrail.errors import Poison

_parse = json.JSONDecoder(parse_float=Decimal).decode


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


@dataclass(slots=True)
class RowChange:
    action: str  # I, U, D, T
    xid: int | None
    lsn: str | None
    schema: str
    table: str
    columns: dict[str, Any] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)
    identity: dict[str, Any] = field(default_factory=dict)
    pk: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Message:
    xid: int | None
    lsn: str
    transactional: bool
    prefix: str
    content: str


Change = Begin | Commit | RowChange | Message


def _columns(items: list[dict[str, Any]] | None) -> tuple[dict[str, Any], dict[str, str]]:
    values: dict[str, Any] = {}
    types: dict[str, str] = {}
    for col in items or ():
        name = col["name"]
        values[name] = col.get("value")
        types[name] = col.get("type", "")
    return values, types


def decode(line: bytes | str) -> Change:
    """Decode one wal2json v2 line. Raises Poison when the line is not valid wal2json v2."""
    try:
        obj = _parse(line if isinstance(line, str) else line.decode("utf-8"))
        action = obj["action"]
        if action == "B":
            return Begin(obj["xid"], obj["lsn"], obj["nextlsn"], obj.get("timestamp"))
        if action == "C":
            return Commit(obj["xid"], obj["lsn"], obj["nextlsn"], obj.get("timestamp"))
        if action in ("I", "U", "D", "T"):
            values, types = _columns(obj.get("columns"))
            identity, id_types = _columns(obj.get("identity"))
            for k, v in id_types.items():
                types.setdefault(k, v)
            pk = [p["name"] for p in obj.get("pk") or ()]
            return RowChange(action, obj.get("xid"), obj.get("lsn"), obj["schema"], obj["table"],
                             values, types, identity, pk)
        if action == "M":
            return Message(obj.get("xid"), obj["lsn"], bool(obj["transactional"]), obj["prefix"],
                           obj["content"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise Poison(f"not a wal2json v2 line: {exc!s}") from exc
    raise Poison(f"unknown wal2json action {action!r}")
