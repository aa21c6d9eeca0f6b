"""A log parsed by worker processes (logimport.parallel) gives what one process gives: the same
events, ids, order and counts, on the real-server fixtures and on generated logs whose split
points fall inside multi-line statements, between a statement and its duration, between a
connection and the session's statements, and between exact duplicate lines."""
from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from logimport import ParseReport, read_log
from logimport.parallel import _splits, read_log_parallel, workers
from logimport.prefix import SUB_FIELDS, Prefix
from pgtrail import importlogs

LOGS = Path(__file__).parent / "fixtures" / "logs"
MANIFEST: dict[str, dict[str, str]] = json.loads((LOGS / "manifest.json").read_text())
DEFAULT = "%m [%p] "


@pytest.fixture(scope="module")
def pool():
    with workers(2) as executor:
        yield executor


def one_process(path: Path, prefix: str | None) -> tuple[list[str], ParseReport]:
    report = ParseReport()
    events = [e.model_dump_json() for e in read_log(path, origin="o", server="s", prefix=prefix, report=report)]
    return events, report


def in_workers(path: Path, prefix: str | None, pool, chunk_bytes: int, encoded: bool = True
               ) -> tuple[list[str], ParseReport]:
    report = ParseReport()
    # a worker's event as the bytes it made (built the fast way), the parent's as pydantic writes it
    events = [e.model_dump_json() if hasattr(e, "model_dump_json") else e.value.decode()
              for e in read_log_parallel(path, pool=pool, jobs=2, origin="o", server="s", prefix=prefix,
                                         report=report, chunk_bytes=chunk_bytes, encoded=encoded)]
    return events, report


def chunks(path: Path, report: ParseReport, chunk_bytes: int) -> list[tuple[int, int, int]]:
    return list(_splits(path, report.log_format, report.prefix, chunk_bytes))


@pytest.mark.parametrize("name", sorted(MANIFEST))
@pytest.mark.parametrize("chunk_bytes", [300, 1024, 5000])
def test_the_fixtures_read_by_workers_give_what_one_process_gives(name, chunk_bytes, pool):
    prefix = MANIFEST[name].get("log_line_prefix")
    expected, report = one_process(LOGS / name, prefix)
    events, parallel_report = in_workers(LOGS / name, prefix, pool, chunk_bytes)
    assert events == expected
    assert parallel_report.summary() == report.summary()
    assert parallel_report.bytes_read == report.bytes_read and parallel_report.entries == report.entries
    if MANIFEST[name]["format"] != "csvlog":  # csvlog is read whole: its quoted fields span lines
        assert len(chunks(LOGS / name, report, chunk_bytes)) >= 2


def test_a_dry_run_in_workers_counts_what_one_process_counts(pool):
    for name in ("stderr_default.log", "jsonlog.json", "pgaudit.log"):
        prefix = MANIFEST[name].get("log_line_prefix")
        _, report = one_process(LOGS / name, prefix)
        events, parallel_report = in_workers(LOGS / name, prefix, pool, 700, encoded=False)
        assert events == [] and parallel_report.summary() == report.summary()


