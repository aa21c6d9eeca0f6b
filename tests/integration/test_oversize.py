"""A value larger than the topic's message limit never stalls capture: the event goes out with the
value referenced (size, hash, where to read it), counted, and recorded in the vault."""
from urllib.request import urlopen

from kafka.admin import KafkaAdminClient, NewTopic

from tests.conftest import KAFKA
from tests.integration.conftest import BOTH_DRIVERS, wait_until

pytestmark = BOTH_DRIVERS
TOPIC_LIMIT = 1_000_000  # Kafka's default max.message.bytes is about this; the test broker allows 10 MB


def test_a_50_mb_value_and_a_transaction_of_huge_rows_do_not_stall_capture(pipeline):
    admin = KafkaAdminClient(bootstrap_servers=KAFKA.split(","))
    try:
        admin.create_topics([NewTopic(f"{pipeline.prefix}.dml", 3, 1,
                                      topic_configs={"max.message.bytes": str(TOPIC_LIMIT)})])
    finally:
        admin.close()
    with pipeline.source() as conn:
        conn.execute("create table docs (id int primary key, title text, body text)")
        conn.execute("select script_tracking.track_table('docs')")
    pipeline.start("consumer")
    pipeline.start("sink")
    with pipeline.source() as conn:
        conn.execute("insert into docs values (1, 'huge', repeat('x', 50000000))")  # one 50 MB value
        with conn.transaction():
            for i in range(2, 5):  # a transaction of huge rows
                conn.execute("insert into docs values (%s, 'big', repeat(md5(%s::text), 100000))", (i, i))
        conn.execute("insert into docs values (5, 'small', 'after them')")
        expected = dict(conn.execute("select id, encode(sha256(convert_to(body, 'UTF8')), 'hex') from docs "
                                     "where id < 5").fetchall())
    wait_until(lambda: pipeline.vault_count("select count(*) from vault.sat_row_change where table_name = 'docs'")
               == 5, 120, what="all five rows in the vault (capture not stalled)")
    with pipeline.vault() as v:
        rows = v.execute("""select (rc.primary_key->>'id')::int, rc.new_values ? 'body', rc.new_values->>'title',
                                   o.path, o.size_bytes, o.sha256, o.fetch_from
                              from vault.sat_row_change rc
                              left join vault.sat_oversize_value o using (hk_event)
                             where rc.table_name = 'docs' order by 1""").fetchall()
    assert [(r[0], r[1], r[2]) for r in rows] == [(1, False, "huge"), (2, False, "big"), (3, False, "big"),
                                                  (4, False, "big"), (5, True, "small")]
    for pk, _, _, path, size, sha, fetch in rows[:4]:
        assert path == "payload.new.body"
        assert size == (50_000_000 if pk == 1 else 3_200_000)
        assert sha == expected[pk]
        assert fetch == {"schema": "public", "table": "docs", "column": "body", "primary_key": {"id": pk}}
    assert rows[4][3] is None
    metrics = urlopen(f"http://127.0.0.1:{pipeline.consumer_port}/metrics", timeout=5).read().decode()
    assert f'pgtrail_consumer_oversize_values_total{{database="{pipeline.source_db}"}} 4.0' in metrics
    assert pipeline.procs["consumer"].poll() is None
