"""Golden vectors: the hash-key standard (sink/hashing.py) must never change silently.

The digests below were computed once and pinned; a change to normalisation, delimiter, null token
or algorithm breaks these tests, as it would orphan every key already in a vault.
"""
import hashlib
import json
from datetime import datetime, timezone
from decimal import Decimal
from uuid import UUID

import pytest

from sink.hashing import (DELIMITER, NULL_TOKEN, canonical_json, hash_diff, hash_key, hk_database, hk_event, hk_link,
                          hk_object)

GOLDEN = [
    (("7712193764098600281", "pgtrail_source"), False, "78e47e6686c64cdc01afecfb13aa73aede99c0f4569e455b4a2bf6998c3f5e37"),
    (("a", None, "b"), False, "849007964f3c4d532a6d70e000ef2bb6d92aef90c4138448eee33bdd5cc3c6d1"),
    (("x",), False, "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"),
    ((" a ", "B"), False, "fb974f354371208a1f6a49197e1be0abfa38ed22fa6756822c42768b16f49c19"),
    (("5d7c1a3e-8f4b-5b7e-9c1d-2a6f0e4b8c11",), True, "7e8cd9337be5bfdcfd3f8dde5b698b11f2832eb447863ffe0a8fd58a07675031"),
    ((None,), False, "dd9c8445e43d2717ad906b284ae560a4e9e16eb87f64ce27d0fdf3446e64ef44"),
    (("",), False, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
]


@pytest.mark.parametrize("parts,ci,digest", GOLDEN)
def test_golden_vectors(parts, ci, digest):
    assert hash_key(*parts, case_insensitive=ci).hex() == digest


def test_the_rule_written_out():
    assert NULL_TOKEN == "^^" and DELIMITER == "||"
    assert hash_key(" a ", None, "B") == hashlib.sha256(b"a||^^||B").digest()
    assert hash_key("ab", case_insensitive=True) == hashlib.sha256(b"AB").digest()


def test_trim_and_case():
    assert hash_key(" Users ") == hash_key("Users")
    assert hash_key("Users") != hash_key("users")  # quoted identifiers are case-sensitive
    assert hash_key("ab", case_insensitive=True) == hash_key("AB", case_insensitive=True)


def test_null_is_not_empty_and_parts_are_delimited():
    assert hash_key(None) != hash_key("")
    assert hash_key("a", "b") != hash_key("ab")


def test_helpers_use_the_standard():
    assert hk_database("1", "db") == hash_key("1", "db")
    assert hk_object("1", "db", "public.t") == hash_key("1", "db", "public.t")
    assert hk_event("5D7C1A3E-8F4B-5B7E-9C1D-2A6F0E4B8C11") == hk_event("5d7c1a3e-8f4b-5b7e-9c1d-2a6f0e4b8c11")
    assert hk_link(b"\x01", b"\x02") == hash_key("01", "02")
    assert len(hk_event("x")) == 32


def test_redaction_hash_is_hmac_sha256_of_the_text():
    """The precomputed-pad HMAC gives exactly hmac.new's bytes, for short and long (> block) keys."""
    import hashlib
    import hmac

    from consumer.classify import Redactor
    for key in (b"k", b"x" * 64, b"y" * 100):
        for value in ("a@example.com", "", "\u00fcnic\u00f8de", 12345):
            expected = hmac.new(key, str(value).encode(), hashlib.sha256).hexdigest()[:32]
            assert Redactor(key).hash_value(value) == "hmac-sha256:" + expected


def test_event_key_of_a_uuid_is_the_standard_key_of_its_text():
    import uuid
    for u in (uuid.UUID(int=0), uuid.uuid4(), uuid.UUID("5d7c1a3e-8f4b-5b7e-9c1d-2a6f0e4b8c11")):
        assert hk_event(u) == hash_key(str(u), case_insensitive=True) == hk_event(str(u))


def _reference(document) -> bytes:
    """The hash-diff standard as written in sink/hashing.py's docstring."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def test_hash_diff_golden_vector():
    definition = {"kind": "table", "schema": "app", "name": "t1",
                  "columns": [{"name": "email", "type": "text", "classification": "PII", "not_null": True,
                               "default": None}]}
    assert hash_diff(definition).hex() == "817f116cc74ed0059343345049e7b26cef00f8e7675a607ea86dbefec829c86e"
    assert hash_diff(None) == hashlib.sha256(b"^^").digest()


_ODD = [
    {"b": 1, "a": [1, 2, {"z": None, "y": True}], "": False},
    {"x": 1e16, "y": 1e-05, "z": 2.5},          # floats: json.dumps writes exponents its own way
    {"x": float("nan"), "y": float("inf")},   # NaN: json.dumps writes NaN, msgspec null
    {"big": 2 ** 70, "neg": -2 ** 63},
    {2: "int keys", 1: "json.dumps writes them as strings"},
    {"t": (1, 2)},
    {"u": UUID("12345678-1234-5678-1234-567812345678"), "d": datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
     "n": Decimal("1.50")},
    {"flag": True, "one": 1, "zero": 0, "false": False},
    {"\U0001F600": "é", "a\x00": "\x7f\u2028\u2029", "\\": "\"\n\t\b\f\r", "Z": "z"},
    [{"k": [[], {}]}, "s", -0, None],
    "text", 7, True,
]


@pytest.mark.parametrize("document", _ODD, ids=range(len(_ODD)))
def test_canonical_json_is_the_standard_byte_for_byte(document):
    assert canonical_json(document) == _reference(document)


def test_canonical_json_every_character_as_key_and_value():
    for start in range(0, 0x3100, 256):
        document = {chr(c): [chr(c), f"k{chr(c)}"] for c in range(start, start + 256) if not 0xD800 <= c < 0xE000}
        assert canonical_json(document) == _reference(document)
