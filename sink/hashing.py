"""The one hash-key standard of pgtrail's Data Vault.

hash_key(part1, part2, ...):
  1. each part: None becomes the null token '^^'; anything else becomes str(part) with leading and
     trailing whitespace removed; parts declared case-insensitive are upper-cased;
  2. parts are joined with the delimiter '||';
  3. the result is encoded as UTF-8 and hashed with SHA-256; the key is the 32-byte digest.

PostgreSQL identifiers are case-sensitive once quoted, so database, object, role and script names
are hashed as they are; UUIDs and tenant ids are case-insensitive.

hash_diff(document): the SHA-256 of the document's canonical JSON (keys sorted, no whitespace,
UTF-8); None hashes as the null token. A satellite stores a new row only when it differs. The golden vectors in tests/unit/test_hashing.py pin this
standard: changing it would orphan every key already in a vault.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any
from uuid import UUID

import msgspec

NULL_TOKEN = "^^"
DELIMITER = "||"


def _part(value: Any, case_insensitive: bool) -> str:
    if value is None:
        return NULL_TOKEN
    text = str(value).strip()
    return text.upper() if case_insensitive else text


def hash_key(*parts: Any, case_insensitive: bool = False) -> bytes:
    joined = DELIMITER.join(_part(p, case_insensitive) for p in parts)
    return hashlib.sha256(joined.encode("utf-8")).digest()


def hk_database(system_id: str, database: str) -> bytes:
    return hash_key(system_id, database)


def hk_object(system_id: str, database: str, object_identity: str) -> bytes:
    return hash_key(system_id, database, object_identity)


def hk_event(event_id: Any) -> bytes:
    if type(event_id) is UUID:  # its text has no whitespace and one case: the standard, without the general path
        h = "%032X" % event_id.int   # str(event_id).upper(), formatted once instead of twice
        return hashlib.sha256(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}".encode()).digest()
    return hash_key(event_id, case_insensitive=True)


def hk_link(*hub_keys: bytes) -> bytes:
    return hash_key(*(k.hex() for k in hub_keys), case_insensitive=True)


def hk_actor(system_id: str, role_name: str) -> bytes:
    return hash_key(system_id, role_name)


def hk_tenant(tenant_id: str) -> bytes:
    return hash_key(tenant_id, case_insensitive=True)


def hk_script(script_name: str) -> bytes:
    return hash_key(script_name)


def hash_diff(document: Any) -> bytes:
    if document is None:
        return hashlib.sha256(NULL_TOKEN.encode()).digest()
    return hashlib.sha256(canonical_json(document)).digest()


class _HasFloat(Exception):
    pass


def _no_float(literal: str) -> Any:
    raise _HasFloat


_sorted_json = msgspec.json.Encoder(order="sorted").encode
_read_back = msgspec.json.Decoder(float_hook=_no_float).decode


def canonical_json(document: Any) -> bytes:
    """json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    as UTF-8: the standard. msgspec writes the same bytes three times faster for what JSON reads
    back as itself without a float (strings, integers, booleans, null, lists, string-keyed
    objects); anything else (a float, whose exponent msgspec writes its own way; NaN; a tuple, a
    UUID, a datetime) is written by json.dumps itself."""
    try:
        fast = _sorted_json(document)
        if _read_back(fast) == document:
            return fast
    except (_HasFloat, TypeError):   # TypeError: a type msgspec does not write (default=str does)
        pass
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str).encode("utf-8")
