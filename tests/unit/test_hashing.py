"""Golden vectors: the hash-key standard (sink/hashing.py) must never change silently.

The digests below were computed once and pinned; a change to normalisation, delimiter, null token
or algorithm breaks these tests, as it would orphan every key already in a vault.
"""
import hashlib

import pytest

from sink.hashing import DELIMITER, NULL_TOKEN, hash_key, hk_database, hk_event, hk_link, hk_object

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
