"""Kafka keys: every event of a table (its rows, its DDL, its triggers', constraints' and policies'
DDL) has the table's key, so one partition holds them in order; every event has a CloudEvents time."""
import json
from urllib.request import urlopen

from tests.integration.conftest import wait_until
from tests.integration.test_migrations import files, run


def test_a_tables_row_and_object_events_share_its_key_and_partition(pipeline):
    pipeline.start("consumer")
    with pipeline.source() as conn:
        conn.execute('create table "user" (id int primary key, "Name" text)')  # a keyword: quoted identity
        conn.execute("""select script_tracking.track_table('"user"')""")
        conn.execute('insert into "user" values (1, \'a\')')
        conn.execute('create function no_op() returns trigger language plpgsql as $$ begin return new; end $$')
        conn.execute('create trigger "on user" before update on "user" for each row execute function no_op()')
        conn.execute('alter table "user" add constraint name_set check ("Name" <> \'\')')
        conn.execute('create policy own on "user" using (true)')
        conn.execute('update "user" set "Name" = \'b\'')
        conn.execute('drop policy own on "user"')
        conn.execute('drop trigger "on user" on "user"')
        conn.execute('alter table "user" drop constraint name_set')
        conn.execute('delete from "user"')
    key = f'{pipeline.source_db}.public."user"'.encode()
    dml = wait_until(lambda: (lambda rs: rs if len(rs) >= 3 else None)(pipeline.read_topic("dml", 3, 10)), 60,
                     what="three row changes")
    ddl = [r for r in pipeline.read_topic("ddl", 12, 30)
           if 'public."user"' in (json.loads(r.value)["payload"]["table_identity"] or
                                  json.loads(r.value)["payload"]["object_identity"] or "")]
    tags = sorted({json.loads(r.value)["payload"]["command_tag"] for r in ddl})
    assert {"CREATE TRIGGER", "DROP TRIGGER", "CREATE POLICY", "DROP POLICY", "ALTER TABLE"} <= set(tags), tags
    assert {r.key for r in dml} == {key}
    assert {r.key for r in ddl} == {key}, sorted({r.key for r in ddl})
    assert len({r.partition for r in dml} | {r.partition for r in ddl}) == 1


def test_script_steps_without_a_commit_carry_their_own_time(pipeline, tmp_path):
    pipeline.start("consumer")
    d = files(tmp_path / "m", V001__fails_sql="create table ok (id int);\nselect 1/0;\n")
    rc, _, _ = run(pipeline.env, "migrate", "apply", "--dir", d)
    assert rc != 0
    records = wait_until(lambda: (lambda rs: rs if len(rs) >= 2 else None)(pipeline.read_topic("script", 2, 10)),
                         60, what="the started and failed steps")
    steps = {r.value.split(b'"status":"')[1].split(b'"')[0].decode(): dict(r.headers) for r in records}
    assert set(steps) == {"started", "failed"}
    for status, headers in steps.items():
        assert headers.get("ce_time"), f"{status} step has no ce_time: {headers}"


def test_update_and_delete_without_replica_identity_are_counted_and_logged(pipeline):
    pipeline.start("consumer")
    with pipeline.source() as conn:
        conn.execute("create table nopk (a int, b text)")
        conn.execute("select script_tracking.track_table('nopk')")
        conn.execute("insert into nopk values (1, 'x'), (2, 'y')")
        conn.execute("update nopk set b = 'z'")
        conn.execute("delete from nopk where a = 1")
        conn.execute("delete from nopk")
    metric = f'pgtrail_consumer_uncapturable_statements_total{{database="{pipeline.source_db}",table="public.nopk"}} 3.0'

    def scraped():
        return metric in urlopen(f"http://127.0.0.1:{pipeline.consumer_port}/metrics", timeout=5).read().decode()
    wait_until(scraped, 60, what="three uncapturable statements counted")
    log = pipeline.log("consumer")
    assert log.count("public.nopk in") == 1 and "no replica identity" in log
    assert len(pipeline.read_topic("dml", 2, 10)) == 2  # the inserts, and nothing pretended for the rest
