"""read_log on every core: an uncompressed server log cut into chunks that worker processes parse,
merged into exactly what read_log gives one process (the same events, ids and order).

Split points. A chunk starts at a line that starts a record (stderr: a prefixed line whose
severity is not DETAIL, STATEMENT ...; jsonlog: any line), so a multi-line message is never cut.
The parent finds the split points and counts the lines before each, so line numbers are the file's.

State across split points. What a message means can depend on earlier messages of its process: a
statement waits for its duration or error (pending), and connection lines say who the process is.
A worker reads its chunk without that past. For each process it forwards the first messages of the
chunk that depend on a pending statement, as records, to the parent, whose one EntryBuilder holds
the true state, until a message settles the pending statement (a duration, an error: forwarded;
a statement or a disconnection: the worker handles it after a flush marker). From then on the
worker builds that process's events itself. Each event it builds says what it looked up: the
attribution its connection lines gave, and how often the same content was seen before (the id of
an entry without %c/%l). The parent replays every session change and content hash in log order and
rebuilds the rare event whose look-up the chunk could not know. Statements still pending at a
chunk's end go to the parent's builder.

Bounds: the builder's max_pending (processes with a statement pending at once, 1024) holds per
worker; a log with more pending at one split point may let one go at another moment than one
process would. Nothing else differs; tests/unit/test_logimport_parallel.py compares both on the
real-server fixtures and on logs with split points inside multi-line statements.
"""
from __future__ import annotations

import gc
import io
import multiprocessing
import os
import threading
from collections import deque
from itertools import islice
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, fields
from typing import Callable, Iterator

from logimport.entries import (_STATEMENT, ATTRIBUTION, AUDIT, DISCONNECTION, DURATION, ERROR, STATEMENT,
                               EntryBuilder, actor, message_kind)
from logimport.formats import JsonRecords, Record, StderrRecords
from logimport.prefix import SUB_FIELDS, Prefix
from logimport.reader import (DETECT_LINES, MAX_LINE_BYTES, MAX_SAMPLES, LogFormatError, ParseReport, _is_binary,
                              _Lines, _records, detect_format, read_log)
from schemas.events import Actor, LogImportEvent, parse_event
from schemas.wire import Encoded, encode

# A chunk's worth of work per task: large enough that handing it over costs little, small enough that
# the chunks in flight stay a few MB (a chunk's events, ready for Kafka, take about 5x its bytes).
CHUNK_BYTES = 2 << 20
CHUNK_BYTES_ENCODED = 256 << 10

# what a worker hands the parent, in log order
EVENT, RECORD, FLUSH, REMEMBER, FORGET, GUESS = range(6)

# how a message of a process depends on the statement pending for it before the chunk
_LOCAL, _FORWARD, _SETTLE_FORWARD, _SETTLE_FLUSH = range(4)


def _dependence(kind: int, match) -> int:
    """Mirrors EntryBuilder.feed: which messages read the pending statement, and which leave it
    settled (nothing pending, or one of their own) whatever it was."""
    if kind in (ERROR, DURATION):
        if kind == DURATION and match.group("rest") is not None:
            s = _STATEMENT.match(match.group("rest"))
            if s is None or s.group("kind").startswith(("parse ", "bind ")):
                return _LOCAL  # skipped, or folded into the execute line: the pending one untouched
        return _SETTLE_FORWARD
    if kind == AUDIT:
        return _FORWARD  # may merge into the pending statement and leave it pending
    if kind in (STATEMENT, DISCONNECTION):
        return _SETTLE_FLUSH
    return _LOCAL  # connections and server messages never touch a pending statement


def workers(jobs: int) -> ProcessPoolExecutor:
    """The worker processes, started at once. Called before this process starts a thread (a Kafka
    client's above all), they are forks of it: they share the pages of its loaded modules instead
    of each loading its own (with a forkserver and its resource tracker, about 40 MB more for two
    workers). A process that already runs threads never forks: then a forkserver starts them."""
    if threading.active_count() == 1:
        context = multiprocessing.get_context("fork")
        gc.freeze()   # the collector of a fork never touches (so never copies) the parent's objects
    else:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["logimport.parallel"])
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context)
    for started in [pool.submit(os.getpid) for _ in range(jobs)]:
        started.result()   # every worker exists now, before the caller starts any thread
    return pool


