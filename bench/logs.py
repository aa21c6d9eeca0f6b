"""Log import benchmark: pgtrail's log parser beside pgBadger on the same generated server log.

Workload: a stderr log of about --mb megabytes (default 1024) in the classic
log_line_prefix '%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ', as a server with
log_min_duration_statement = 0, log_connections and log_disconnections on writes it: 40 sessions
at a time from 6 users and 5 applications, each a connection line, 2-12 statements with their
durations (DDL, one of them over several lines, DML, queries, role/system commands), 5% failing
with ERROR + STATEMENT, and a disconnection; checkpoints now and then. Generated once and kept in
.pgtrail/bench/.

Measured, one after the other on the same file, each a single process (pgBadger with -j 1):
- pgBadger 12 (Debian's `pgbadger`), text report to a file: the baseline;
- `pgtrail import-logs --dry-run`: read, parse, classify every statement and build every event
  (everything but publishing, which the capture benchmark measures).
Prints MB/s, lines/s, peak RSS of each, and pgtrail's rate as a ratio of pgBadger's.

    python -m bench.logs [--mb 1024]
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import time
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


def run(cmd: list[str]) -> tuple[float, int, subprocess.CompletedProcess]:
    """(seconds, peak RSS in MB, result) of one command."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return elapsed, usage.ru_maxrss // 1024, subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=1024)
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
    print(f"log import benchmark on {machine()}")
    print(f"workload: {log.name}, {size / 1e6:.0f} MB, {lines:,} lines, stderr, log_line_prefix {PREFIX!r}")

    report = folder / "pgbadger-report.txt"
    b_secs, b_rss, b = run(["pgbadger", "-j", "1", "-q", "-f", "stderr", "--prefix", PREFIX, "-x", "text",
                            "-o", str(report), str(log)])
    if b.returncode != 0:
        sys.exit(f"pgbadger failed: {b.stderr[-2000:]}")
    p_secs, p_rss, p = run([sys.executable, "-m", "pgtrail.cli", "import-logs", "--dry-run", "--prefix", PREFIX,
                            str(log)])
    if p.returncode != 0:
        sys.exit(f"pgtrail import-logs failed: {p.stdout[-2000:]} {p.stderr[-2000:]}")
    summary = next(x for x in p.stdout.splitlines() if "entries" in x)
    for name, secs, rss in (("pgBadger -j 1 (baseline)", b_secs, b_rss), ("pgtrail import-logs", p_secs, p_rss)):
        print(f"  {name:<26} {secs:8.1f} s  {size / 1e6 / secs:7.1f} MB/s  {lines / secs:10,.0f} lines/s  "
              f"peak RSS {rss} MB")
    print(f"  pgtrail: {summary.split('; ', 1)[1]}")
    print(f"ratio pgtrail / pgBadger (MB/s): {b_secs / p_secs:.2f}")


if __name__ == "__main__":
    main()
