import hashlib
import json

import pytest

from consumer.classify import Redactor
from consumer.decoder import decode
from consumer.normalizer import Normalizer
from pgtrail.errors import Poison
from schemas import (DdlEvent, DmlEvent, HeartbeatEvent, OperationEvent, ScriptEvent, SecurityEvent, event_id,
                     parse_event)
from tests.unit.conftest import fixture_keys, normalize


def of(events, cls):
    return [e for e in events if isinstance(e, cls)]


def test_row_changes_of_tracked_tables_are_attributed_and_redacted(tracked_lines):
    events, n = normalize(tracked_lines)
    dml = [e for e in of(events, DmlEvent) if e.payload.table == "accounts"]
    assert [d.payload.operation for d in dml] == ["insert", "insert", "update", "delete"]
    for d in dml:
        assert (d.actor.application_name, d.actor.tenant_id, d.actor.session_user) == \
            ("fixture-app", "tenant-42", "postgres")
        # tags of the table, whichever columns the row carries (a delete has only the key)
        assert d.tags == ["FINANCIAL", "PHI", "PII", "GDPR", "HIPAA", "SOX"]
    first = dml[0].payload
    assert first.new["email"].startswith("hmac-sha256:")  # PII: hashed
    assert first.new["balance"] == "****"  # FINANCIAL: masked
    assert "note" not in first.new  # PHI by its comment tag: dropped
    assert first.redacted == {"email": "hash", "balance": "mask", "note": "drop"}
    assert dml[3].payload.primary_key == {"id": 2} and dml[3].payload.new is None
    assert n.rows_untracked == 1  # public.untracked has no tracking trigger


def test_equal_values_hash_equally(tracked_lines):
    dml = [e for e in of(normalize(tracked_lines)[0], DmlEvent) if e.payload.table == "accounts"]
    assert dml[0].payload.new["email"] == dml[2].payload.new["email"]  # same row, insert then update
    assert dml[0].payload.new["email"] != dml[1].payload.new["email"]


def test_rolled_back_rows_never_appear(tracked_lines):
    dml = of(normalize(tracked_lines)[0], DmlEvent)
    assert all(d.payload.primary_key.get("id") != 9 for d in dml)


def test_ddl_carries_statement_definition_and_tags(tracked_lines):
    ddl = of(normalize(tracked_lines)[0], DdlEvent)
    create = ddl[0]
    assert create.payload.command_tag == "CREATE TABLE" and create.payload.object_identity == "public.accounts"
    assert "create table public.accounts" in create.payload.statement
    cols = {c["name"]: c for c in create.payload.definition["columns"]}
    assert cols["id"]["type"] == "bigint" and cols["id"]["not_null"] is True
    assert cols["balance"]["type"] == "numeric(20,4)"
    assert cols["email"]["classification"] == ["PII"] and cols["email"]["policy"] == "hash"
    assert "classification" not in cols["id"]
    assert create.payload.definition["constraints"][0]["definition"] == "PRIMARY KEY (id)"
    assert set(create.tags) == {"PII", "FINANCIAL", "GDPR", "SOX"}
    drops = [(d.payload.object_identity, d.payload.cascade) for d in ddl if d.payload.command_tag == "DROP TABLE"]
    assert drops == [("public.accounts", False), ("public.accounts_pkey", True),
                     ("pgtrail_context on public.accounts", True)]
    comment = next(d for d in ddl if d.payload.command_tag == "COMMENT")
    assert comment.payload.parent_identity == "public.accounts"
    alter = [d for d in ddl if d.payload.command_tag == "ALTER TABLE"]
    assert len(alter) == 1  # ALTER ... DROP COLUMN: one event, not one per trigger
    assert "note" not in {c["name"] for c in alter[0].payload.definition["columns"]}


def test_create_table_as_rows_follow_the_table_creation(tracked_lines):
    events = normalize(tracked_lines)[0]
    copied = [e for e in events if (isinstance(e, DdlEvent) and e.payload.object_identity == "fx.copied")
              or (isinstance(e, DmlEvent) and e.payload.table == "copied")]
    assert [e.kind for e in copied] == ["ddl", "dml", "dml", "dml"]
    assert copied[0].payload.command_tag == "CREATE TABLE AS"
    positions = [e.source.position for e in copied]
    assert positions == sorted(positions)
    assert all(e.payload.new["email"].startswith("hmac-sha256:") for e in copied[1:])


