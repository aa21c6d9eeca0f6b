"""`pgtrail import-logs`: server logs from before tracking existed, through the same pipeline.

Each file is parsed as a stream (logimport.read_log) and every entry published to Kafka as a
`log_import` event; the sink loads them like any other event. Ids come from the entries' content,
so importing a file twice, or files that overlap, adds nothing the second time.

`--check-server DSN` says which logging settings a server has and which to change so that its
logs cover what an import needs.
"""
from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TextIO

import psycopg

from logimport import LogFormatError, ParseReport, read_log
from logimport.parallel import read_log_parallel, workers
from pgtrail.dsn import describe_dsn
from pgtrail.errors import Fatal, classify_kafka
from publisher.base import Publisher
from schemas.wire import Encoded

MAX_IN_FLIGHT = 5000  # events handed to Kafka and not yet acknowledged: bounds memory on any file


@dataclass
class FileResult:
    path: str
    report: ParseReport
    published: int = 0
    error: str | None = None


@dataclass
class _Acks:
    """Acknowledgements of one import. Callbacks run on this thread, inside the publisher's
    poll()/flush() (both drivers' contract), so plain counters suffice."""

    publisher: Publisher | None = None
    pending: int = 0
    acked: int = 0
    failure: object = None

    def sent(self) -> Callable[..., None]:
        self.pending += 1
        return self._done

    def _done(self, exc, _message=None) -> None:
        self.pending -= 1
        if exc is None:
            self.acked += 1
        elif self.failure is None:
            self.failure = exc

    def wait_below(self, limit: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.pending >= limit and self.failure is None:
            if time.monotonic() > deadline:
                raise Fatal(f"Kafka acknowledged nothing for {timeout:.0f}s with {self.pending} events waiting")
            if self.publisher is not None:
                self.publisher.poll(0.05)
        if self.failure is not None:
            raise classify_kafka(self.failure)(f"Kafka did not acknowledge an event: {self.failure!r}")


class Progress:
    """One line on stderr, rewritten at most every half second; only on a terminal."""

    def __init__(self, path: str, total: int | None, out: TextIO = sys.stderr):
        self.path, self.total, self.out = path, total, out
        self.enabled = out.isatty()
        self.started = self.last = time.monotonic()

    def update(self, report: ParseReport, final: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not final and now - self.last < 0.5):
            return
        self.last = now
        rate = report.source_bytes_read / max(now - self.started, 1e-6) / 1e6
        if self.total:
            share = min(1.0, report.source_bytes_read / self.total)
            bar = "#" * int(share * 30)
            head = f"{share * 100:5.1f}% [{bar:<30}]"
        else:
            head = f"{report.source_bytes_read / 1e6:8.1f} MB"
        self.out.write(f"\r{Path(self.path).name}: {head} {report.lines} lines, {report.entries} entries, "
                       f"{report.unparsed} not parsed, {rate:.1f} MB/s")
        if final:
            self.out.write("\n")
        self.out.flush()


def worker_pool(jobs: int) -> ProcessPoolExecutor | None:
    """The processes that parse large logs (None for --jobs 1: everything in this process)."""
    if jobs < 1:
        raise Fatal(f"--jobs must be at least 1, not {jobs}")
    return workers(jobs) if jobs > 1 else None


def import_file(path: str, publisher: Publisher | None, *, server: str, log_format: str | None,
                prefix: str | None, on_event: Callable | None = None,
                pool: ProcessPoolExecutor | None = None, jobs: int = 1) -> FileResult:
    """Parse one file and publish its entries (publisher None: parse only, a dry run). With a
    `pool` of `jobs` workers, a large uncompressed file is cut into chunks parsed side by side
    (logimport.parallel: the same events, ids and order as one process)."""
    report = ParseReport()
    result = FileResult(path, report)
    acks = _Acks(publisher)
    try:
        total = os.path.getsize(path)
    except OSError as exc:
        result.error = f"cannot read {path}: {exc.strerror}"
        return result
    progress = Progress(path, total)
    options = dict(origin=os.path.abspath(path), log_format=log_format, prefix=prefix, server=server, report=report)
    if pool is not None:
        events = read_log_parallel(path, pool=pool, jobs=jobs, encoded=publisher is not None or on_event is not None,
                                   on_chunk=lambda: progress.update(report), **options)
    else:
        events = read_log(path, **options)
    try:
        for event in events:
            if on_event is not None:
                on_event(event.event if isinstance(event, Encoded) else event)
            if publisher is not None:
                if acks.pending >= MAX_IN_FLIGHT:
                    acks.wait_below(MAX_IN_FLIGHT // 2, timeout=120)
                publisher.publish(event, acks.sent())
                result.published += 1
                if result.published % 1000 == 0:
                    publisher.poll(0)
            progress.update(report)
        if publisher is not None:
            publisher.flush(timeout=120)
            acks.wait_below(1, timeout=120)
    except LogFormatError as exc:
        result.error = str(exc).splitlines()[0]
    except OSError as exc:
        result.error = f"cannot read {path}: {exc.strerror or exc}"
    progress.update(report, final=True)
    return result


# ------------------------------------------------------------------ --check-server

@dataclass
class Advice:
    setting: str
    value: str
    ok: bool
    advice: str


_PREFIX_ESCAPES = {"%m": "time with milliseconds (or %t/%n)", "%p": "process id", "%u": "user", "%d": "database",
                   "%a": "application", "%h": "client host (or %r)", "%c": "session id", "%l": "session line number",
                   "%e": "SQLSTATE of errors"}


def check_server(dsn: str) -> list[Advice]:
    """What the server logs now, and what to change for complete coverage by an import."""
    names = ["log_destination", "logging_collector", "log_line_prefix", "log_statement",
             "log_min_duration_statement", "log_duration", "log_connections", "log_disconnections",
             "log_min_error_statement", "shared_preload_libraries"]
    try:
        with psycopg.connect(dsn, connect_timeout=10, autocommit=True) as conn:
            values = dict(conn.execute("select name, setting from pg_settings where name = any(%s)",
                                       (names,)).fetchall())
            audit = conn.execute("select setting from pg_settings where name = 'pgaudit.log'").fetchone()
    except psycopg.Error as exc:
        raise Fatal(f"cannot connect to {describe_dsn(dsn)}: {str(exc).strip().splitlines()[-1]}") from exc
    out = []
    dest = {d.strip() for d in values["log_destination"].split(",")}
    structured = dest & {"jsonlog", "csvlog"}
    out.append(Advice("log_destination", values["log_destination"], bool(structured) or "stderr" in dest,
                      "ok: structured, every field named" if structured else
                      "ok; better: add jsonlog (or csvlog): every field named, session id and line number always there"
                      if "stderr" in dest else "set to 'stderr,jsonlog': syslog/eventlog are not read by import-logs"))
    collector = values["logging_collector"] == "on"
    out.append(Advice("logging_collector", values["logging_collector"], collector or not structured,
                      "ok" if collector else
                      "set to on (needs a restart): csvlog and jsonlog are written only by the collector" if structured
                      else "ok for stderr; on (restart) rotates files in log_directory instead of one stream"))
    if structured:
        out.append(Advice("log_line_prefix", values["log_line_prefix"], True,
                          "ok: not used by csvlog/jsonlog (keep the stderr copy readable)"))
    else:
        prefix = values["log_line_prefix"]
        missing = [f"{e} ({why})" for e, why in _PREFIX_ESCAPES.items()
                   if e not in prefix and not (e == "%m" and ("%t" in prefix or "%n" in prefix))
                   and not (e == "%h" and "%r" in prefix)]
        out.append(Advice("log_line_prefix", prefix, not missing,
                          "ok" if not missing else "add " + ", ".join(missing) +
                          "; e.g. '%m [%p] %q%u@%d app=%a client=%h session=%c line=%l sqlstate=%e '"))
    stmt = values["log_statement"]
    out.append(Advice("log_statement", stmt, stmt in ("ddl", "mod", "all"),
                      {"all": "ok: every statement", "mod": "ok: DDL and data changes (set 'all' to see queries too)",
                       "ddl": "DDL only: set 'mod' to see data changes as well",
                       "none": "set to 'ddl' at least ('mod' for data changes): nothing is logged now"}[stmt]))
    dur = int(values["log_min_duration_statement"])
    out.append(Advice("log_min_duration_statement", str(dur), dur == 0 or values["log_duration"] == "on",
                      "ok: every statement's duration" if dur == 0 else
                      "ok: durations through log_duration" if values["log_duration"] == "on" else
                      "set to 0 for the duration of every statement" + (" (only those over %d ms now)" % dur
                                                                         if dur > 0 else "")))
    for name in ("log_connections", "log_disconnections"):
        out.append(Advice(name, values[name], values[name] == "on",
                          "ok" if values[name] == "on" else "set to on: who connected, from where, for how long"))
    errs = values["log_min_error_statement"]
    errs_ok = errs not in ("log", "fatal", "panic")  # LOG ranks above ERROR for this setting
    out.append(Advice("log_min_error_statement", errs, errs_ok,
                      "ok: failed statements are logged with their text" if errs_ok
                      else "set to error: failed statements are logged without their text now"))
    preload = values["shared_preload_libraries"]
    has_audit = "pgaudit" in preload
    out.append(Advice("pgaudit", (audit[0] if audit else "not loaded"), True,
                      "ok: AUDIT lines are imported too" if has_audit and audit else
                      "optional: pgaudit (shared_preload_libraries) adds object-level AUDIT lines"))
    return out


def render_advice(items: list[Advice]) -> str:
    width = max(len(a.setting) for a in items)
    vwidth = min(40, max(len(a.value) for a in items))
    lines = [f"{'SETTING':<{width}}  {'NOW':<{vwidth}}  {'':2}  ADVICE"]
    for a in items:
        lines.append(f"{a.setting:<{width}}  {a.value[:40]:<{vwidth}}  {'ok' if a.ok else '!!'}  {a.advice}")
    bad = [a.setting for a in items if not a.ok]
    lines.append("complete coverage" if not bad else
                 f"change {', '.join(bad)} for complete coverage (ALTER SYSTEM SET ...; SELECT pg_reload_conf())")
    return "\n".join(lines)
