"""Log import benchmark: pgtrail's log import beside pgBadger on the same generated server log.

Workload: a stderr log of about --mb megabytes (default 64; `--mb 1024` for the 1 GB figure) in the
classic log_line_prefix '%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ', as a server writes it with
log_min_duration_statement = 0, log_statement = none, log_connections = on and log_disconnections = on:
40 sessions at a time from 6 users and 5 applications, each a connection line, 2-12 statements with
their durations (DDL, one of them over several lines, DML, queries, role/system commands), 5% failing
with ERROR + STATEMENT, and a disconnection; checkpoints now and then. Every statement is one
`duration: ... statement: ...` line, which pgBadger counts once (with log_statement = all beside it,
a server writes each statement twice and pgBadger counts both). Generated once, kept in .pgtrail/bench/.

Measured one after the other on the same file, in one run, so the ratios are of the same moment:
- pgBadger 12 (Debian's `pgbadger`), text report to a file, -j 1 (the baseline) and -j 2 (the cores
  pgtrail uses on a 2-core machine);
- `pgtrail import-logs --dry-run`, --jobs 1 and --jobs N (N = the CPUs): read, parse, classify every
  statement and build every event;
- `pgtrail import-logs --jobs N` publishing every event to Kafka (acks=all) on a topic of its own,
  deleted afterwards.
Prints MB/s, lines/s and memory of each (peak RSS of the largest process, and the peak of all its
processes together as PSS, which counts pages shared by the workers once), the ratios, and the
statements, errors and sessions each tool found.

    python -m bench.logs [--mb 1024] [--runs 3]
"""
from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from bench.capture import machine

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h "
USERS = ["alice", "bob", "carol", "deploy_bot", "etl_service", "reporting"]
APPS = ["psql", "flyway", "billing-service", "airflow", "pgadmin"]
DBS = ["shop", "billing", "analytics"]
STATEMENTS = [
    "SELECT o.id, o.total FROM orders o WHERE o.customer_id = {n} ORDER BY o.created_at DESC LIMIT 20",
    "UPDATE orders SET status = 'shipped', shipped_at = now() WHERE id = {n}",
    "INSERT INTO order_items (order_id, product_id, quantity, price) VALUES ({n}, {m}, 2, 19.90)",
    "DELETE FROM sessions WHERE expires_at < now() - interval '{m} minutes'",
    "SELECT count(*) FROM events WHERE created_at > now() - interval '1 hour'",
    "CREATE TABLE IF NOT EXISTS archive_{m} (id bigint primary key, payload jsonb)",
    "ALTER TABLE orders ADD COLUMN IF NOT EXISTS note_{m} text",
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_c{m}_idx ON public.orders (customer_id, created_at)",
    "CREATE OR REPLACE VIEW recent_orders AS\n\tSELECT id, customer_id, total\n\tFROM orders\n\tWHERE created_at > now() - interval '7 days'",
    "GRANT SELECT ON orders TO reporting",
    "VACUUM (ANALYZE) order_items",
    "BEGIN", "COMMIT",
    "ALTER SYSTEM SET work_mem = '{m}MB'",
    "CREATE ROLE app_{m} NOLOGIN",
]
ERRORS = [("relation \"order_archive_old\" does not exist at character 15", "SELECT * FROM order_archive_old"),
          ("duplicate key value violates unique constraint \"orders_pkey\"", "INSERT INTO orders (id) VALUES ({n})"),
          ("permission denied for table payroll", "SELECT * FROM payroll WHERE id = {n}")]


