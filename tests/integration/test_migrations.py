"""Tracked migrations and drift, on the real services."""
import json
import os
import subprocess
import sys
from urllib.request import urlopen

import psycopg

from tests.conftest import KAFKA, dsn
from tests.integration.conftest import ROOT, wait_until


def run(env, *args, timeout=120):
    proc = subprocess.run([sys.executable, "-m", "pgtrail.cli", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


def source_env(source_db):
    return {**os.environ, "PGTRAIL_SOURCE_DSN": dsn(source_db), "PGTRAIL_KAFKA_BOOTSTRAP": KAFKA}


def files(folder, **named):
    folder.mkdir(exist_ok=True)
    for name, text in named.items():
        (folder / name.replace("_sql", ".sql")).write_bytes(text.encode())
    return str(folder)


def test_apply_records_executions_and_links_ddl_to_them(pipeline, tmp_path):
    pipeline.start("consumer")
    pipeline.start("sink")
    d = files(tmp_path / "m",
              V001__create_users_sql="-- ticket: DB-1\n-- justification: sign-up\n"
                                     "create table users (id int primary key, email text);\n"
                                     "insert into users values (1, 'a@example.com');\n",
              V002__add_name_sql="alter table users add column name text;\n",
              R__views_sql="create or replace view user_emails as select id, email from users;\n")
    rc, out, err = run(pipeline.env, "migrate", "status", "--dir", d, "--json")
    assert rc == 0, err
    assert [s["state"] for s in json.loads(out)] == ["pending", "pending", "pending"]
    rc, out, err = run(pipeline.env, "migrate", "apply", "--dir", d, "--justification", "default reason")
    assert rc == 0, err
    assert [line.split()[1] for line in out.splitlines()] == ["V001__create_users.sql", "V002__add_name.sql",
                                                              "R__views.sql"]
    rc, out, _ = run(pipeline.env, "migrate", "apply", "--dir", d)
    assert rc == 0 and "nothing to apply" in out
    rc, out, _ = run(pipeline.env, "migrate", "status", "--dir", d, "--json")
    assert [s["state"] for s in json.loads(out)] == ["applied", "applied", "applied"]

    wait_until(lambda: pipeline.vault_count("select count(*) from vault.sat_script_execution "
                                            "where status = 'completed'") == 3, 60, what="three completed executions")
    with pipeline.vault() as v:
        rows = v.execute("select action, operation_name, ticket_number, untracked from vault.event_history "
                         "where object_identity = 'public.users' and kind = 'ddl' order by commit_lsn, position").fetchall()
        execs = v.execute("select script_name, status, version, ticket_number, business_justification, rows_affected "
                          "from vault.script_executions order by started_at").fetchall()
    assert rows == [("CREATE TABLE", "V001__create_users.sql", "DB-1", False),
                    ("ALTER TABLE", "V002__add_name.sql", None, False)]
    assert execs == [("V001__create_users.sql", "completed", "001", "DB-1", "sign-up", 1),
                     ("V002__add_name.sql", "completed", "002", None, "default reason", 0),
                     ("R__views.sql", "completed", None, None, "default reason", 0)]


def test_a_failure_in_the_middle_rolls_back_is_recorded_and_the_fixed_file_applies(pipeline, tmp_path):
    pipeline.start("consumer")
    pipeline.start("sink")
    folder = tmp_path / "m"
    bad = "create table t2 (id int);\ninsert into t2 values (1);\nselect 1/0;\ncreate table t3 (id int);\n"
    d = files(folder, V001__base_sql="create table t1 (id int);\n", V002__more_sql=bad)
    rc, out, err = run(pipeline.env, "migrate", "apply", "--dir", d)
    assert rc == 2 and "Traceback" not in err
    assert "V002__more.sql failed (22012: division by zero) in statement: select 1/0; rolled back" in err
    with pipeline.source() as conn:
        assert conn.execute("select to_regclass('t1') is not null, to_regclass('t2') is null").fetchone() == (True, True)
        assert conn.execute("select version from script_tracking.migration_history").fetchall() == [("001",)]
    wait_until(lambda: pipeline.vault_count("select count(*) from vault.sat_script_execution where status = 'failed'"),
               60, what="the failure in the vault")
    with pipeline.vault() as v:
        failed = v.execute("select script_name, error, error_state, failed_statement from vault.sat_script_execution "
                           "where status = 'failed'").fetchone()
        leaked = v.execute("select count(*) from vault.event_history where object_identity = 'public.t2'").fetchone()[0]
    assert failed == ("V002__more.sql", "division by zero", "22012", "select 1/0")
    assert leaked == 0  # its DDL rolled back, so it never reached the WAL as committed
    files(folder, V002__more_sql=bad.replace("select 1/0;\n", ""))
    rc, out, err = run(pipeline.env, "migrate", "apply", "--dir", d)
    assert rc == 0, err
    with pipeline.source() as conn:
        assert conn.execute("select to_regclass('t2') is not null and to_regclass('t3') is not null").fetchone()[0]


def test_a_changed_checksum_is_refused_and_line_endings_are_not_a_change(source_db, tmp_path):
    env = source_env(source_db)
    folder = tmp_path / "m"
    d = files(folder, V001__t_sql="create table ck (id int);\ncomment on table ck is 'one';\n")
    assert run(env, "migrate", "apply", "--dir", d)[0] == 0
    files(folder, V001__t_sql="create table ck (id int);\r\ncomment on table ck is 'one';\r\n")  # a Windows checkout
    rc, out, _ = run(env, "migrate", "validate", "--dir", d)
    assert rc == 0 and "nothing pending" in out
    files(folder, V001__t_sql="create table ck (id bigint);\ncomment on table ck is 'one';\n",
          V002__next_sql="create table ck2 (id int);\n")
    rc, out, _ = run(env, "migrate", "validate", "--dir", d)
    assert rc == 1 and "V001__t.sql was changed after it was applied: applied checksum " in out
    rc, _, err = run(env, "migrate", "apply", "--dir", d)
    assert rc == 2 and "refusing to apply: V001__t.sql was changed after it was applied" in err
    sums = err.split("applied checksum ")[1]
    assert len(sums.split(", file checksum ")[0]) == 64 and len(sums.split(", file checksum ")[1].strip()) == 64
    with psycopg.connect(dsn(source_db)) as conn:
        assert conn.execute("select to_regclass('ck2')").fetchone()[0] is None  # nothing applied


def test_two_applies_at_once_apply_each_version_once(source_db, tmp_path):
    env = source_env(source_db)
    d = files(tmp_path / "m", V001__slow_sql="create table slow (id int);\nselect pg_sleep(2);\n",
              V002__after_sql="alter table slow add column x int;\n")
    procs = [subprocess.Popen([sys.executable, "-m", "pgtrail.cli", "migrate", "apply", "--dir", d], env=env,
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    applied = sorted(o[0].count("applied V") for o in outs)
    assert applied == [0, 2], outs  # one run applied both, the other found nothing to do
    with psycopg.connect(dsn(source_db)) as conn:
        assert conn.execute("select version, count(*) from script_tracking.migration_history group by 1 "
                            "order by 1").fetchall() == [("001", 1), ("002", 1)]


def test_a_migration_outside_a_transaction(source_db, tmp_path):
    env = source_env(source_db)
    d = files(tmp_path / "m", V001__table_sql="create table big (id int);\n",
              V002__index_sql="-- pgtrail:no-transaction\ncreate index concurrently big_id on big (id);\n")
    rc, _, err = run(env, "migrate", "apply", "--dir", d)
    assert rc == 0, err
    with psycopg.connect(dsn(source_db)) as conn:
        assert conn.execute("select to_regclass('big_id')").fetchone()[0] == "big_id"


def test_drift_from_a_manual_alter(pipeline, tmp_path):
    pipeline.start("consumer")
    pipeline.start("sink")
    d = files(tmp_path / "m", V001__accounts_sql="create table accounts (id int primary key, owner text);\n")
    assert run(pipeline.env, "migrate", "apply", "--dir", d)[0] == 0
    with pipeline.source() as conn:
        conn.execute("set application_name = 'psql-by-hand'")
        conn.execute("alter table accounts add column backdoor text")
    wait_until(lambda: pipeline.vault_count("select count(*) from vault.sat_ddl where untracked "
                                            "and object_identity = 'public.accounts'"), 60,
               what="the manual ALTER flagged untracked in the vault")
    metrics = urlopen(f"http://127.0.0.1:{pipeline.consumer_port}/metrics", timeout=5).read().decode()
    assert f'pgtrail_consumer_untracked_ddl_total{{database="{pipeline.source_db}"}} 1.0' in metrics
    rc, out, err = run(pipeline.env, "drift")
    assert rc == 1, err
    assert "public.accounts: changed outside migrations" in out
    assert "postgres: ALTER TABLE: alter table accounts add column backdoor text" in out
    assert "+  column backdoor text" in out
    rc, out, _ = run(pipeline.env, "drift", "--json")
    (item,) = [x for x in json.loads(out) if x["object"] == "public.accounts"]
    assert item["manual_changes"][0]["by"] == "postgres"
