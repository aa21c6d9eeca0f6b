"""The original design's SQL, as its users type it in a tracked database, through the real pipeline
(consumer, Kafka, sink), read back from the vault: issue #16.

Every statement quoted from /work/shared/ORIGINAL_DESIGN.md is copied verbatim into a DESIGN_*
constant below; nothing of it is paraphrased.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from pgtrail import sqlsplit
from tests.conftest import dsn
from tests.integration.conftest import ROOT, wait_until

# ---- verbatim from ORIGINAL_DESIGN.md
DESIGN_QUICK_START = "SELECT track_operation('README Deployment Test', 'TESTING');"
DESIGN_VIEW_RESULTS = "SELECT * FROM script_tracking.get_execution_history();"
DESIGN_DASHBOARD = "SELECT * FROM script_tracking.get_enterprise_dashboard();"
DESIGN_TEST_OPERATION = "SELECT track_operation('Test Operation', 'TESTING');"
DESIGN_SIMULATE = "SELECT script_tracking.import_historical_operations(30, true);"
DESIGN_LOGIN = "SELECT * FROM auth.login_user_tracking('test@email.com', 'password', 'tenant_123');"
DESIGN_TRACK_SCRIPT = """SELECT script_tracking.track_script_execution(
    'migration_v1.2.sql', 'MIGRATION', 'DDL', 
    script_content, file_path, version, tenant_id, 
    'Business justification', ticket_number
);"""
# ----

SECRET = "vault-pw-never-shown"


def pgtrail(pipeline, *args, check=True):
    proc = subprocess.run([sys.executable, "-m", "pgtrail.cli", *args], env=pipeline.env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def install_with_vault(pipeline) -> str:
    """`pgtrail install source --vault-dsn` on the running source (an upgrade in place of its install)."""
    out = pgtrail(pipeline, "install", "source", "--dsn", dsn(pipeline.source_db),
                  "--vault-dsn", dsn(pipeline.vault_db, password=SECRET))
    text = out.stdout + out.stderr
    assert SECRET not in text
    assert f"reports read the vault at 127.0.0.1:" in out.stdout and "warning" not in out.stdout, text
    return text


def start(pipeline) -> None:
    pipeline.start("consumer")
    pipeline.start("sink")


def settled(pipeline) -> None:
    """Everything written so far is in the vault: an operation written now has arrived."""
    with pipeline.source() as conn:
        marker = conn.execute("select track_operation('settled', 'TEST')").fetchone()[0]
    wait_until(lambda: pipeline.vault_count("select count(*) from vault.sat_operation where operation_id = %s",
                                            (marker,)), 90, what="the events in the vault")


def rows(conn, sql: str, params=()) -> list[dict]:
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def vault_text_contains(pipeline, needle: str) -> int:
    """Occurrences of a value anywhere in the vault's event facts."""
    with pipeline.vault() as v:
        return sum(v.execute(f"select count(*) from vault.{t} x where x::text like %s", (f"%{needle}%",)).fetchone()[0]
                   for t in ("link_event", "sat_operation", "sat_ddl", "sat_script_execution",
                             "sat_log_entry", "sat_object_definition", "sat_security_event"))


# ------------------------------------------------------------------ 1. reports where users type them

