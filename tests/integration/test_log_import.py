"""Historical import from server logs, through the whole pipeline: `pgtrail import-logs` and the
SQL entry points (one parser, two entry points), idempotence over repeated and overlapping
imports, simulated history marked as such, bad input counted, and the server-settings check."""
from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from tests.conftest import dsn
from tests.integration.conftest import ROOT, wait_until

LOGS = ROOT / "tests/unit/fixtures/logs"
SIM_PREFIX = "%m [%p] %q%u@%d app=%a client=%h session=%c line=%l sqlstate=%e "


def cli(pipeline, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pgtrail.cli", *args], env=pipeline.env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def entries_in(output: str, path: Path) -> int:
    """The entry count the command reported for one file."""
    line = next(x for x in output.splitlines() if x.startswith(f"{path}:") and "entries" in x)
    return int(line.split("): ")[1].split(" entries")[0])


def log_rows(pipeline, where: str = "true", params=()) -> int:
    return pipeline.vault_count(f"select count(*) from vault.sat_log_entry where {where}", params)


def settle(pipeline, expected: int, where: str = "true", params=()) -> None:
    wait_until(lambda: log_rows(pipeline, where, params) >= expected, 90, interval=0.5,
               what=f"{expected} log entries in the vault")


def test_import_logs_loads_every_entry_once_however_often_and_however_overlapping(pipeline, tmp_path):
    pipeline.start("sink")
    jsonlog, stderr = LOGS / "jsonlog.json", LOGS / "stderr_design.log"
    first = cli(pipeline, "import-logs", "--server", "srv-a", str(jsonlog), str(stderr))
    assert first.returncode == 0, first.stdout + first.stderr
    total = entries_in(first.stdout, jsonlog) + entries_in(first.stdout, stderr)
    assert total > 80
    settle(pipeline, total)

    # the same files again, the stderr one gzipped, and a "rotated" file repeating the second half
    # of the stderr log followed by lines of its own
    gz = tmp_path / "postgresql.log.gz"
    gz.write_bytes(gzip.compress(stderr.read_bytes()))
    lines = stderr.read_text().splitlines(keepends=True)
    cut = next(i for i in range(len(lines) // 2, len(lines)) if not lines[i].startswith("\t"))
    rotated = tmp_path / "postgresql.1.log"
    rotated.write_text("".join(lines[cut:]) + lines[1].replace("[", "[9", 1))
    again = cli(pipeline, "import-logs", "--server", "srv-a", str(jsonlog), str(gz), str(rotated))
    assert again.returncode == 0, again.stdout + again.stderr
    assert entries_in(again.stdout, gz) == entries_in(first.stdout, stderr)
    sent_again = sum(entries_in(again.stdout, p) for p in (jsonlog, gz, rotated))
    # every one of them reached the sink (as a repeat or as the one new line) ...
    wait_until(lambda: pipeline.topic_size("log_import") >= total + sent_again, 60, what="second import on Kafka")
    settle(pipeline, total + 1)
    time.sleep(3)
    # ... and the vault gained exactly the one line the rotated file added
    assert log_rows(pipeline) == total + 1

    with pipeline.vault() as v:
        failed = v.execute("select statement, error, error_state from vault.sat_log_entry "
                           "where status = 'failed' and log_format = 'jsonlog'").fetchall()
        assert failed and all(e and s for _, e, s in failed), failed
        who = v.execute("select count(*) from vault.event_history where kind = 'log_import' "
                        "and session_user_name is not null and database_name <> 'unknown'").fetchone()[0]
        assert who >= total * 0.5
        cats = {c for (c,) in v.execute("select distinct category from vault.sat_log_entry")}
        assert {"ddl", "dml", "connection"} <= cats, cats
    history = cli(pipeline, "history", "--limit", "5000")
    assert "[from log]" in history.stdout


def test_sql_entry_point_goes_through_the_same_parser_and_ids(pipeline):
    pipeline.start("consumer")
    pipeline.start("sink")
    content = (LOGS / "stderr_debian.log").read_text()
    with pipeline.source() as conn:
        system_id = conn.execute("select system_identifier::text from pg_control_system()").fetchone()[0]
        import_id = conn.execute("select script_tracking.import_postgres_logs(%s, 'stderr', '%%m [%%p] %%q%%u@%%d ')",
                                 (content,)).fetchone()[0]
    wait_until(lambda: pipeline.vault_count("select count(*) from vault.sat_operation where operation_id = %s",
                                            (import_id,)), 90, what="the import's report in the vault")
    with pipeline.vault() as v:
        (details,) = v.execute("select details from vault.sat_operation where operation_id = %s",
                               (import_id,)).fetchone()
    assert details["unparsed"] == 0 and details["entries"] > 10, details
    settle(pipeline, details["entries"])
    assert log_rows(pipeline, "origin = 'sql:import_postgres_logs'") == details["entries"]

    # the same log from a file, named by the source's system identifier: the very same events
    out = cli(pipeline, "import-logs", "--server", system_id, "--prefix", "%m [%p] %q%u@%d ",
              str(LOGS / "stderr_debian.log"))
    assert out.returncode == 0, out.stderr
    assert entries_in(out.stdout, LOGS / "stderr_debian.log") == details["entries"]
    wait_until(lambda: pipeline.topic_size("log_import") >= 2 * details["entries"], 60, what="file import on Kafka")
    time.sleep(3)
    assert log_rows(pipeline) == details["entries"]


def test_simulated_history_is_marked_everywhere_and_carries_no_secret(pipeline):
    pipeline.start("consumer")
    pipeline.start("sink")
    with pipeline.source() as conn:
        import_id = conn.execute("select script_tracking.import_historical_operations(3, true)").fetchone()[0]
    wait_until(lambda: pipeline.vault_count("select count(*) from vault.sat_operation where operation_id = %s",
                                            (import_id,)), 90, what="the simulated import's report")
    with pipeline.vault() as v:
        (details,) = v.execute("select details from vault.sat_operation where operation_id = %s",
                               (import_id,)).fetchone()
        assert details["simulated"] is True and details["unparsed"] == 0 and details["entries"] >= 3 * 6 * 3
        settle(pipeline, details["entries"])
        rows = v.execute("select simulated, category, statement from vault.sat_log_entry").fetchall()
        assert rows and all(sim for sim, _, _ in rows)
        assert {"ddl", "dml", "role", "database", "system", "connection"} <= {c for _, c, _ in rows}
        view = v.execute("select bool_and(simulated), count(*) from vault.event_history "
                         "where kind = 'log_import'").fetchone()
        assert view == (True, len(rows))
        dump = json.dumps(v.execute("select jsonb_agg(to_jsonb(s)) from vault.sat_log_entry s").fetchone()[0])
        assert "simulated-secret" not in dump, "a password in a logged statement reached the vault"
        assert "PASSWORD '********'" in dump
    history = cli(pipeline, "history", "--limit", "2000", "--simulated")
    assert "[SIMULATED]" in history.stdout and "simulated-secret" not in history.stdout
    assert "[SIMULATED]" not in cli(pipeline, "history", "--limit", "2000").stdout  # left out unless asked


def test_bad_input_is_counted_with_line_numbers_and_never_loses_the_rest(pipeline, tmp_path):
    pipeline.start("consumer")
    pipeline.start("sink")
    garbage = tmp_path / "garbage.log"
    garbage.write_bytes(bytes(range(256)) * 200)
    bad = cli(pipeline, "import-logs", str(garbage))
    assert bad.returncode == 1 and "NOT IMPORTED" in bad.stdout and "binary" in bad.stdout, bad.stdout

    wrong = cli(pipeline, "import-logs", "--prefix", "%t <%p> ", str(LOGS / "stderr_default.log"))
    assert "lines not parsed" in wrong.stdout and "line 1:" in wrong.stdout, wrong.stdout
    assert "only 0 of the first" in wrong.stdout or "not parsed" in wrong.stdout

    mixed = tmp_path / "mixed.log"
    good = (LOGS / "stderr_default.log").read_text().splitlines(keepends=True)
    mixed.write_bytes("".join(good[:20]).encode() + b"\xff\xfe\x00 torn line without prefix\n"
                      + b"2026-11-25 10:00:00.000 UTC [12" + b"\n" + "".join(good[20:]).encode())
    out = cli(pipeline, "import-logs", "--server", "srv-mixed", str(mixed))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 lines not parsed" in out.stdout and "line 21" in out.stdout and "line 22" in out.stdout, out.stdout
    clean = cli(pipeline, "import-logs", "--dry-run", str(LOGS / "stderr_default.log"))
    assert entries_in(out.stdout, mixed) == entries_in(clean.stdout, LOGS / "stderr_default.log")

    # garbage through SQL: dead-lettered with the reason; the next import is loaded
    with pipeline.source() as conn:
        conn.execute("select script_tracking.import_postgres_logs(%s)", ("\x01\x02 not a log at all \x03\n" * 50,))
        ok_id = conn.execute("select script_tracking.import_postgres_logs(%s)",
                             ((LOGS / "stderr_default.log").read_text(),)).fetchone()[0]
    wait_until(lambda: pipeline.vault_count("select count(*) from vault.sat_operation where operation_id = %s",
                                            (ok_id,)), 90, what="the good import after the bad one")
    dead = pipeline.read_topic("deadletter", min_count=1)
    assert any("log import" in dict(r.headers)["pgtrail_reason"].decode() for r in dead)


def test_sql_entry_points_refuse_what_they_must(pipeline):
    with pipeline.source() as conn:
        for sql, params, state in [
            ("select script_tracking.import_postgres_logs('')", (), "22023"),
            ("select script_tracking.import_postgres_logs('x', 'syslog')", (), "22023"),
            ("select script_tracking.import_postgres_logs(repeat('x', 33 * 1024 * 1024))", (), "54000"),
            ("select script_tracking.import_historical_operations(0)", (), "22023"),
        ]:
            try:
                conn.execute(sql, params)
            except psycopg.Error as exc:
                assert exc.sqlstate == state, (sql, exc.sqlstate, exc)
            else:
                raise AssertionError(f"{sql} was accepted")
        conn.execute("drop role if exists pgtrail_t_plain")
        conn.execute("create role pgtrail_t_plain login")
        conn.execute("grant usage on schema script_tracking to pgtrail_t_plain")
    try:
        with psycopg.connect(dsn(pipeline.source_db), autocommit=True) as conn:
            conn.execute("set role pgtrail_t_plain")
            for sql in ("select script_tracking.import_postgres_logs('2026-01-01 LOG:  x')",
                        "select script_tracking.import_historical_operations(1)"):
                try:
                    conn.execute(sql)
                except psycopg.errors.InsufficientPrivilege:
                    pass
                else:
                    raise AssertionError(f"a role outside pgtrail_admin ran {sql}")
    finally:
        with pipeline.source() as conn:
            conn.execute("drop owned by pgtrail_t_plain")
            conn.execute("drop role pgtrail_t_plain")


def test_check_server_names_what_to_change(pipeline, spare_cluster):
    shared = cli(pipeline, "import-logs", "--check-server", dsn("postgres"))
    assert shared.returncode == 1
    assert "log_statement" in shared.stdout and "for complete coverage" in shared.stdout
    spare_cluster.start(log_destination="stderr,jsonlog", logging_collector="on", log_statement="all",
                        log_min_duration_statement=0, log_connections="on", log_disconnections="on")
    try:
        good = cli(pipeline, "import-logs", "--check-server", spare_cluster.dsn())
        assert good.returncode == 0, good.stdout
        assert "complete coverage" in good.stdout.splitlines()[-1]
    finally:
        spare_cluster.start()


def test_a_log_imported_by_workers_is_the_one_process_import(pipeline, tmp_path):
    """--jobs 2 cuts a large log into chunks (split points inside sessions and multi-line
    statements); every entry reaches the vault once, and importing it again with --jobs 1 adds
    nothing: the same ids."""
    from tests.unit.test_logimport_parallel import generate
    pipeline.start("sink")
    log = tmp_path / "busy.log"
    generate(log, seed=9, statements=40000)  # about 5 MB: several chunks of 512 KB
    parallel = cli(pipeline, "import-logs", "--jobs", "2", "--server", "srv-jobs", str(log))
    assert parallel.returncode == 0, parallel.stdout + parallel.stderr
    total = entries_in(parallel.stdout, log)
    assert total > 20000 and f"{total} published" in parallel.stdout
    settle(pipeline, total, "origin = %s", (str(log),))
    single = cli(pipeline, "import-logs", "--jobs", "1", "--server", "srv-jobs", str(log))
    assert single.returncode == 0 and entries_in(single.stdout, log) == total
    wait_until(lambda: pipeline.topic_size("log_import") >= 2 * total, 90, what="second import on Kafka")
    time.sleep(3)
    assert log_rows(pipeline, "origin = %s", (str(log),)) == total
