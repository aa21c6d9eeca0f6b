"""Reporting from the vault through the `pgtrail` command: history, show, diff, dashboard,
executions, report and tail, on events that went through the whole pipeline."""
import json
import subprocess
import sys
import time
from datetime import datetime, timezone

from tests.integration.conftest import ROOT, wait_until


def pgtrail(pipeline, *args, timeout=60):
    proc = subprocess.run([sys.executable, "-m", "pgtrail.cli", *args], env=pipeline.env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_history_show_diff_dashboard_report_tail(pipeline, tmp_path):
    pipeline.start("consumer")
    pipeline.start("sink")
    with pipeline.source() as conn:
        conn.execute("set application_name = 'reporting-test'")
        conn.execute("create table crm (id int primary key, name text)")
        time.sleep(1.2)
        t1 = datetime.now(timezone.utc)
        time.sleep(1.2)
        conn.execute("select script_tracking.run_tracked_script('V002__email.sql', "
                     "'alter table public.crm add column email text not null default ''''', 'MIGRATION', 'DDL', "
                     "'db/V002__email.sql', '2', null, 'customers want receipts', 'CRM-12')")
        conn.execute("comment on column crm.name is 'display name'")
        conn.execute("alter table crm drop column name")  # by hand: untracked
        op = conn.execute("select track_operation('Reporting done', 'TESTING')").fetchone()[0]
    wait_until(lambda: pipeline.vault_count("select count(*) from vault.sat_operation where operation_id = %s",
                                            (op,)), 60, what="the events in the vault")

    history = json.loads(pgtrail(pipeline, "history", "public.crm", "--json"))
    actions = [(h["action"], h["ticket_number"], h["untracked"]) for h in history]
    assert actions == [("CREATE TABLE", None, True), ("ALTER TABLE", "CRM-12", False),
                       ("COMMENT", None, True), ("ALTER TABLE", None, True)]
    assert all(h["application_name"] == "reporting-test" and h["session_user_name"] == "postgres" for h in history)
    assert "add column email" in history[1]["statement"] and history[1]["operation_name"] == "V002__email.sql"
    table = pgtrail(pipeline, "history", "public.crm")
    assert "[V002__email.sql CRM-12] select script_tracking." in table

    before = pgtrail(pipeline, "show", "public.crm", "--at", t1.isoformat())
    assert "column name text" in before and "email" not in before
    now = pgtrail(pipeline, "show", "public.crm")
    assert "column email text not null default ''::text" in now and "column name" not in now
    diff = pgtrail(pipeline, "diff", "public.crm", "--from", t1.isoformat())
    assert "-  column name text" in diff and "+  column email text not null default ''::text" in diff

    dashboard = json.loads(pgtrail(pipeline, "dashboard", "--json"))
    sections = {(d["section"], d["name"]): d["value"] for d in dashboard}
    assert sections[("events by database", pipeline.source_db)] >= 6
    assert sections[("untracked DDL", "public.crm")] == 3
    assert ("slowest scripts", "V002__email.sql") in sections
    executions = json.loads(pgtrail(pipeline, "executions", "--json"))
    (ex,) = [e for e in executions if e["script_name"] == "V002__email.sql"]
    assert (ex["status"], ex["ticket_number"], ex["version"]) == ("completed", "CRM-12", "2")

    report = tmp_path / "report.html"
    pgtrail(pipeline, "report", "-o", str(report))
    page = report.read_text()
    assert page.startswith("<!doctype html>") and pipeline.source_db in page and "Events per hour" in page
    assert "V002__email.sql" in page and "<script src" not in page.lower()  # its script is inline

    tailed = pgtrail(pipeline, "tail", "--from-beginning", "--kind", "ddl", "--object", "public.crm",
                     "--json", "--max-events", "4")
    events = [json.loads(line) for line in tailed.splitlines()]
    assert [e["payload"]["command_tag"] for e in events] == ["CREATE TABLE", "ALTER TABLE", "COMMENT", "ALTER TABLE"]
    text = pgtrail(pipeline, "tail", "--from-beginning", "--kind", "script", "--max-events", "2")
    assert "SCRIPT STARTED V002__email.sql" in text


def test_simulated_history_is_left_out_unless_asked_and_marked_when_it_is(pipeline, tmp_path):
    pipeline.start("consumer")
    pipeline.start("sink")
    with pipeline.source() as conn:
        import_id = conn.execute("select script_tracking.import_historical_operations(2, true)").fetchone()[0]
        op = conn.execute("select track_operation('real work', 'TESTING')").fetchone()[0]
    for operation in (import_id, op):
        wait_until(lambda: pipeline.vault_count("select count(*) from vault.sat_operation where operation_id = %s",
                                                (operation,)), 90, what="the operations in the vault")
    default = json.loads(pgtrail(pipeline, "executions", "--json"))
    everything = json.loads(pgtrail(pipeline, "executions", "--json", "--simulated"))
    assert not any(e["simulated"] for e in default) and any(e["script_name"] == "real work" for e in default)
    assert any(e["simulated"] for e in everything) and len(everything) > len(default)
    names = [d["name"] for d in json.loads(pgtrail(pipeline, "dashboard", "--json"))]
    marked = [d["name"] for d in json.loads(pgtrail(pipeline, "dashboard", "--json", "--simulated"))]
    assert not any(str(n).endswith("[simulated]") for n in names)
    assert any(str(n).endswith("[simulated]") for n in marked)
    plain, with_sim = tmp_path / "plain.html", tmp_path / "sim.html"
    pgtrail(pipeline, "report", "-o", str(plain))
    pgtrail(pipeline, "report", "-o", str(with_sim), "--simulated")
    assert "[simulated]" not in plain.read_text() and "[simulated]" in with_sim.read_text()
