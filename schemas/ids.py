"""Deterministic event ids.

An event's id is a UUIDv5 over (source system identifier, database, commit LSN, position in the
transaction). Replaying the same WAL after a crash yields the same ids, which is what lets the
vault ignore repeats and be exactly-once in effect.
"""
from __future__ import annotations

import re
import uuid

# Fixed forever: changing it would give every replayed event a new identity.
PGTRAIL_NAMESPACE = uuid.UUID("5d7c1a3e-8f4b-5b7e-9c1d-2a6f0e4b8c11")


# PostgreSQL 15's keywords that quote_ident() quotes (pg_get_keywords() where catcode <> 'U')
_KEYWORDS = frozenset("""
    all analyse analyze and any array as asc asymmetric authorization between bigint binary bit
    boolean both case cast char character check coalesce collate collation column concurrently
    constraint create cross current_catalog current_date current_role current_schema current_time
    current_timestamp current_user dec decimal default deferrable desc distinct do else end except
    exists extract false fetch float for foreign freeze from full grant greatest group grouping
    having ilike in initially inner inout int integer intersect interval into is isnull join lateral
    leading least left like limit localtime localtimestamp national natural nchar none normalize not
    notnull null nullif numeric offset on only or order out outer overlaps overlay placing position
    precision primary real references returning right row select session_user setof similar smallint
    some substring symmetric table tablesample then time timestamp to trailing treat trim true union
    unique user using values varchar variadic verbose when where window with xmlattributes xmlconcat
    xmlelement xmlexists xmlforest xmlnamespaces xmlparse xmlpi xmlroot xmlserialize xmltable
""".split())
_PLAIN_IDENT = re.compile(r"^[a-z_][a-z0-9_$]*$")


def quote_ident(name: str) -> str:
    """PostgreSQL's quote_ident(): how object identities (pg_identify_object) write a name, so a
    table's DML and DDL events name it, key it and partition it alike."""
    if _PLAIN_IDENT.match(name) and name not in _KEYWORDS:
        return name
    return '"' + name.replace('"', '""') + '"'


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


_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def uuid5_text(digest: bytes) -> str:
    """RFC 4122 version-5 text form of a SHA-1 digest: str(uuid.UUID(bytes=digest[:16], version=5))
    without making the object (a hot path in capture and log import)."""
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"
