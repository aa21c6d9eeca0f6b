"""kafka-python in a process of its own (publisher/kafka_python_process.py), on the real broker:
every record's callback runs once, an acknowledgement means the record is in Kafka, per-key
order holds, a dead child fails what it had not reported (retriable: nothing is confirmed that
Kafka does not have), and the settings' secrets never reach the child's argv or environment."""
from __future__ import annotations

import os
import signal
import uuid
from collections import defaultdict

from kafka import KafkaConsumer

from pgtrail import local
from pgtrail.errors import Retryable, classify_kafka
from publisher import KafkaSettings, make_publisher
from publisher.kafka_python_process import KafkaPythonProcessPublisher
from publisher.topics import ensure_topics
from tests.integration.conftest import KAFKA, wait_until

SASL_PASSWORD = "pgtrail-local-test"   # scripts/services.sh's SCRAM user on the SASL listener


def _read_all(topic: str, at_least: int) -> list:
    consumer = KafkaConsumer(topic, bootstrap_servers=KAFKA.split(","), auto_offset_reset="earliest",
                             enable_auto_commit=False, group_id=None, consumer_timeout_ms=3000)
    try:
        records: list = []
        wait_until(lambda: records.extend(r for b in consumer.poll(timeout_ms=500).values() for r in b)
                   or len(records) >= at_least, timeout=60, what=f"{at_least} records in {topic}")
        records.extend(consumer)   # and any more (there must be none beyond what was sent)
        return records
    finally:
        consumer.close()


def _publisher(prefix: str, **extra) -> KafkaPythonProcessPublisher:
    settings = KafkaSettings(bootstrap=KAFKA, topic_prefix=prefix, client="kafka-python", **extra)
    ensure_topics(KafkaSettings(bootstrap=KAFKA, topic_prefix=prefix), ["dml"])
    pub = make_publisher(settings)
    assert isinstance(pub, KafkaPythonProcessPublisher)   # the default arrangement for kafka-python
    return pub


def test_every_record_acknowledged_once_in_kafka_and_in_key_order():
    prefix = f"kpp{uuid.uuid4().hex[:8]}"
    pub = _publisher(prefix)
    outcomes: dict[int, list] = defaultdict(list)
    n = 5000
    try:
        for i in range(n):
            pub.send(pub.topic("dml"), b"key-%d" % (i % 7), b"%d" % i, [("ce_id", b"%d" % i)],
                     lambda err, i=i: outcomes[i].append(err))
            if i % 300 == 0:
                pub.poll(0)
        pub.flush(60)
    finally:
        pub.close()
    assert sorted(outcomes) == list(range(n)) and all(v == [None] for v in outcomes.values())
    records = _read_all(f"{prefix}.dml", n)
    assert sorted(int(r.value) for r in records) == list(range(n))        # each exactly once
    assert all(dict(r.headers)["ce_id"] == r.value for r in records)
    by_key = defaultdict(list)
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        by_key[r.key].append(int(r.value))
    assert all(v == sorted(v) for v in by_key.values())                  # per-key order kept


def test_a_dead_child_fails_what_it_had_not_reported_and_nothing_else():
    prefix = f"kpp{uuid.uuid4().hex[:8]}"
    pub = _publisher(prefix)
    outcomes: dict[int, list] = defaultdict(list)
    n = 20000
    try:
        for i in range(n):
            if i == n // 2:
                wait_until(lambda: pub.poll(0.05) or len(outcomes) > 100, timeout=30,
                           what="some acknowledgements")     # some acknowledged ...
                os.kill(pub._proc.pid, signal.SIGKILL)   # ... and the process killed mid-stream
            pub.send(pub.topic("dml"), b"k%d" % (i % 5), b"%d" % i, [], lambda err, i=i: outcomes[i].append(err))
        wait_until(lambda: pub.poll(0.1) or len(outcomes) == n, timeout=30, what="every callback")
    finally:
        pub.close()
    assert all(len(v) == 1 for v in outcomes.values()), "a callback ran twice"
    acked = {i for i, (err,) in outcomes.items() if err is None}
    failed = {i: err for i, (err,) in outcomes.items() if err is not None}
    assert acked and failed, (len(acked), len(failed))
    assert all(classify_kafka(err) is Retryable and "ended unexpectedly" in str(err) for err in failed.values())
    in_kafka = {int(r.value) for r in _read_all(f"{prefix}.dml", len(acked))}
    assert acked <= in_kafka                                              # acknowledged means in Kafka


def test_sasl_settings_reach_the_child_through_the_pipe_only():
    prefix = f"kpp{uuid.uuid4().hex[:8]}"
    ensure_topics(KafkaSettings(bootstrap=KAFKA, topic_prefix=prefix), ["dml"])
    settings = KafkaSettings(bootstrap=f"127.0.0.1:{local.kafka_sasl_port()}", topic_prefix=prefix,
                             client="kafka-python", security_protocol="SASL_PLAINTEXT",
                             sasl_mechanism="SCRAM-SHA-256", sasl_username="pgtrail", sasl_password=SASL_PASSWORD)
    pub = make_publisher(settings)
    done: list = []
    try:
        pid = pub._proc.pid
        for name in ("cmdline", "environ"):
            with open(f"/proc/{pid}/{name}", "rb") as f:
                assert SASL_PASSWORD.encode() not in f.read(), name
        pub.send(pub.topic("dml"), b"k", b"over SASL", [], done.append)
        pub.flush(30)
    finally:
        pub.close()
    assert done == [None]
    assert [r.value for r in _read_all(f"{prefix}.dml", 1)] == [b"over SASL"]
