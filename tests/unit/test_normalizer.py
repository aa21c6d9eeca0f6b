import pytest

from consumer.decoder import decode
from consumer.normalizer import Normalizer
from pgtrail.errors import Poison
from schemas import DdlEvent, DmlEvent, OperationEvent, event_id, parse_event


def run(lines, system_id="7712193764098600281", database="pgtrail_source"):
    n = Normalizer(system_id, database, "slot")
    events = []
    for line in lines:
        events.extend(n.feed(decode(line)))
    return events


def test_tracked_workload_becomes_attributed_events(tracked_lines):
    events = run(tracked_lines)
    kinds = [e.kind for e in events]
    assert kinds.count("ddl") == 5  # CREATE TABLE, its pkey index, the context trigger, ALTER, DROP
    assert kinds.count("dml") == 4
    assert kinds.count("operation") == 2  # one transactional, one non-transactional
    dml = [e for e in events if isinstance(e, DmlEvent)]
    assert [d.payload.operation for d in dml] == ["insert", "insert", "update", "delete"]
    for d in dml:  # attributed through the transaction's context message
        assert d.actor is not None
        assert d.actor.application_name == "fixture-app"
        assert d.actor.tenant_id == "tenant-42"
        assert d.actor.session_user == "postgres"
    assert dml[0].payload.new["balance"] == "12345678901234.5678"
    assert dml[3].payload.primary_key == {"id": 2} and dml[3].payload.new is None


def test_ddl_carries_statement_and_identity(tracked_lines):
    ddl = [e for e in run(tracked_lines) if isinstance(e, DdlEvent)]
    create = ddl[0]
    assert create.payload.command_tag == "CREATE TABLE"
    assert create.payload.object_identity == "public.accounts"
    assert "create table public.accounts" in create.payload.statement
    assert create.actor.application_name == "fixture-app"
    assert ddl[-1].payload.command_tag == "DROP TABLE"
    assert ddl[-2].payload.command_tag == "ALTER TABLE"


def test_ids_are_deterministic_and_unique(tracked_lines):
    first, second = run(tracked_lines), run(tracked_lines)
    assert [e.event_id for e in first] == [e.event_id for e in second]
    assert len({e.event_id for e in first}) == len(first)
    other_db = run(tracked_lines, database="other")
    assert not {e.event_id for e in first} & {e.event_id for e in other_db}


def test_id_follows_the_documented_rule(tracked_lines):
    ev = next(e for e in run(tracked_lines) if isinstance(e, DmlEvent))
    s = ev.source
    assert ev.event_id == event_id(s.system_id, s.database, s.commit_lsn, s.position)


def test_replay_from_the_middle_keeps_ids(tracked_lines):
    """After a crash the slot re-sends whole transactions: ids of those must not change."""
    full = run(tracked_lines)
    begins = [i for i, line in enumerate(tracked_lines) if '"action":"B"' in line]
    tail = run(tracked_lines[begins[3]:])
    assert [e.event_id for e in tail] == [e.event_id for e in full[-len(tail):]]


def test_non_transactional_message_uses_its_own_lsn(tracked_lines):
    ops = [e for e in run(tracked_lines) if isinstance(e, OperationEvent)]
    nontx = next(o for o in ops if o.payload.name == "nontx")
    assert nontx.source.commit_lsn is None and nontx.source.xid is None
    assert nontx.event_id == event_id(nontx.source.system_id, "pgtrail_source", nontx.source.change_lsn, 0)


def test_events_round_trip_through_json(tracked_lines):
    for ev in run(tracked_lines):
        assert parse_event(ev.model_dump_json()) == ev


def test_other_prefixes_are_ignored():
    n = Normalizer("1", "db", "s")
    n.feed(decode('{"action":"B","xid":5,"timestamp":"2026-01-01 00:00:00+00","lsn":"0/10","nextlsn":"0/20"}'))
    out = n.feed(decode('{"action":"M","xid":5,"lsn":"0/11","transactional":true,"prefix":"other","content":"x"}'))
    assert out == []


@pytest.mark.parametrize("content", ["not json", '{"no":"kind"}', '{"kind":"bogus"}', '{"kind":"ddl"}'])
def test_bad_pgtrail_messages_are_poison_and_do_not_shift_later_ids(content):
    begin = '{"action":"B","xid":5,"timestamp":"2026-01-01 00:00:00+00","lsn":"0/10","nextlsn":"0/20"}'
    bad = '{"action":"M","xid":5,"lsn":"0/11","transactional":true,"prefix":"pgtrail","content":%s}'
    row = ('{"action":"I","xid":5,"lsn":"0/12","schema":"s","table":"t","columns":[{"name":"id","type":"int",'
           '"value":1}],"pk":[{"name":"id","type":"int"}]}')
    import json
    n = Normalizer("1", "db", "s")
    n.feed(decode(begin))
    with pytest.raises(Poison):
        n.feed(decode(bad % json.dumps(content)))
    (ev,) = n.feed(decode(row))
    assert ev.source.position == 1 and ev.event_id == event_id("1", "db", "0/10", 1)


def test_row_outside_a_transaction_is_poison():
    n = Normalizer("1", "db", "s")
    with pytest.raises(Poison):
        n.feed(decode('{"action":"I","xid":5,"lsn":"0/12","schema":"s","table":"t","columns":[]}'))