def test_the_quick_start_and_the_dashboard_answer_in_the_tracked_database(pipeline):
    start(pipeline)
    with pipeline.source() as src:
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState,
                           match=r"^pgtrail: no vault configured for reports in database t_source_\w+: run "):
            src.execute(DESIGN_VIEW_RESULTS)
    install_with_vault(pipeline)
    with pipeline.source() as src:
        src.execute("set application_name = 'design-user'")
        op = src.execute(DESIGN_QUICK_START).fetchone()[0]
        src.execute("create table crm (id int primary key)")
        src.execute("alter table crm add column name text")
    settled(pipeline)

    with pipeline.source() as src:
        history = rows(src, DESIGN_VIEW_RESULTS)
        (mine,) = [h for h in history if h["execution_id"] == op]
        assert (mine["script_name"], mine["script_type"], mine["status"], mine["kind"], mine["executed_by"],
                mine["database_name"], mine["simulated"]) == \
            ("README Deployment Test", "TESTING", "completed", "operation", "postgres", pipeline.source_db, False)
        dashboard = {(d["section"], d["name"]): d["value"] for d in rows(src, DESIGN_DASHBOARD)}
        assert dashboard[("events by database", pipeline.source_db)] >= 3
        assert dashboard[("untracked DDL", "public.crm")] == 2
        objects = rows(src, "SELECT * FROM script_tracking.get_object_history('crm')")
        assert [o["action"] for o in objects] == ["CREATE TABLE", "ALTER TABLE"]
        assert all(o["database_name"] == pipeline.source_db for o in objects)
    with pipeline.vault() as v:  # the vault's own functions answer the same
        assert op in {r["execution_id"] for r in rows(v, DESIGN_VIEW_RESULTS)}

    # the credentials: in the user mapping only, never in an event, the vault or pgtrail's output
    assert vault_text_contains(pipeline, SECRET) == 0
    with pipeline.source() as src:
        assert src.execute("select count(*) from pg_user_mappings where srvname = 'pgtrail_vault' "
                           "and %s = any(umoptions)", (f"password={SECRET}",)).fetchone()[0] == 1
        assert src.execute("select count(*) from pg_stat_activity where query like %s",
                           (f"%{SECRET}%",)).fetchone()[0] == 0
    with pipeline.vault() as v:
        (stmt,) = v.execute("select statement from vault.sat_ddl where command_tag = 'CREATE USER MAPPING'").fetchone()
        assert stmt == "select script_tracking.configure_vault($1, $2)"

    # a vault that cannot be reached: one line that says so
    out = pgtrail(pipeline, "install", "source", "--dsn", dsn(pipeline.source_db), "--vault-dsn",
                  f"host=127.0.0.1 port=1 dbname=nowhere user=reader password={SECRET}")
    assert SECRET not in out.stdout + out.stderr
    assert "warning: reports cannot read the vault yet: pgtrail: the vault at 127.0.0.1:1/nowhere is not reachable" \
        in out.stdout
    with pipeline.source() as src:
        with pytest.raises(psycopg.errors.SqlclientUnableToEstablishSqlconnection) as err:
            src.execute(DESIGN_DASHBOARD)
    first = str(err.value).splitlines()[0]
    assert re.fullmatch(r'pgtrail: the vault at 127\.0\.0\.1:1/nowhere is not reachable: connection to server at '
                        r'"127\.0\.0\.1", port 1 failed: Connection refused', first), first
    assert SECRET not in str(err.value)