def read_log_parallel(path: str | os.PathLike, *, pool: ProcessPoolExecutor, jobs: int, origin: str,
                      log_format: str | None = None, prefix: str | None = None, server: str = "unknown",
                      simulated: bool = False, report: ParseReport, encoded: bool = True,
                      chunk_bytes: int | None = None, on_chunk: Callable[[], None] | None = None
                      ) -> Iterator[LogImportEvent | Encoded]:
    """read_log's events of one file, parsed by `pool`'s workers. `encoded`: events built by a
    worker come as Encoded (ready for Kafka; `.event` parses it), the others as models; False: no
    event is handed out, only `report` is filled (a dry run). A file that cannot be split
    (compressed, csvlog, smaller than two chunks, not a log) is read by read_log in this process."""
    chunk_bytes = chunk_bytes or (CHUNK_BYTES_ENCODED if encoded else CHUNK_BYTES)
    plan = _plan(path, log_format, prefix, chunk_bytes)
    if plan is None:
        for event in read_log(path, origin=origin, log_format=log_format, prefix=prefix, server=server,
                              simulated=simulated, report=report):
            if encoded:
                yield event
        return
    fmt, head = plan
    report.log_format, report.prefix = fmt, head.prefix
    report.notes.extend(head.notes)
    builder = EntryBuilder(log_format=fmt, origin=origin, server=server, simulated=simulated, report=report)
    tasks = (_Task(str(path), start, end, line, fmt, head.prefix, origin, server, simulated, start == 0, encoded)
             for start, end, line in _splits(path, fmt, head.prefix, chunk_bytes))
    window: deque = deque(pool.submit(_parse_chunk, task) for task in islice(tasks, jobs + 1))
    while window:
        items, part, pending = window.popleft().result()
        for task in tasks:
            window.append(pool.submit(_parse_chunk, task))
            break
        for event in _merge(items, builder, report):
            if encoded:
                yield event
        _add(report, part)
        builder.adopt(pending)
        if on_chunk is not None:
            on_chunk()
    for event in builder.finish():
        report.found(event)
        if encoded:
            yield event
    if report.entries == 0 and report.unparsed:
        raise LogFormatError("no entry found in the input\n" + report.summary())


# ---------------------------------------------------------------- the parent

def _plan(path, log_format: str | None, prefix: str | None, chunk_bytes: int) -> tuple[str, ParseReport] | None:
    """(format, a report with the detected prefix and notes) when the file is worth splitting."""
    try:
        if os.path.getsize(path) < 2 * chunk_bytes:
            return None
    except OSError:
        return None  # read_log says what is wrong with it
    head = ParseReport()
    with _Lines(path, head) as lines:
        texts = [text for _, text in lines.head(DETECT_LINES)]
        binary_lines = lines.binary_lines
    if head.compressed or (log_format is not None and log_format not in ("stderr", "jsonlog")):
        return None
    fmt = log_format or detect_format(texts)
    if fmt == "csvlog":
        return None  # quoted fields span lines: no line is known to start a record
    head.log_format = fmt
    records = _records(head, texts, prefix)
    for number, text in enumerate(texts, 1):
        records.feed(number, text)
    if _is_binary(head, binary_lines):
        return None
    return fmt, head


def _splits(path, fmt: str, prefix: str | None, chunk_bytes: int) -> Iterator[tuple[int, int, int]]:
    """(start, end, number of the first line) of each chunk."""
    if fmt == "stderr":
        compiled = Prefix(prefix)

        def starts_record(raw: bytes) -> bool:
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            m = compiled.match(text) if text.strip() and not text.startswith("\t") else None
            return m is not None and m.severity not in SUB_FIELDS
    else:
        def starts_record(raw: bytes) -> bool:
            return True
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        start, line = 0, 1
        while start < size:
            end = _record_start_after(f, start + chunk_bytes, size, starts_record)
            yield start, end, line
            f.seek(start)
            left = end - start
            while left > 0:
                block = f.read(min(left, 8 << 20))
                if not block:
                    break
                line += block.count(b"\n")
                left -= len(block)
            start = end


