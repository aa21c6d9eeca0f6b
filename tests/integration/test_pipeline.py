"""DDL, DML and an operation in the source reach the vault, attributed to who made them."""
import uuid
from urllib.request import urlopen

import psycopg

from tests.conftest import dsn
from tests.integration.conftest import wait_until
from tests.integration.conftest import BOTH_DRIVERS

pytestmark = BOTH_DRIVERS


def test_ddl_dml_and_operation_reach_the_vault_attributed(pipeline):
    role = f"alice_{uuid.uuid4().hex[:6]}"
    with pipeline.source() as admin:
        admin.execute(f"create role {role} login password 'pw-{role}'")
        admin.execute(f"grant create on database {pipeline.source_db} to {role}")
    try:
        pipeline.start("consumer")
        pipeline.start("sink")
        with psycopg.connect(dsn(pipeline.source_db, role, f"pw-{role}"), autocommit=True) as conn:
            conn.execute("set application_name = 'itest-app'")
            conn.execute("set pgtrail.tenant_id = 'tenant-7'")
            conn.execute(f"create schema app_{role}")
            with pipeline.source() as admin:  # choosing what is tracked is the admins' call
                admin.execute("select script_tracking.track_schema(%s)", (f"app_{role}",))
            conn.execute(f"create table app_{role}.customers (id int primary key, email text)")
            conn.execute(f"insert into app_{role}.customers values (1, 'a@example.com'), (2, 'b@example.com')")
            conn.execute(f"update app_{role}.customers set email = 'c@example.com' where id = 1")
            conn.execute(f"delete from app_{role}.customers where id = 2")
            op_id = conn.execute("select track_operation('Nightly cleanup', 'MAINTENANCE')").fetchone()[0]

        wait_until(lambda: pipeline.vault_count("select count(*) from vault.sat_operation where operation_id = %s",
                                                (op_id,)), 60, what="the operation in the vault")
        table = f"app_{role}.customers"
        with pipeline.vault() as v:
            rows = v.execute(
                "select kind, action, object_identity, session_user_name, application_name, tenant_id, statement, "
                "primary_key, operation_name from vault.event_history where object_identity in (%s, %s) "
                "order by commit_lsn, position", (table, "operation:Nightly cleanup")).fetchall()
        ddl = [r for r in rows if r[0] == "ddl"]
        dml = [r for r in rows if r[0] == "dml"]
        ops = [r for r in rows if r[0] == "operation"]
        assert [r[1] for r in ddl] == ["CREATE TABLE"]
        assert f"create table app_{role}.customers" in ddl[0][6]
        assert [(r[1], r[7]) for r in dml] == [("INSERT", {"id": 1}), ("INSERT", {"id": 2}),
                                               ("UPDATE", {"id": 1}), ("DELETE", {"id": 2})]
        with pipeline.vault() as v:  # the email column is PII: hashed before it left the consumer
            values = v.execute("select new_values->>'email', redacted, s.tags from vault.sat_row_change "
                               "join vault.sat_event s using (hk_event) where table_name = 'customers' "
                               "and operation = 'insert'").fetchall()
        assert all(val.startswith("hmac-sha256:") and red == {"email": "hash"} and tags == ["PII", "GDPR"]
                   for val, red, tags in values), values
        assert len(ops) == 1 and ops[0][8] == "Nightly cleanup" and ops[0][1] == "MAINTENANCE"
        for r in rows:  # every event, DML included, names the person, the application and the tenant
            assert (r[3], r[4], r[5]) == (role, "itest-app", "tenant-7"), r

        # the same events are on Kafka with CloudEvents headers, keyed by object
        records = pipeline.read_topic("dml", min_count=4)
        assert len(records) == 4
        headers = dict(records[0].headers)
        assert headers["ce_type"] == b"dev.pgtrail.dml.v1" and headers["ce_specversion"] == b"1.0"
        assert records[0].key == f"{pipeline.source_db}.app_{role}.customers".encode()

        body = urlopen(f"http://127.0.0.1:{pipeline.consumer_port}/metrics", timeout=5).read().decode()
        assert f'pgtrail_consumer_events_published_total{{database="{pipeline.source_db}",kind="dml"}} 4.0' in body
        assert f'pgtrail_consumer_events_total{{database="{pipeline.source_db}",kind="dml"}} 4.0' in body
        # every row change of a table with a PII column, delete included, counts as a sensitive change
        assert f'pgtrail_consumer_sensitive_changes_total{{class="PII",database="{pipeline.source_db}"}} 4.0' in body
        assert "pgtrail_consumer_replication_lag_bytes" in body and "pgtrail_consumer_confirmed_lsn" in body
        # counted when the sink sees its batch's commit: at the latest one quiet poll (500 ms) after it
        wait_until(lambda: 'pgtrail_sink_events_loaded_total{kind="dml"} 4.0' in urlopen(
            f"http://127.0.0.1:{pipeline.sink_port}/metrics", timeout=5).read().decode(), 10,
            what="the sink's loaded-events counter")
    finally:
        pipeline.stop_all()
        with pipeline.source() as admin:
            admin.execute(f"drop schema if exists app_{role} cascade")
            admin.execute(f"drop owned by {role}")
            admin.execute(f"drop role {role}")


def test_slot_is_confirmed_only_after_kafka_has_the_events(pipeline):
    pipeline.start("consumer")
    with pipeline.source() as conn:
        conn.execute("create table t (id int primary key)")
        conn.execute("select script_tracking.track_table('t')")
        conn.execute("insert into t select generate_series(1, 100)")
        end = conn.execute("select pg_current_wal_lsn()").fetchone()[0]

    def confirmed():
        with pipeline.source() as conn:
            return conn.execute("select confirmed_flush_lsn >= %s::pg_lsn from pg_replication_slots "
                                "where slot_name = %s", (end, pipeline.slot)).fetchone()[0]
    wait_until(confirmed, 30, what="the slot to advance past the workload")
    assert pipeline.topic_size("dml") == 100  # confirmed, so Kafka has all of them