def generate(path: Path, megabytes: int, seed: int = 7) -> None:
    rnd = random.Random(seed)
    target = megabytes * 1024 * 1024
    t = datetime(2026, 1, 5, 0, 0, 0)
    sessions: dict[int, list] = {}
    written = 0
    tmp = path.with_suffix(".partial")
    with open(tmp, "w", buffering=1 << 22) as out:
        while written < target:
            buf = []
            for _ in range(2000):
                t += timedelta(milliseconds=rnd.randint(1, 40))
                ts = t.strftime("%Y-%m-%d %H:%M:%S UTC")
                if len(sessions) < 40:
                    pid = rnd.randint(1000, 99999)
                    s = [rnd.choice(USERS), rnd.choice(DBS), rnd.choice(APPS),
                         f"10.0.{rnd.randint(0, 3)}.{rnd.randint(2, 250)}", 1, rnd.randint(2, 12)]
                    sessions[pid] = s
                    buf.append(f"{ts} [{pid}]: [1-1] user={s[0]},db={s[1]},app={s[2]},client={s[3]} "
                               f"LOG:  connection authorized: user={s[0]} database={s[1]} application_name={s[2]}\n")
                    continue
                pid = rnd.choice(list(sessions))
                user, db, app, client, line, left = s = sessions[pid]
                line += 1
                head = f"{ts} [{pid}]: [{line}-1] user={user},db={db},app={app},client={client} "
                if left <= 0:
                    buf.append(head + f"LOG:  disconnection: session time: 0:00:{rnd.randint(10, 59)}.{rnd.randint(100, 999)} "
                               f"user={user} database={db} host={client} port={rnd.randint(30000, 60000)}\n")
                    del sessions[pid]
                    continue
                n, m = rnd.randint(1, 10 ** 6), rnd.randint(1, 500)
                if rnd.random() < 0.05:
                    msg, stmt = rnd.choice(ERRORS)
                    buf.append(head + f"ERROR:  {msg}\n")
                    line += 1
                    buf.append(f"{ts} [{pid}]: [{line}-1] user={user},db={db},app={app},client={client} "
                               f"STATEMENT:  {stmt.format(n=n, m=m)}\n")
                else:
                    stmt = rnd.choice(STATEMENTS).format(n=n, m=m)
                    buf.append(head + f"LOG:  duration: {rnd.random() * 200:.3f} ms  statement: {stmt}\n")
                if rnd.random() < 0.002:
                    buf.append(f"{ts} [77]: [1-1] user=,db=,app=,client= LOG:  checkpoint starting: time\n")
                s[4], s[5] = line, left - 1
            chunk = "".join(buf)
            out.write(chunk)
            written += len(chunk.encode())
    tmp.rename(path)