def test_scripts_operations_heartbeat(tracked_lines):
    events = normalize(tracked_lines)[0]
    scripts = of(events, ScriptEvent)
    assert [s.payload.status for s in scripts] == ["started", "completed", "failed"]
    started, completed, failed = scripts
    assert len({s.payload.execution_id for s in scripts}) == 1
    assert started.payload.script_name == "fix.sql" and started.payload.ticket_number == "TCK-1"
    # line endings normalised: E'select 1;\r\n' hashes as 'select 1;\n'
    assert started.payload.checksum == hashlib.sha256(b"select 1;\n").hexdigest()
    assert completed.payload.rows_affected == 7 and completed.payload.duration_ms >= 0
    assert failed.payload.error == "it broke" and failed.payload.error_state == "42P01"
    assert failed.source.commit_lsn is None  # non-transactional: survives a rollback
    assert all(s.actor.tenant_id == "tenant-9" for s in scripts)  # explicit tenant wins
    ops = of(events, OperationEvent)
    assert [o.payload.name for o in ops] == ["Fixture operation"]
    (hb,) = of(events, HeartbeatEvent)
    assert hb.payload.sent_at > 1.7e9


def test_forged_message_is_a_security_event_never_a_trusted_one(tracked_lines):
    events = normalize(tracked_lines)[0]
    (sec,) = of(events, SecurityEvent)
    assert "unsigned" in sec.payload.reason and '"forged"' in sec.payload.content
    assert all(getattr(e.payload, "name", None) != "forged" for e in events if not isinstance(e, SecurityEvent))


def test_wrong_key_turns_every_message_into_a_security_event(tracked_lines):
    events = normalize(tracked_lines, keys={1: b"\x00" * 32})[0]
    assert not of(events, DdlEvent) and not of(events, OperationEvent)
    assert all(e.payload.reason == "bad signature" for e in of(events, SecurityEvent) if e.payload.transactional)
    assert not of(events, DmlEvent)  # without a genuine context no table is tracked


def test_a_signed_body_replayed_in_another_transaction_is_detected(tracked_lines):
    op_line = next(line for line in tracked_lines if '\\"kind\\": \\"operation\\"' in line)
    obj = json.loads(op_line)
    obj["xid"] = obj["xid"] + 1000  # the same signed content, found in another transaction
    begin = json.dumps({"action": "B", "xid": obj["xid"], "timestamp": "2026-01-01 00:00:00+00",
                        "lsn": "9/10", "nextlsn": "9/20"})
    events = normalize([begin, json.dumps(obj)])[0]
    (sec,) = events
    assert isinstance(sec, SecurityEvent) and "replayed" in sec.payload.reason


def test_ids_are_deterministic_and_unique(tracked_lines):
    first, second = normalize(tracked_lines)[0], normalize(tracked_lines)[0]
    assert [e.event_id for e in first] == [e.event_id for e in second]
    assert len({e.event_id for e in first}) == len(first)
    other_db = normalize(tracked_lines, database="other")[0]
    assert not {e.event_id for e in first} & {e.event_id for e in other_db}


def test_id_follows_the_documented_rule(tracked_lines):
    for ev in normalize(tracked_lines)[0]:
        s = ev.source
        assert ev.event_id == event_id(s.system_id, s.database, s.commit_lsn or s.change_lsn, s.position)


def test_replay_from_a_transaction_boundary_keeps_ids(tracked_lines):
    """After a crash the slot re-sends whole transactions: ids of those must not change."""
    full = normalize(tracked_lines)[0]
    begins = [i for i, line in enumerate(tracked_lines) if '"action":"B"' in line]
    tail = normalize(tracked_lines[begins[5]:])[0]
    assert [e.event_id for e in tail] == [e.event_id for e in full[-len(tail):]]


def test_events_round_trip_through_json(tracked_lines):
    for ev in normalize(tracked_lines)[0]:
        assert parse_event(ev.model_dump_json()) == ev


def test_other_prefixes_are_ignored():
    n = Normalizer("1", "db", "s", fixture_keys(), Redactor(b"k"))
    list(n.feed(decode('{"action":"B","xid":5,"timestamp":"2026-01-01 00:00:00+00","lsn":"0/10","nextlsn":"0/20"}')))
    assert list(n.feed(decode('{"action":"M","xid":5,"lsn":"0/11","transactional":true,"prefix":"other",'
                              '"content":"x"}'))) == []


def test_a_signed_message_with_a_broken_body_is_poison():
    import hmac
    key = fixture_keys()
    body = "not json"
    sig = hmac.new(key[1], body.encode(), hashlib.sha256).hexdigest()
    n = Normalizer("1", "db", "s", key, Redactor(b"k"))
    list(n.feed(decode('{"action":"B","xid":5,"timestamp":"2026-01-01 00:00:00+00","lsn":"0/10","nextlsn":"0/20"}')))
    line = json.dumps({"action": "M", "xid": 5, "lsn": "0/11", "transactional": True, "prefix": "pgtrail",
                       "content": f"v1 1 {sig} {body}"})
    with pytest.raises(Poison):
        list(n.feed(decode(line)))


def test_row_outside_a_transaction_is_poison():
    n = Normalizer("1", "db", "s", {}, Redactor(b"k"))
    with pytest.raises(Poison):
        list(n.feed(decode('{"action":"I","xid":5,"lsn":"0/12","schema":"s","table":"t","columns":[]}')))