def _record_start_after(f, target: int, size: int, starts_record) -> int:
    """The offset of the first line at or after `target` that starts a record (or the end)."""
    if target >= size:
        return size
    f.seek(target - 1)
    f.readline()  # the rest of the line `target` falls in (nothing when a line starts there)
    while True:
        offset = f.tell()
        raw = f.readline()
        if not raw:
            return size
        if starts_record(raw):
            return offset


def _merge(items: list, builder: EntryBuilder, report: ParseReport) -> Iterator[LogImportEvent | Encoded]:
    """A chunk's items into the parent's builder, in log order; events out."""
    rest = iter(items)
    for item in rest:
        tag = item[0]
        if tag == EVENT:
            yield _checked(item, builder)  # counted in the worker's report
        elif tag == RECORD:
            for event in builder.feed(item[1]):
                report.found(event)
                yield event
        elif tag == FLUSH:
            for event in builder.flush(item[1]):
                report.found(event)
                yield event
        elif tag == GUESS:
            # the worker read a duration or an error as if nothing were pending for its process;
            # right unless the part of the log before the chunk left a statement pending
            _, pid, record, produced, undo = item
            if builder.is_pending(pid):
                for _ in range(produced):
                    next(rest)
                _undo(report, undo)
                for event in builder.feed(record):
                    report.found(event)
                    yield event
        elif tag == REMEMBER:
            builder.remember(item[1], item[2], item[3])
        else:
            builder.forget(item[1])


def _checked(item, builder: EntryBuilder) -> Encoded:
    """A worker's event, its id and attribution made what one process would have given."""
    _, wire, pid, missing, used, digest, seen = item
    enc = Encoded(*wire)
    event_id = found = None
    if digest is not None and (real := builder.count_seen(digest)) != seen:
        event_id = builder.ids.id(f"sha256:{digest}/{real}")
    if missing and (real_used := _looked_up(builder.known(pid), missing)) != used:
        found = real_used
    if event_id is None and found is None:
        return enc
    event = parse_event(enc.value)
    update: dict = {} if event_id is None else {"event_id": event_id}
    if found is not None:
        a = event.actor
        values = {"user": a.session_user if a else None, "database": event.source.database,
                  "application": a.application_name if a else None, "client": a.client_addr if a else None}
        values.update(zip(_names(missing), found))
        who = actor(values["user"], values["application"], values["client"], pid)
        update["actor"] = Actor(**who) if who is not None else None
        update["source"] = event.source.model_copy(update={"database": values["database"] or "unknown"})
    return encode(event.model_copy(update=update))


def _undo(report: ParseReport, undo: tuple) -> None:
    found, merged, skipped, truncated, reason = undo
    for category, failed in found:
        report.entries -= 1
        report.categories[category] -= 1
        report.failed -= failed
    report.skipped -= skipped
    report.truncated -= truncated
    if reason is not None:
        report.skipped_reasons[reason] -= skipped


def _names(missing: int) -> list[str]:
    return [name for i, name in enumerate(ATTRIBUTION) if missing >> i & 1]


def _looked_up(known: dict[str, str], missing: int) -> tuple:
    return tuple(known.get(name) for name in _names(missing))


_COUNTERS = [f.name for f in fields(ParseReport) if f.type == "int" and f.name != "entries"]


def _add(report: ParseReport, part: ParseReport) -> None:
    for name in _COUNTERS:
        setattr(report, name, getattr(report, name) + getattr(part, name))
    report.entries += part.entries
    report.categories.update(part.categories)
    report.notes.extend(part.notes)
    report.samples.extend(part.samples[:MAX_SAMPLES - len(report.samples)])
    report.unparsed_reasons.update(part.unparsed_reasons)
    report.skipped_reasons.update(part.skipped_reasons)


# ---------------------------------------------------------------- a worker

@dataclass(frozen=True)
class _Task:
    path: str
    start: int
    end: int
    first_line: int
    log_format: str
    prefix: str | None
    origin: str
    server: str
    simulated: bool
    first: bool      # the chunk the file starts with: nothing came before it
    encoded: bool


