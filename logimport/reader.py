"""read_log: a server log (plain or gzip, any of the three formats) in, log-import events out.

The input is read one physical line at a time (a line longer than MAX_LINE_BYTES is cut and
counted), decoded as UTF-8 with bad bytes replaced and counted, and never held whole: memory
stays flat on a multi-GB file. The first lines are looked at once to detect the format and, for
stderr, the log_line_prefix; they are then parsed like every other line.

Nothing a line contains stops the import: what cannot be read is counted in the ParseReport
with its line number and the reason. LogFormatError is raised only when the input as a whole is
not a server log (binary data, or not one entry found in it); the report then still holds the
counts, so the caller can say what was wrong.
"""
from __future__ import annotations

import gzip
import io
import json
import os
import zlib
from collections import Counter
from dataclasses import dataclass, field
from itertools import chain
from typing import BinaryIO, Iterator

from logimport.entries import EntryBuilder
from logimport.formats import CsvRecords, JsonRecords, StderrRecords
from logimport.prefix import COMMON_PREFIXES, Prefix
from schemas.events import LogImportEvent

MAX_LINE_BYTES = 16 << 20
DETECT_LINES = 200
MAX_SAMPLES = 100
FORMATS = ("stderr", "csvlog", "jsonlog")


class LogFormatError(ValueError):
    """The input is not a PostgreSQL server log this reader understands (as a whole, not a line)."""


@dataclass
class ParseReport:
    """Counters filled while read_log is iterated; read them during (progress) or after."""

    lines: int = 0                 # physical lines read
    bytes_read: int = 0            # bytes of those lines, uncompressed
    source_bytes_read: int = 0     # bytes read from the input itself (compressed for gzip): progress against its size
    entries: int = 0               # events yielded
    unparsed: int = 0              # lines that could not be read (see samples and unparsed_reasons)
    skipped: int = 0               # messages read but not entries (checkpoints, NOTICE ...; see skipped_reasons)
    merged: int = 0                # messages folded into another entry (duration, error, audit of a statement)
    truncated: int = 0             # entries whose text was cut at the size limit
    long_lines: int = 0            # physical lines longer than MAX_LINE_BYTES, cut
    invalid_utf8: int = 0          # lines with bytes that are not UTF-8 (replaced by U+FFFD)
    blank: int = 0
    log_format: str | None = None
    prefix: str | None = None
    compressed: bool = False
    notes: list[str] = field(default_factory=list)
    samples: list[tuple[int, str, str]] = field(default_factory=list)   # (line, reason, excerpt), the first MAX_SAMPLES
    unparsed_reasons: Counter = field(default_factory=Counter)
    skipped_reasons: Counter = field(default_factory=Counter)
    categories: Counter = field(default_factory=Counter)  # entries by category (ddl, dml, connection ...)
    failed: int = 0                # entries of statements that failed, and errors

    def found(self, event: LogImportEvent) -> None:
        """Count one entry handed out."""
        self.entries += 1
        self.categories[event.payload.category] += 1
        self.failed += event.payload.status == "failed"

    def unparsed_line(self, line: int, reason: str, text: str) -> None:
        self.unparsed += 1
        self.unparsed_reasons[reason] += 1
        if len(self.samples) < MAX_SAMPLES:
            self.samples.append((line, reason, text[:120]))

    def skip(self, reason: str) -> None:
        self.skipped += 1
        self.skipped_reasons[reason] += 1

    def summary(self) -> str:
        """A few lines for a person: what was read, what was not and why, with line numbers."""
        fmt = self.log_format or "unknown format"
        if self.prefix is not None:
            fmt += f", log_line_prefix {self.prefix!r}"
        out = [f"{self.lines} lines ({self.bytes_read} bytes, {fmt}): {self.entries} entries, "
               f"{self.merged} merged into them, {self.skipped} server messages skipped, {self.unparsed} lines not parsed"]
        if self.entries:
            out.append("entries: " + ", ".join(f"{count} {name}" for name, count in sorted(self.categories.items())
                                               if count)
                       + f"; {self.failed} failed")
        out += [f"note: {note}" for note in self.notes]
        for name, count in (("truncated", self.truncated), ("long_lines", self.long_lines),
                            ("invalid_utf8", self.invalid_utf8)):
            if count:
                out.append(f"{name}: {count}")
        for reason, count in self.unparsed_reasons.most_common():
            out.append(f"{count} lines not parsed: {reason}")
        out += [f"  line {line}: {reason}: {text!r}" for line, reason, text in self.samples[:10]]
        return "\n".join(out)