def generate(path: Path, seed: int, statements: int = 3000) -> None:
    """A busy server's stderr log with PostgreSQL's default prefix (no %c/%l: ids are content
    hashes; who a process is only in its connection lines), log_statement = all beside
    log_min_duration_statement = 0, multi-line statements and errors, sessions that outlive many
    split points, pids reused, and exact duplicate lines within one millisecond."""
    rnd = random.Random(seed)
    t = datetime(2026, 3, 1, 8, 0, 0)
    live: dict[int, str] = {}
    out: list[str] = []

    def line(pid: int, text: str) -> None:
        out.append(f"{t:%Y-%m-%d %H:%M:%S}.{t.microsecond // 1000:03d} UTC [{pid}] {text}\n")

    for n in range(statements):
        t += timedelta(milliseconds=rnd.choice((0, 0, 1, 3, 17)))
        if len(live) < 12 or rnd.random() < 0.03:
            pid = rnd.randint(100, 140)  # few pids: reused across sessions
            user = rnd.choice(["alice", "bob", "etl"])
            if rnd.random() < 0.5:
                line(pid, f"LOG:  connection received: host=10.0.0.{pid % 7} port={5000 + n}")
            line(pid, f"LOG:  connection authorized: user={user} database=shop application_name=app{pid % 3}")
            live[pid] = user
            continue
        pid = rnd.choice(sorted(live))
        r = rnd.random()
        if r < 0.05:
            line(pid, f"LOG:  disconnection: session time: 0:00:01.{n % 1000:03d} user={live.pop(pid)} "
                      f"database=shop host=10.0.0.{pid % 7} port={5000 + n}")
        elif r < 0.30:  # multi-line DDL, its duration on a line of its own
            line(pid, f"LOG:  statement: CREATE TABLE t{n % 40} (")
            for c in range(rnd.randint(1, 6)):
                out.append(f"\tc{c} int{',' if c else ''}\n")
            out.append("\t)\n")
            line(pid, f"LOG:  duration: {rnd.random() * 9:.3f} ms")
        elif r < 0.40:  # a failing multi-line statement: ERROR, DETAIL and a multi-line STATEMENT
            line(pid, f"LOG:  statement: UPDATE accounts\n\tSET balance = balance - {n}\n\tWHERE id = 7")
            line(pid, "ERROR:  new row violates check constraint \"positive\"")
            line(pid, "DETAIL:  Failing row contains (7, -1).")
            line(pid, f"STATEMENT:  UPDATE accounts\n\tSET balance = balance - {n}\n\tWHERE id = 7")
        elif r < 0.50:  # the same line twice in one millisecond: told apart by their count
            line(pid, "LOG:  statement: BEGIN")
            line(pid, "LOG:  statement: BEGIN")
        elif r < 0.55:
            line(pid, "LOG:  checkpoint starting: time")
        else:
            line(pid, f"LOG:  statement: SELECT {n % 50} FROM orders WHERE id = {n}")
            if rnd.random() < 0.8:
                line(pid, f"LOG:  duration: {rnd.random():.3f} ms")
    path.write_text("".join(out))


def test_split_points_inside_multi_line_statements_and_sessions(tmp_path, pool):
    log = tmp_path / "busy.log"
    generate(log, seed=3)
    expected, report = one_process(log, DEFAULT)
    assert report.unparsed == 0 and report.merged > 500
    assert len({e for e in expected}) == len(expected)
    raw = log.read_bytes()
    prefix = Prefix(DEFAULT)
    for chunk_bytes in (997, 4093, 20011):
        parts = chunks(log, report, chunk_bytes)
        assert len(parts) > 10
        inside = 0
        for start, end, first_line in parts[1:]:
            head = raw[start:raw.index(b"\n", start)].decode()
            m = prefix.match(head)
            assert m is not None and m.severity not in SUB_FIELDS  # every chunk starts a record
            assert raw[:start].count(b"\n") + 1 == first_line
        for start, _, _ in parts[:-1]:  # where the cut was aimed: inside a multi-line message?
            target = start + chunk_bytes
            line = raw[raw.rindex(b"\n", 0, target) + 1:raw.index(b"\n", target)]
            inside += line.startswith(b"\t") or b" STATEMENT:  " in line or b" DETAIL:  " in line
        assert inside >= 3
        events, parallel_report = in_workers(log, DEFAULT, pool, chunk_bytes)
        assert events == expected
        assert parallel_report.summary() == report.summary()


def test_import_logs_with_jobs_hands_out_the_same_events(tmp_path, pool):
    log = tmp_path / "busy.log"
    generate(log, seed=4)
    seen: dict[int, list] = {1: [], 2: []}
    for jobs, workers_ in ((1, None), (2, pool)):
        result = importlogs.import_file(str(log), None, server="s", log_format=None, prefix=None,
                                        on_event=seen[jobs].append, pool=workers_, jobs=jobs)
        assert result.error is None and result.report.entries == len(seen[jobs])
    assert seen[1] == seen[2] and len(seen[1]) > 1000


_START = """
import os, sys, threading
from logimport.parallel import workers
if sys.argv[1] == "thread":
    threading.Thread(target=threading.Event().wait, daemon=True).start()
pool = workers(2)
parents = {pool.submit(os.getppid).result() for _ in range(8)}
print("forked" if parents == {os.getpid()} else "forkserver")
pool.shutdown()
"""


@pytest.mark.parametrize("threads, how", [("none", "forked"), ("thread", "forkserver")])
def test_workers_are_forks_only_of_a_process_without_threads(threads, how):
    """Forks share the command's pages (memory: docs/log-import.md); a process that already runs a
    thread (a Kafka client's) must not be forked, so its workers come from a forkserver."""
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-c", _START, threads], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == how