def _tree(pid: int) -> list[int]:
    """pid and every process below it (workers are children of the forkserver, a child of pid)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def _memory(pids: list[int]) -> tuple[int, int]:
    """(largest RSS, sum of PSS) of these processes, in kB."""
    largest = total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                fields = {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in f if ":" in line)
                          if k in ("Rss", "Pss")}
        except (OSError, ValueError):
            continue
        largest = max(largest, fields.get("Rss", 0))
        total += fields.get("Pss", 0)
    return largest, total


@dataclass
class Run:
    name: str
    secs: float
    rss_mb: int          # peak RSS of the largest process
    pss_mb: int          # peak of all its processes together (PSS)
    result: subprocess.CompletedProcess


def run(name: str, cmd: list[str], env: dict | None = None) -> Run:
    """One command, timed, its memory sampled every 50 ms."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, **(env or {})})
    peak_rss = peak_pss = 0
    out: dict[str, str] = {}
    readers = [threading.Thread(target=lambda k=k, s=s: out.__setitem__(k, s.read()), daemon=True)
               for k, s in (("out", proc.stdout), ("err", proc.stderr))]
    for t in readers:
        t.start()
    while proc.poll() is None:
        rss, pss = _memory(_tree(proc.pid))
        peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    for t in readers:
        t.join()
    result = subprocess.CompletedProcess(cmd, proc.returncode, out.get("out", ""), out.get("err", ""))
    if proc.returncode != 0:
        sys.exit(f"{name} failed ({proc.returncode}): {result.stdout[-2000:]} {result.stderr[-2000:]}")
    return Run(name, elapsed, peak_rss // 1024, peak_pss // 1024, result)


def pgbadger(log: Path, jobs: int, report: Path) -> Run:
    return run(f"pgBadger -j {jobs}", ["pgbadger", "-j", str(jobs), "-q", "-f", "stderr", "--prefix", PREFIX,
                                       "-x", "text", "-o", str(report), str(log)])


def pgtrail(log: Path, jobs: int, kafka_prefix: str | None = None) -> Run:
    cmd = [sys.executable, "-m", "pgtrail.cli", "import-logs", "--jobs", str(jobs), "--prefix", PREFIX,
           "--server", "bench-logs", str(log)]
    if kafka_prefix is None:
        return run(f"pgtrail --jobs {jobs} (dry run)", cmd[:4] + ["--dry-run"] + cmd[4:])
    return run(f"pgtrail --jobs {jobs} + Kafka", cmd, env={"PGTRAIL_KAFKA_TOPIC_PREFIX": kafka_prefix})


def pgbadger_counts(report: Path) -> dict[str, int]:
    """Queries (statements with their duration), error events and sessions in pgBadger's text report."""
    text = report.read_text(errors="replace")
    found = {}
    for key, label in (("statements", "Number of queries"), ("errors", "Number of events"),
                       ("sessions", "Total number of sessions")):
        m = re.search(rf"{label}: ([\d,]+)", text)
        found[key] = int(m.group(1).replace(",", "")) if m else -1
    return found


def pgtrail_counts(stdout: str) -> dict[str, int]:
    """Statements (entries that are neither a connection, a disconnection nor an error without a
    statement), failed ones and sessions in import-logs' summary."""
    line = next(x for x in stdout.splitlines() if x.startswith("entries: "))
    cats, _, failed = line[len("entries: "):].partition("; ")
    counts = {name: int(n) for n, name in (part.split(" ", 1) for part in cats.split(", "))}
    return {"statements": sum(n for c, n in counts.items() if c not in ("connection", "disconnection", "error")),
            "errors": int(failed.split()[0]), "sessions": counts.get("disconnection", 0)}


def drop_topics(prefix: str) -> None:
    from kafka.admin import KafkaAdminClient

    from publisher import KafkaSettings
    settings = KafkaSettings(topic_prefix=prefix)
    admin = KafkaAdminClient(client_id="bench-logs", **settings.client_options())
    try:
        admin.delete_topics([t for t in admin.list_topics() if t.startswith(prefix + ".")])
    finally:
        admin.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=64, help="size of the generated log (1024: the figure in docs/)")
    ap.add_argument("--runs", type=int, default=1, help="measure everything this many times")
    ap.add_argument("--no-kafka", action="store_true", help="skip the run that publishes to Kafka")
    args = ap.parse_args()
    if not shutil.which("pgbadger"):
        sys.exit("pgbadger is not installed: make setup installs Debian's pgbadger")
    folder = ROOT / ".pgtrail" / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"generated-{args.mb}mb.log"
    if not log.exists():
        print(f"generating {log} ({args.mb} MB) ...", flush=True)
        generate(log, args.mb)
    size = log.stat().st_size
    with open(log, "rb") as fh:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 24), b""))
    cpus = os.cpu_count() or 1
    print(f"log import benchmark on {machine()}; load average before: {os.getloadavg()[0]:.2f}")
    print(f"workload: {log.name}, {size / 1e6:.0f} MB, {lines:,} lines, stderr, log_line_prefix {PREFIX!r}")
    print("  written as with log_min_duration_statement = 0, log_statement = none, log_connections = on, "
          "log_disconnections = on:\n  each statement one 'duration: ... statement:' line (pgBadger counts it once)")
    report = folder / "pgbadger-report.txt"
    for n in range(1, args.runs + 1):
        runs = [pgbadger(log, 1, report)]
        badger = pgbadger_counts(report)
        runs.append(pgbadger(log, 2, report))
        runs.append(pgtrail(log, 1))
        runs.append(pgtrail(log, cpus))
        if not args.no_kafka:
            topics = f"benchlogs{os.getpid()}x{n}"
            try:
                runs.append(pgtrail(log, cpus, kafka_prefix=topics))
            finally:
                drop_topics(topics)
        print(f"run {n} of {args.runs} (load average {os.getloadavg()[0]:.2f}):")
        j1, j2 = runs[0].secs, runs[1].secs
        for r in runs:
            print(f"  {r.name:<28} {r.secs:7.1f} s {size / 1e6 / r.secs:6.1f} MB/s {lines / r.secs:9,.0f} lines/s  "
                  f"x{j1 / r.secs:4.2f} pgBadger -j 1  x{j2 / r.secs:4.2f} -j 2  "
                  f"peak RSS {r.rss_mb} MB (all processes {r.pss_mb} MB PSS)")
        trail = pgtrail_counts(runs[3].result.stdout)
        published = [r for r in runs if r.name.endswith("Kafka")]
        if published:
            sent = re.search(r": (\d+) published;", published[0].result.stdout)
            trail["published"] = int(sent.group(1)) if sent else -1
        print(f"  found by pgBadger: {badger['statements']:,} statements (queries), {badger['errors']:,} errors "
              f"(events), {badger['sessions']:,} sessions")
        print(f"  found by pgtrail:  {trail['statements']:,} statements ({trail['errors']:,} failed), "
              f"{trail['sessions']:,} sessions (disconnections)"
              + (f"; {trail['published']:,} events published" if "published" in trail else ""))
        print(f"  pgtrail: {runs[3].result.stdout.split('; ', 1)[1].splitlines()[0]}")


if __name__ == "__main__":
    main()