def read_log(stream, *, origin: str, log_format: str | None = None, prefix: str | None = None,
             server: str = "unknown", simulated: bool = False, report: ParseReport) -> Iterator[LogImportEvent]:
    """Events of one server log. `stream`: a path, a binary file object (plain or gzip, found by
    its magic bytes), or a text file object. `log_format`/`prefix` None: detected from the first
    lines. `server` names the cluster in ids and Source.system_id; `origin` goes into each event."""
    if log_format is not None and log_format not in FORMATS:
        raise LogFormatError(f"unknown log format {log_format!r}; one of {', '.join(FORMATS)}")
    with _Lines(stream, report) as lines:
        head = lines.head(DETECT_LINES)
        report.log_format = log_format or detect_format([text for _, text in head])
        records = _records(report, [text for _, text in head], prefix)
        builder = EntryBuilder(log_format=report.log_format, origin=origin, server=server, simulated=simulated,
                               report=report)
        for number, text in chain(head, lines):
            record = records.feed(number, text)
            if record is not None:
                for event in builder.feed(record):
                    report.found(event)
                    yield event
            if number == len(head) and _is_binary(report, lines.binary_lines):
                raise LogFormatError("the input looks like binary data, not a PostgreSQL server log\n"
                                     + report.summary())
        record = records.finish()
        for event in chain(builder.feed(record) if record else (), builder.finish()):
            report.found(event)
            yield event
    if report.entries == 0 and report.unparsed:
        raise LogFormatError("no entry found in the input\n" + report.summary())


def detect_format(head: list[str]) -> str:
    """The format most of these lines are in: jsonlog (JSON objects), csvlog (rows of PostgreSQL's
    csvlog columns, quoted fields joined across lines) or stderr. By majority, not by the first
    line: around a reload that changed log_destination, a file starts with a few lines of the
    format before."""
    lines = [line for line in head if line.strip()]
    json_lines = sum(1 for line in lines if line.startswith("{") and _is_json_entry(line))
    csv_lines, rows = 0, CsvRecords(ParseReport())  # the csvlog reader itself, on a scratch report
    for number, line in enumerate(lines, 1):
        if (record := rows.feed(number, line)) is not None:
            csv_lines += record.raw.count("\n") + 1
    stderr_lines = len(lines) - json_lines - csv_lines
    return max((stderr_lines, "stderr"), (csv_lines, "csvlog"), (json_lines, "jsonlog"),
               key=lambda count_format: count_format[0])[1]


def _is_json_entry(line: str) -> bool:
    try:
        obj = json.loads(line)
    except ValueError:
        return False
    return isinstance(obj, dict) and "error_severity" in obj


def detect_prefix(head: list[str]) -> tuple[Prefix | None, int, int]:
    """The common prefix that reads most of these lines: (prefix, lines matched, lines tried).
    Ties go to the one matching more lines whole (not cut at %q), then to the more specific one:
    a free-text value such as %d would also swallow a '/%a' that a longer prefix reads apart."""
    lines = [line for line in head if line.strip() and not line.startswith("\t")]
    best, best_score = None, (0, 0, 0)
    for text in COMMON_PREFIXES:
        candidate = Prefix(text)
        matches = [candidate.match(line) for line in lines]
        score = (sum(m is not None for m in matches), sum(m is not None and m.session for m in matches),
                 len(candidate.escapes))
        if score[0] and score > best_score:
            best, best_score = candidate, score
    return best, best_score[0], len(lines)