class _ChunkBuilder(EntryBuilder):
    """An EntryBuilder that also writes down its session changes for the parent. Its events are
    only counted and encoded here: built the fast way."""

    fast = True

    def __init__(self, out: list, **kw):
        super().__init__(**kw)
        self.out = out

    def remember(self, pid, fields_: dict[str, str], fresh: bool) -> None:
        super().remember(pid, fields_, fresh)
        self.out.append((REMEMBER, pid, fields_, fresh))

    def forget(self, pid) -> None:
        super().forget(pid)
        self.out.append((FORGET, pid))


class _ChunkReport(ParseReport):
    """A worker's counts; remembers the last reason a message was skipped (a guess may be undone)."""

    last_skip: str | None = None

    def skip(self, reason: str) -> None:
        super().skip(reason)
        self.last_skip = reason


def _parse_chunk(task: _Task) -> tuple[list, ParseReport, list]:
    """(items in log order, the chunk's counts, statements left pending at its end)."""
    report = _ChunkReport()
    out: list = []
    builder = _ChunkBuilder(out, log_format=task.log_format, origin=task.origin, server=task.server,
                            simulated=task.simulated, report=report)
    if task.log_format == "jsonlog":
        records = JsonRecords(report)
    else:
        records = StderrRecords(Prefix(task.prefix), report)
    settled: set | None = None if task.first else set()
    append = out.append

    def handle(record: Record) -> None:
        pid = record.pid
        if settled is not None and pid not in settled:
            dependence = _dependence(*message_kind(record))
            if dependence == _FORWARD:
                append((RECORD, record))
                return
            if dependence == _SETTLE_FLUSH:
                append((FLUSH, pid))
                settled.add(pid)
            elif dependence == _SETTLE_FORWARD:
                settled.add(pid)
                mark, before = len(out), (report.merged, report.skipped, report.truncated)
                append(None)
                report.last_skip = None
                found = build(record)
                undo = (found, report.merged - before[0], report.skipped - before[1], report.truncated - before[2],
                        report.last_skip)
                out[mark] = (GUESS, pid, record, len(out) - mark - 1, undo)
                return
        build(record)

    def build(record: Record) -> list[tuple[str, bool]]:
        found = []
        for event in builder.feed(record):
            report.found(event)
            found.append((event.payload.category, event.payload.status == "failed"))
            if task.encoded:
                enc = encode(event)
                missing = builder.last_missing
                append((EVENT, (enc.kind, enc.key, enc.value, enc.headers, enc.tags), record_pid(event), missing,
                        _looked_up(builder.known(record_pid(event)), missing) if missing else (),
                        builder.last_digest, builder.last_seen))
        return found

    with open(task.path, "rb") as f:
        f.seek(task.start)
        data = f.read(task.end - task.start)
    for number, text in _chunk_lines(data, report, task.first_line):
        record = records.feed(number, text)
        if record is not None:
            handle(record)
    record = records.finish()
    if record is not None:
        handle(record)
    return out, report, builder.pending()


def _chunk_lines(data: bytes, report: ParseReport, first_line: int) -> Iterator[tuple[int, str]]:
    """What reader._Lines gives for these bytes, split at once when they are valid UTF-8 and too
    short to hold a line it would cut."""
    try:
        text = data.decode("utf-8") if len(data) < MAX_LINE_BYTES else None
    except UnicodeDecodeError:
        text = None
    if text is None:
        with _Lines(io.BytesIO(data), report, first_line=first_line) as lines:
            yield from lines
        return
    lines = text.split("\n")
    ended = lines[-1] == ""
    if ended:
        lines.pop()
    report.lines += len(lines)
    report.bytes_read += len(data)
    report.source_bytes_read += len(data)
    last = len(lines) - 1
    for i, line in enumerate(lines):
        if line.endswith("\r") and (i < last or ended):
            line = line[:-1]
        yield first_line + i, line


def record_pid(event: LogImportEvent) -> int | None:
    return event.actor.backend_pid if event.actor is not None else None
