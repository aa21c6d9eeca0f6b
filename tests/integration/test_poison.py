"""Poison goes to the dead-letter topic with its reason; loading goes on."""
import json
import uuid

from kafka import KafkaProducer

from tests.conftest import KAFKA
from tests.integration.conftest import wait_until


def test_poison_records_are_dead_lettered_and_loading_continues(pipeline):
    pipeline.start("consumer")
    pipeline.start("sink")
    producer = KafkaProducer(bootstrap_servers=KAFKA.split(","))
    valid_shape_bad_value = json.dumps({"kind": "dml", "event_id": str(uuid.uuid4())})
    for body in (b"{not json", b"\xff\xfe binary", valid_shape_bad_value.encode(),
                 json.dumps({"schema_version": 99, "kind": "teleport"}).encode()):
        producer.send(f"{pipeline.prefix}.dml", value=body, key=b"x")
    producer.flush()
    producer.close()
    with pipeline.source() as conn:  # a good event after the poison
        conn.execute("create table after_poison (id int primary key)")
    wait_until(lambda: pipeline.vault_count("select count(*) from vault.sat_ddl where object_identity = "
                                            "'public.after_poison'"), 60, what="the good event after the poison")
    dead = pipeline.read_topic("deadletter", min_count=4)
    assert len(dead) == 4
    reasons = [dict(r.headers)["pgtrail_reason"].decode() for r in dead]
    assert all(r.startswith("invalid event:") for r in reasons), reasons
    assert {r.value for r in dead} >= {b"{not json", b"\xff\xfe binary"}
    origins = [dict(r.headers)["pgtrail_origin"].decode() for r in dead]
    assert all(o.startswith(f"{pipeline.prefix}.dml/") for o in origins)


def test_a_forged_or_broken_pgtrail_message_is_dead_lettered_by_the_consumer(pipeline):
    pipeline.start("consumer")
    pipeline.start("sink")
    with pipeline.source() as conn:
        conn.execute("select pg_logical_emit_message(true, 'pgtrail', 'this is not json')")
        conn.execute("select pg_logical_emit_message(true, 'pgtrail', '{\"kind\": \"ddl\"}')")
        conn.execute("create table after_bad_message (id int primary key)")
    wait_until(lambda: pipeline.vault_count("select count(*) from vault.sat_ddl where object_identity = "
                                            "'public.after_bad_message'"), 60, what="the DDL after the bad messages")
    dead = pipeline.read_topic("deadletter", min_count=2)
    assert len(dead) == 2
    by_reason = {dict(r.headers)["pgtrail_reason"].decode(): r.value for r in dead}
    not_json = [v for k, v in by_reason.items() if "not valid JSON" in k]
    incomplete = [v for k, v in by_reason.items() if "incomplete" in k]
    assert len(not_json) == 1 and b"this is not json" in not_json[0]  # the raw WAL line is kept whole
    assert len(incomplete) == 1 and b'"action":"M"' in incomplete[0]
    assert all(dict(r.headers)["pgtrail_origin"].decode().startswith(pipeline.source_db) for r in dead)
