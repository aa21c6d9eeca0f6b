"""The README's subscriber example, run as written against a topic holding a re-sent event:
delivery is at least once, and the example shows each event once (it deduplicates on ce_id)."""
import contextlib
import io
import json
import re
import uuid

from kafka import KafkaProducer

from tests.conftest import KAFKA
from tests.integration.conftest import ROOT


def _example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Subscribing"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_subscriber_shows_a_resent_event_once():
    topic = f"t{uuid.uuid4().hex[:8]}.ddl"
    producer = KafkaProducer(bootstrap_servers=KAFKA.split(","))
    events = []
    for name in ("public.a", "public.b"):
        ce_id = str(uuid.uuid4())
        body = {"source": {"database": "db"}, "actor": {"session_user": "alice"},
                "payload": {"command_tag": "CREATE TABLE", "object_identity": name, "untracked": False}}
        events.append((ce_id, json.dumps(body).encode()))
    for ce_id, body in [events[0], events[1], events[0]]:  # the first one re-sent after a crash
        producer.send(topic, body, headers=[("ce_id", ce_id.encode())])
    producer.flush()
    producer.close()
    code = _example()
    assert 'KafkaConsumer("pgtrail.ddl", bootstrap_servers="127.0.0.1:19092", group_id="dba-team")' in code
    code = code.replace('KafkaConsumer("pgtrail.ddl", bootstrap_servers="127.0.0.1:19092", group_id="dba-team")',
                        f'KafkaConsumer("{topic}", bootstrap_servers={KAFKA.split(",")!r}, group_id="{topic}", '
                        'auto_offset_reset="earliest", consumer_timeout_ms=5000)')
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    # one line per event, the re-sent one skipped (the topic has 3 partitions: order across them is free)
    assert sorted(out.getvalue().splitlines()) == ["db CREATE TABLE public.a by alice ", "db CREATE TABLE public.b by alice "]
