"""Poison goes to the dead-letter topic with its reason; loading goes on."""
import hashlib
import hmac
import json
import uuid
from urllib.request import urlopen

from kafka import KafkaProducer

from tests.conftest import KAFKA
from tests.integration.conftest import ROOT, wait_until


def test_poison_records_are_dead_lettered_and_loading_continues(pipeline):
    pipeline.start("consumer")
    pipeline.start("sink")
    producer = KafkaProducer(bootstrap_servers=KAFKA.split(","))
    valid_shape_bad_value = json.dumps({"kind": "dml", "event_id": str(uuid.uuid4())})
    # a well-formed event of a schema version newer than this sink knows: refused, never misread
    newer = json.loads((ROOT / "tests/unit/fixtures/events_v1.jsonl").read_text().splitlines()[0])
    newer.update(schema_version=2, event_id=str(uuid.uuid4()))
    for body in (b"{not json", b"\xff\xfe binary", valid_shape_bad_value.encode(),
                 json.dumps({"schema_version": 99, "kind": "teleport"}).encode(), json.dumps(newer).encode()):
        producer.send(f"{pipeline.prefix}.dml", value=body, key=b"x")
    producer.flush()
    producer.close()
    with pipeline.source() as conn:  # a good event after the poison
        conn.execute("create table after_poison (id int primary key)")
    wait_until(lambda: pipeline.vault_count("select count(*) from vault.sat_ddl where object_identity = "
                                            "'public.after_poison'"), 60, what="the good event after the poison")
    dead = pipeline.read_topic("deadletter", min_count=5)
    assert len(dead) == 5
    reasons = [dict(r.headers)["pgtrail_reason"].decode() for r in dead]
    assert all(r.startswith("invalid event:") for r in reasons), reasons
    assert any("schema_version" in r and "less than or equal to 1" in r for r in reasons), reasons
    assert pipeline.vault_count("select count(*) from vault.hub_event where event_id = %s", (newer["event_id"],)) == 0
    assert {r.value for r in dead} >= {b"{not json", b"\xff\xfe binary"}
    origins = [dict(r.headers)["pgtrail_origin"].decode() for r in dead]
    assert all(o.startswith(f"{pipeline.prefix}.dml/") for o in origins)


def test_forged_messages_surface_as_security_events_and_broken_signed_ones_are_dead_lettered(pipeline):
    pipeline.start("consumer")
    pipeline.start("sink")
    with pipeline.source() as conn:
        kid, key = conn.execute("select kid, key from script_tracking.signing_keys()").fetchone()
        body = "this is not json"
        signed_garbage = f"v1 {kid} {hmac.new(bytes(key), body.encode(), hashlib.sha256).hexdigest()} {body}"
        conn.execute("select pg_logical_emit_message(true, 'pgtrail', %s)", (signed_garbage,))
        # anyone may call pg_logical_emit_message: a forged DDL and a forged operation
        conn.execute("""select pg_logical_emit_message(true, 'pgtrail', '{"kind": "ddl", "command_tag": "DROP TABLE",
                        "object_identity": "public.payroll"}')""")
        conn.execute("""select pg_logical_emit_message(false, 'pgtrail', 'v1 1 00ff {"kind": "operation"}')""")
        conn.execute("create table after_bad_message (id int primary key)")
    wait_until(lambda: pipeline.vault_count("select count(*) from vault.sat_ddl where object_identity = "
                                            "'public.after_bad_message'"), 60, what="the DDL after the bad messages")
    dead = pipeline.read_topic("deadletter", min_count=1)
    assert len(dead) == 1
    reason = dict(dead[0].headers)["pgtrail_reason"].decode()
    assert "no valid JSON body" in reason and b"this is not json" in dead[0].value  # the raw WAL line, whole
    wait_until(lambda: pipeline.vault_count("select count(*) from vault.sat_security_event") == 2, 30,
               what="two security events in the vault")
    with pipeline.vault() as v:
        rows = v.execute("select reason, transactional, content from vault.sat_security_event order by 2").fetchall()
        trusted = v.execute("select count(*) from vault.sat_ddl where object_identity = 'public.payroll'").fetchone()[0]
    assert [(r[0], r[1]) for r in rows] == [("bad signature", False), ("unsigned message (not in the "
                                            "'v1 <kid> <hmac> <body>' format)", True)]
    assert "public.payroll" in rows[1][2]
    assert trusted == 0  # never as a trusted event
    body = urlopen(f"http://127.0.0.1:{pipeline.consumer_port}/metrics", timeout=5).read().decode()
    assert f'pgtrail_consumer_security_events_total{{database="{pipeline.source_db}"}} 2.0' in body


def test_oversized_records_are_dead_lettered(pipeline):
    pipeline.env["PGTRAIL_SINK_MAX_EVENT_BYTES"] = "4096"
    pipeline.start("sink")
    producer = KafkaProducer(bootstrap_servers=KAFKA.split(","))
    producer.send(f"{pipeline.prefix}.ddl", value=b"{" + b" " * 10000 + b"}", key=b"big")
    producer.flush()
    producer.close()
    (dead,) = pipeline.read_topic("deadletter", min_count=1)
    assert dict(dead.headers)["pgtrail_reason"].decode() == "oversized: 10002 bytes (limit 4096)"
    assert len(dead.value) == 10002  # kept whole


def test_a_topic_of_mostly_poison_stops_the_sink_with_a_clear_message(pipeline):
    pipeline.env["PGTRAIL_SINK_POISON_WINDOW"] = "20"
    proc = pipeline.start("sink")
    producer = KafkaProducer(bootstrap_servers=KAFKA.split(","))
    for i in range(30):
        producer.send(f"{pipeline.prefix}.dml", value=f"garbage {i}".encode(), key=b"x")
    producer.flush()
    producer.close()
    assert proc.wait(60) == 2
    log = pipeline.log("sink")
    assert "pgtrail: error: 20 of the last 20 records were poison (limit 50%)" in log and "Traceback" not in log
    assert len(pipeline.read_topic("deadletter", min_count=20)) >= 20  # nothing lost on the way out
    # committed on the way out (the sink commits asynchronously; closing makes the last one certain):
    # the dead-lettered records are not read again by the next sink of the group
    from kafka import KafkaConsumer, TopicPartition
    group = KafkaConsumer(bootstrap_servers=KAFKA.split(","), group_id=pipeline.env["PGTRAIL_SINK_GROUP_ID"],
                          enable_auto_commit=False)
    try:
        tps = [TopicPartition(f"{pipeline.prefix}.dml", p) for p in group.partitions_for_topic(f"{pipeline.prefix}.dml")]
        committed = sum(group.committed(tp) or 0 for tp in tps)
    finally:
        group.close()
    assert committed >= 20, f"the group committed {committed} of the 30 records"