def test_the_fleet_file_vault_is_the_reports_vault(source_db, vault_db, tmp_path):
    config = tmp_path / "fleet.toml"
    config.write_text(f'[sink]\nvault_dsn = "{dsn(vault_db, password=SECRET)}"\n'
                      f'[[sources]]\nname = "orders"\ndsn = "{dsn(source_db)}"\n')
    out = subprocess.run([sys.executable, "-m", "pgtrail.cli", "install", "source", "--config", str(config)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"orders: reports read the vault at 127.0.0.1:" in out.stdout and SECRET not in out.stdout + out.stderr
    with psycopg.connect(dsn(source_db), autocommit=True) as src:
        assert src.execute(DESIGN_VIEW_RESULTS).fetchall() == []
        assert src.execute("select script_tracking._vault_described()").fetchone()[0].endswith(f"/{vault_db}")


def test_reports_are_not_for_everyone(pipeline):
    install_with_vault(pipeline)
    with pipeline.source() as src:
        src.execute("create role t16_app login password 'pw-t16'")
        src.execute("create role t16_reader login password 'pw-t16' in role pgtrail_reporter")
    try:
        with psycopg.connect(dsn(pipeline.source_db, "t16_app", "pw-t16"), autocommit=True) as app:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute(DESIGN_VIEW_RESULTS)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute("select * from pg_catalog.pg_user_mapping")
        with psycopg.connect(dsn(pipeline.source_db, "t16_reader", "pw-t16"), autocommit=True) as reader:
            assert reader.execute(DESIGN_VIEW_RESULTS).fetchall() == []
            assert reader.execute("select umoptions from pg_user_mappings where srvname = 'pgtrail_vault'"
                                  ).fetchone() == (None,)
    finally:
        with pipeline.source() as src:
            src.execute("drop role t16_app")
            src.execute("drop role t16_reader")


# ------------------------------------------------------------------ 2. simulated history

def test_simulated_history_lies_in_the_past_and_is_left_out_or_marked(pipeline):
    start(pipeline)
    install_with_vault(pipeline)
    with pipeline.source() as src:
        src.execute(DESIGN_TEST_OPERATION)
        import_id = src.execute(DESIGN_SIMULATE).fetchone()[0]
        now = src.execute("select now()").fetchone()[0]
    wait_until(lambda: pipeline.vault_count("select count(*) from vault.sat_operation where operation_id = %s",
                                            (import_id,)), 120, what="the simulated import in the vault")
    settled(pipeline)

    with pipeline.vault() as v:
        times = [r[0] for r in v.execute("select e.commit_time from vault.sat_log_entry l "
                                         "join vault.link_event e using (hk_event) where l.simulated")]
        assert len(times) > 200
        assert max(times) < now and min(times) >= now - timedelta(days=30)  # strictly in the past, 30 days
        assert min(times) < now - timedelta(days=28) and max(times) > now - timedelta(days=2)
        assert len({t.date() for t in times}) >= 25  # spread over them
        flagged = v.execute("select bool_and(simulated), count(*) from vault.event_history "
                            "where kind = 'log_import' or operation_name = 'import_postgres_logs'").fetchone()
        assert flagged[0] is True and flagged[1] == len(times) + 1

    with pipeline.source() as src:
        dashboard = rows(src, DESIGN_DASHBOARD)
        names = {(d["section"], d["name"]) for d in dashboard}
        fake = {"shop", "billing", "analytics", "alice", "bob", "carol", "deploy_bot", "etl_service"}
        assert not {n for _, n in names} & fake
        assert ("events by kind", "log_import") not in names
        (excluded,) = [d for d in dashboard if d["section"] == "simulated history"]
        # (entries of the 30th day just before the dashboard's own 30 days may fall out of its window)
        assert excluded["name"] == "simulated events (excluded)" and 0.9 * len(times) < excluded["value"] <= len(times) + 1
        marked = {d["name"] for d in rows(src, "select * from script_tracking.get_enterprise_dashboard("
                                               "include_simulated => true)")}
        assert {"shop [simulated]", "log_import [simulated]", "alice [simulated]"} <= marked
        assert "simulated events (included, marked)" in marked

        history = rows(src, DESIGN_VIEW_RESULTS)
        assert [h["script_name"] for h in history if h["kind"] == "operation"][:1] == ["settled"]
        assert import_id not in {h["execution_id"] for h in history}
        (imported,) = [h for h in rows(src, "select * from script_tracking.get_execution_history("
                                            "include_simulated => true)") if h["execution_id"] == import_id]
        assert imported["simulated"] is True and imported["script_type"] == "LOG_IMPORT"

    real = json.loads(pgtrail(pipeline, "history", "--json").stdout)
    assert real and not any(r["simulated"] for r in real)
    everything = pgtrail(pipeline, "history", "--simulated", "--limit", "100000").stdout
    assert "[SIMULATED] [from log]" in everything and "[SIMULATED] operation 'import_postgres_logs'" in everything


# ------------------------------------------------------------------ 3. the design's auth wrappers

def _docs_auth_block() -> str:
    text = (ROOT / "docs" / "source-tracking.md").read_text()
    section = text.split("## Tracking wrappers: the design's auth functions, end to end", 1)[1]
    return section.split("```sql\n", 1)[1].split("```", 1)[0]


def test_the_design_auth_wrappers_as_the_docs_show_them(pipeline):
    block = _docs_auth_block()
    assert DESIGN_LOGIN in block  # the docs run the design's call itself
    start(pipeline)
    with pipeline.source() as src:
        for _, statement in sqlsplit.split(block):  # one statement at a time, as psql sends them
            src.execute(statement)
        assert src.execute("select auth.validate_session(token, 'tenant_123') from auth.sessions").fetchone() == (True,)
    settled(pipeline)

    with pipeline.vault() as v:
        calls = {r["name"]: r for r in rows(v, """
            select o.name, o.status, o.details, e.tenant_id, e.tags from vault.sat_operation o
              join vault.link_event e using (hk_event) where o.operation_type = 'FUNCTION_CALL'""")}
    login = calls["auth.login_user(text,text,text)"]
    args = login["details"]["arguments"]
    assert login["status"] == "completed" and login["tenant_id"] == "tenant_123"  # the call's tenant
    assert args["p_password"] == "***redacted***" and args["p_tenant_id"] == "tenant_123"
    assert re.fullmatch(r"hmac-sha256:[0-9a-f]{32}", args["p_email"])  # PII, hashed as an email column is
    assert login["details"]["redacted"] == {"p_email": "hash"} and login["tags"] == ["PII", "GDPR"]

    register = calls["auth.register_user(text,text,text,text,text)"]
    assert register["tenant_id"] == "tenant_123"
    rargs = register["details"]["arguments"]
    assert "p_notes" not in rargs  # PHI by the function's comment: dropped
    assert rargs["p_email"] == args["p_email"]  # the same address hashes the same: joinable, not readable
    assert rargs["p_full_name"].startswith("hmac-sha256:") and rargs["p_password"] == "***redacted***"
    assert register["details"]["redacted"] == {"p_email": "hash", "p_full_name": "hash", "p_notes": "drop"}
    assert register["tags"] == ["PHI", "PII", "GDPR", "HIPAA"]

    validate = calls["auth.validate_session(text,text)"]
    assert validate["tenant_id"] == "tenant_123"
    assert validate["details"]["arguments"]["p_session_token"] == "***redacted***"

    for value in ("test@email.com", "Test User", "allergic to penicillin", '"password"'):
        assert vault_text_contains(pipeline, value) == 0, value
    with pipeline.source() as src:  # the originals are untouched and still work
        assert src.execute("select success from auth.login_user('test@email.com', 'password', 'tenant_123')"
                           ).fetchone() == (True,)


def test_argument_classification_table_wins_over_comment_and_name(pipeline):
    start(pipeline)
    with pipeline.source() as src:
        src.execute("create schema billing")
        src.execute("create function billing.charge(p_email text, p_amount numeric, p_memo text, tenant text) "
                    "returns numeric language sql as $$ select p_amount $$")
        src.execute("comment on function billing.charge(text, numeric, text, text) is "
                    "'pgtrail:p_memo=PHI pgtrail:p_email=NONE'")
        src.execute("insert into script_tracking.argument_classification values "
                    "('billing', 'charge', 'p_amount', 'FINANCIAL', null), ('billing', 'charge', 'p_memo', 'PII', 'mask')")
        src.execute("select script_tracking.create_tracking_wrapper('billing.charge(text, numeric, text, text)', "
                    "tenant_argument => '')")
        src.execute("set pgtrail.tenant_id = 'from-session'")
        src.execute("select billing.charge_tracking('a@b.c', 12.5, 'thanks', 'not-the-tenant')")
    settled(pipeline)
    with pipeline.vault() as v:
        (call,) = rows(v, "select o.details, e.tenant_id, e.tags from vault.sat_operation o join vault.link_event e "
                          "using (hk_event) where o.name = 'billing.charge(text,numeric,text,text)'")
    assert call["details"]["arguments"] == {"p_email": "a@b.c", "p_amount": "****", "p_memo": "****",
                                            "tenant": "not-the-tenant"}
    assert call["tenant_id"] == "from-session" and call["tags"] == ["FINANCIAL", "PII", "GDPR", "SOX"]


# ------------------------------------------------------------------ 4. script executions

def _design_script_function(conn) -> None:
    """The design's call as it stands, its placeholders (script_content, file_path, version,
    tenant_id, ticket_number) bound as the named parameters of a function around it."""
    conn.execute("create function pg_temp.design_track(script_content text, file_path text, version text, "
                 f"tenant_id text, ticket_number text) returns uuid language sql as $design$\n{DESIGN_TRACK_SCRIPT}\n"
                 "$design$")


def test_the_design_track_script_execution_is_a_complete_record(pipeline):
    start(pipeline)
    install_with_vault(pipeline)
    script = "create table invoices (id bigint primary key); insert into invoices values (1), (2)"
    with pipeline.source() as src:
        _design_script_function(src)
        args = (script, "db/migration_v1.2.sql", "1.2", "acme", "OPS-12")
        # in the script's transaction, as psql -1 -f runs a file that starts with the call: its commit completes it
        with src.transaction():
            done = src.execute("select pg_temp.design_track(%s, %s, %s, %s, %s)", args).fetchone()[0]
            src.execute(script)
        # on its own (autocommit): the script runs later; never finished, it is abandoned in time
        alone = src.execute("select pg_temp.design_track(%s, %s, %s, %s, %s)",
                            ("select 1", "db/m.sql", "1.3", "acme", "OPS-13")).fetchone()[0]
        # the same nine arguments, run in one call
        ran = src.execute(DESIGN_TRACK_SCRIPT.replace("track_script_execution", "run_script_execution")
                          .replace("script_content, file_path, version, tenant_id", "%s, %s, %s, %s")
                          .replace("ticket_number", "%s"),
                          ("create table refunds (id bigint)", "db/r.sql", "1.4", "acme", "OPS-14")).fetchone()[0]
    settled(pipeline)

    with pipeline.source() as src:
        history = {h["execution_id"]: h for h in rows(src, DESIGN_VIEW_RESULTS)}
        d = history[done]
        assert (d["script_name"], d["script_type"], d["status"], d["version"], d["ticket_number"], d["tenant_id"],
                d["business_justification"], d["kind"]) == \
            ("migration_v1.2.sql", "MIGRATION", "completed", "1.2", "OPS-12", "acme", "Business justification",
             "script")
        assert d["finished_at"] >= d["started_at"] and d["duration_ms"] is not None
        assert history[alone]["status"] == "started"  # within pgtrail.abandoned_after
        assert history[ran]["status"] == "completed"
        time.sleep(1.1)
        later = {h["execution_id"]: h["status"] for h in rows(
            src, "select * from script_tracking.get_execution_history(abandoned_after => interval '1 second')")}
        assert later[alone] == "abandoned" and later[done] == "completed" and later[ran] == "completed"
        dashboard = rows(src, "select * from script_tracking.get_enterprise_dashboard("
                              "abandoned_after => interval '1 second')")
        (abandoned,) = [r for r in dashboard if r["name"] == "abandoned script executions"]
        assert abandoned["section"] == "failures" and abandoned["value"] == 1
        assert abandoned["detail"]["scripts"] == ["migration_v1.2.sql"]
    with pipeline.vault() as v:  # the script's DDL is linked to its execution, not untracked
        linked = v.execute("select operation_name, ticket_number, untracked from vault.event_history "
                           "where object_identity = 'public.invoices' and kind = 'ddl'").fetchall()
        assert linked == [("migration_v1.2.sql", "OPS-12", False)]
        # the vault's setting, as an operator would set it for the vault database
        v.execute("set pgtrail.abandoned_after = '1 second'")
        statuses = dict(v.execute("select execution_id, status from script_tracking.get_execution_history()"))
        assert statuses[alone] == "abandoned"
