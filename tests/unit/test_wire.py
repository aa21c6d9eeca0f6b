"""The fast path emits byte for byte what the pydantic models would.

The normalizer writes DML events with schemas.wire.DmlWire (no model per row); in reference mode
it builds every event through the pydantic models and `encode`. Both run over the same corpus —
the real wal2json fixtures, and a generated one with every column type wal2json writes, every
operation, TOASTed columns left out, replica identity full, actors changing mid-transaction,
several commit-time zones and redaction under every policy — and must give identical keys,
bodies, headers and tags.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import uuid

import pytest

from consumer.classify import Redactor
from consumer.decoder import decode
from consumer.normalizer import Normalizer
from schemas import event_id, parse_event
from schemas.wire import Encoded, _uuid5_text
from tests.unit.conftest import fixture_keys

KEY = b"corpus-key"
ACTORS = [
    {"session_user": "alice", "current_user": "alice", "application_name": "billing \u00e9\u20ac",
     "client_addr": "10.0.0.1", "backend_pid": 4242, "tenant_id": "tenant-\"7\""},
    {"session_user": "bob", "application_name": None, "backend_pid": 17, "tenant_id": None},
    None,
]
# (name, wal2json type, values it takes): what wal2json writes for each type, as JSON
COLUMNS = [
    ("id", "bigint", [1, 9223372036854775807, -5]),
    ("small", "smallint", [0, -32768, None]),
    ("big", "numeric(40,0)", [12345678901234567890123456789012345678, 0, None]),
    ("amount", "numeric(20,4)", ["12345678901234567.0123", "-0.5000", "1e+20"]),  # floats as exact text
    ("ratio", "double precision", ["1.5", "-1e-300", None]),
    ("flag", "boolean", [True, False, None]),
    ("email", "text", ["a@example.com", "\u00fcnic\u00f8de \U0001F600 \"quoted\" \\ back", "ctl\x00\x01\n\t\x1f\x7f"]),
    ("ssn", "character varying(11)", ["123-45-6789", "", None]),
    ("card_number", "text", ["4111111111111111", None, "x"]),
    ("diagnosis", "text", ["flu", "\u2028line sep\u2029", None]),
    ("payload", "jsonb", ['{"a": [1, 2.5, "x"]}', "null", None]),
    ("tags", "text[]", ['{a,"b c",NULL}', "{}", None]),
    ("bytes", "bytea", ["\\x0102ff", "\\x", None]),
    ("at", "timestamp with time zone", ["2026-11-25 20:18:36.775012+00", "infinity", None]),
    ("day", "date", ["2026-02-29", None, "-infinity"]),
    ("uid", "uuid", [str(uuid.UUID(int=7)), None, str(uuid.UUID(int=2**128 - 1))]),
    ("addr", "inet", ["192.168.0.1/24", "::1", None]),
    ("note", "text", ["free", "x" * 5000, None]),
]
NAMES = [c[0] for c in COLUMNS]


def _signed(body: dict, keys) -> str:
    text = json.dumps(body)
    return f"v1 1 {hmac.new(keys[1], text.encode(), hashlib.sha256).hexdigest()} {text}"


def _cols(i: int, names=NAMES) -> list[dict]:
    return [{"name": n, "type": t, "value": vals[i % len(vals)]} for n, t, vals in COLUMNS if n in names]


def corpus(keys) -> list[str]:
    lines: list[str] = []
    lsn = 0x1000
    for txn, tz in enumerate(["+00", "+05:30", "-08", "+00"]):
        xid = 700 + txn
        commit, end = f"0/{lsn + 900:X}", f"0/{lsn + 950:X}"
        ts = f"2026-0{txn + 1}-15 1{txn}:00:0{txn}.{'123456' if txn % 2 else '000000'}{tz}"
        lines.append(json.dumps({"action": "B", "xid": xid, "timestamp": ts, "lsn": commit, "nextlsn": end}))
        for step, actor in enumerate(ACTORS):  # the actor changes mid-transaction
            overrides = {"note": {"comment": "free text pgtrail:PHI"}} if step != 1 else {}
            if txn == 3:
                overrides["email"] = {"classification": "none"} if step == 0 else {"policy": "keep"}
            ctx = {"v": 1, "xid": xid, "kind": "context", "actor": actor, "schema_name": "app",
                   "table": "accounts \u00e9", "columns": NAMES, "overrides": overrides}
            lines.append(json.dumps({"action": "M", "xid": xid, "lsn": f"0/{lsn:X}", "transactional": True,
                                     "prefix": "pgtrail", "content": _signed(ctx, keys)}))
            lsn += 1
            for i in range(3):
                row_lsn = f"0/{lsn:X}"
                pk = [{"name": "id", "type": "bigint"}]
                lines.append(json.dumps({"action": "I", "xid": xid, "lsn": row_lsn, "schema": "app",
                                         "table": "accounts \u00e9", "columns": _cols(i + step), "pk": pk}))
                # update with every column, with TOASTed ones left out, and with replica identity full
                lines.append(json.dumps({"action": "U", "xid": xid, "lsn": row_lsn, "schema": "app",
                                         "table": "accounts \u00e9", "columns": _cols(i + 1), "pk": pk,
                                         "identity": _cols(i, ["id"])}))
                lines.append(json.dumps({"action": "U", "xid": xid, "lsn": row_lsn, "schema": "app",
                                         "table": "accounts \u00e9", "pk": pk,
                                         "columns": _cols(i + 2, [n for n in NAMES if n not in ("note", "payload")])}))
                lines.append(json.dumps({"action": "U", "xid": xid, "lsn": row_lsn, "schema": "app",
                                         "table": "accounts \u00e9", "columns": _cols(i + 2), "pk": pk,
                                         "identity": _cols(i)}))
                # a column the context did not list (added later in the transaction)
                extra = _cols(i) + [{"name": "secret_token", "type": "text", "value": "s3cr3t"}]
                lines.append(json.dumps({"action": "I", "xid": xid, "lsn": row_lsn, "schema": "app",
                                         "table": "accounts \u00e9", "columns": extra, "pk": pk}))
                lines.append(json.dumps({"action": "D", "xid": xid, "lsn": row_lsn, "schema": "app",
                                         "table": "accounts \u00e9", "identity": _cols(i, ["id", "email"]),
                                         "pk": pk}))
                lsn += 1
        lines.append(json.dumps({"action": "T", "xid": xid, "lsn": f"0/{lsn:X}", "schema": "app",
                                 "table": "accounts \u00e9"}))
        lines.append(json.dumps({"action": "I", "xid": xid, "lsn": f"0/{lsn:X}", "schema": "app",
                                 "table": "untracked", "columns": _cols(0)}))
        lines.append(json.dumps({"action": "C", "xid": xid, "timestamp": ts, "lsn": commit, "nextlsn": end}))
        lsn += 1000
    return lines


def _run(lines, keys, reference: bool, policies=None) -> list[Encoded]:
    n = Normalizer("7712193764098600281", "db \u00e9\"x", "slot", keys, Redactor(KEY, policies),
                   reference=reference)
    out: list[Encoded] = []
    for line in lines:
        out.extend(n.feed(decode(line)))
    return out


def _same(fast: list[Encoded], ref: list[Encoded]) -> None:
    assert len(fast) == len(ref) and fast
    for f, r in zip(fast, ref):
        assert f.value == r.value, (f.value, r.value)
        assert (f.kind, f.key, f.headers, f.tags) == (r.kind, r.key, r.headers, r.tags)


@pytest.mark.parametrize("policies", [
    None,  # the defaults: PII hashed, PHI dropped, FINANCIAL masked
    {"PII": "mask", "PHI": "hash", "FINANCIAL": "drop"},
    {"PII": "keep", "PHI": "keep", "FINANCIAL": "keep"},  # redaction off
])
def test_generated_corpus_fast_equals_pydantic(policies):
    keys = fixture_keys()
    lines = corpus(keys)
    fast, ref = _run(lines, keys, False, policies), _run(lines, keys, True, policies)
    _same(fast, ref)
    dml = [e for e in fast if e.kind == "dml"]
    assert len(dml) == 4 * 3 * 3 * 6 + 4  # every row of the tracked table, and the truncates
    ops = {parse_event(e.value).payload.operation for e in dml}
    assert ops == {"insert", "update", "delete", "truncate"}
    redacted = [parse_event(e.value).payload.redacted for e in dml]
    if policies and set(policies.values()) == {"keep"}:
        assert not any(redacted)
    else:
        assert any(redacted)


def test_real_fixture_fast_equals_pydantic(tracked_lines, basic_lines):
    keys = fixture_keys()
    for lines in (tracked_lines, basic_lines):
        _same(_run(lines, keys, False), _run(lines, keys, True))


def test_fast_bodies_are_valid_events_with_the_documented_id():
    keys = fixture_keys()
    for enc in _run(corpus(keys), keys, False):
        ev = parse_event(enc.value)
        src = ev.source
        assert ev.event_id == event_id(src.system_id, src.database, src.commit_lsn, src.position)
        assert dict(enc.headers)["ce_id"] == str(ev.event_id).encode()


def test_numbers_keep_their_exact_text_and_size():
    keys = fixture_keys()
    dml = [parse_event(e.value) for e in _run(corpus(keys), keys, False) if e.kind == "dml"]
    news = [d.payload.new for d in dml if d.payload.new]
    assert any(n.get("amount") == "12345678901234567.0123" for n in news)
    assert any(n.get("amount") == "1e+20" for n in news)
    assert any(n.get("big") == 12345678901234567890123456789012345678 for n in news)
    assert any(n.get("id") == 9223372036854775807 for n in news)


def test_uuid5_text_is_uuid5():
    for name in (b"", b"x", b"7712193764098600281/db/0/1A2B/17"):
        digest = hashlib.sha1(uuid.UUID("5d7c1a3e-8f4b-5b7e-9c1d-2a6f0e4b8c11").bytes + name).digest()
        assert _uuid5_text(digest).decode() == str(uuid.uuid5(uuid.UUID("5d7c1a3e-8f4b-5b7e-9c1d-2a6f0e4b8c11"),
                                                                 name.decode()))