def _records(report: ParseReport, head: list[str], prefix: str | None):
    if report.log_format == "csvlog":
        return CsvRecords(report)
    if report.log_format == "jsonlog":
        return JsonRecords(report)
    if prefix is not None:
        chosen = Prefix(prefix)
        tried = [line for line in head if line.strip() and not line.startswith("\t")]
        matched = sum(chosen.match(line) is not None for line in tried)
        if tried and matched * 2 < len(tried):
            guess, guess_matched, _ = detect_prefix(head)
            hint = f"; they look like log_line_prefix {guess.text!r} ({guess_matched} match)" if guess_matched else ""
            report.notes.append(f"only {matched} of the first {len(tried)} lines match log_line_prefix "
                                f"{prefix!r}{hint}")
    else:
        chosen, matched, tried = detect_prefix(head)
        if chosen is not None:
            report.notes.append(f"log_line_prefix detected: {chosen.text!r} ({matched} of the first {tried} lines)")
        else:
            chosen = Prefix(COMMON_PREFIXES[0])
            if tried:  # (an empty input has nothing to detect from)
                report.notes.append("none of the common log_line_prefix values matches the first lines; "
                                    "give the server's log_line_prefix")
    report.prefix = chosen.text
    return StderrRecords(chosen, report)


def _is_binary(report: ParseReport, binary_lines: int) -> bool:
    """After the first lines: not one of them read, and most of them binary."""
    return 0 < report.unparsed == report.lines - report.blank and binary_lines * 2 >= report.lines


class _Counting(io.RawIOBase):
    """The input as a raw stream that counts what is read from it (compressed bytes for gzip)."""

    def __init__(self, f, report: ParseReport):
        self._f, self._report = f, report

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._f.read(len(buffer))
        if isinstance(data, str):
            data = data.encode("utf-8", "replace")
        n = len(data)
        buffer[:n] = data
        self._report.source_bytes_read += n
        return n


class _Lines:
    """(line number, text) of the input, decoded, line ends removed, each line capped."""

    def __init__(self, stream, report: ParseReport, first_line: int = 1):
        self.report = report
        self.binary_lines = 0
        self._owned: BinaryIO | None = None
        if isinstance(stream, (str, os.PathLike)):
            stream = self._owned = open(stream, "rb")
        elif isinstance(stream, (bytes, bytearray)):
            stream = io.BytesIO(stream)
        buffered = io.BufferedReader(_Counting(stream, report), 1 << 20)
        if buffered.peek(2)[:2] == b"\x1f\x8b":
            report.compressed = True
            self._file = gzip.GzipFile(fileobj=buffered, mode="rb")
        else:
            self._file = buffered
        self._number = first_line - 1
        self._head: list[tuple[int, str]] = []

    def __enter__(self) -> _Lines:
        return self

    def __exit__(self, *exc) -> None:
        if self._owned is not None:
            self._owned.close()

    def head(self, n: int) -> list[tuple[int, str]]:
        """The first n lines, read now; iterating goes on after them."""
        for item in self:
            self._head.append(item)
            if len(self._head) >= n:
                break
        return self._head

    def __iter__(self) -> Iterator[tuple[int, str]]:
        report, readline = self.report, self._file.readline
        while True:
            try:
                raw = readline(MAX_LINE_BYTES)
            except (EOFError, OSError, zlib.error) as exc:  # a cut or corrupt gzip member
                report.notes.append(f"input ends early after line {self._number}: {exc}")
                return
            if not raw:
                return
            if len(raw) == MAX_LINE_BYTES and not raw.endswith(b"\n"):
                report.long_lines += 1
                self._skip_rest_of_line()
            self._number += 1
            report.lines += 1
            report.bytes_read += len(raw)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = raw.decode("utf-8", "replace")
                report.invalid_utf8 += 1
                self.binary_lines += 1
            else:
                if "\x00" in text:
                    self.binary_lines += 1
            if text.endswith("\n"):
                text = text[:-2] if text.endswith("\r\n") else text[:-1]
            yield self._number, text

    def _skip_rest_of_line(self) -> None:
        while True:
            try:
                chunk = self._file.readline(MAX_LINE_BYTES)
            except (EOFError, OSError, zlib.error):
                return
            self.report.bytes_read += len(chunk)
            if not chunk or chunk.endswith(b"\n"):
                return


