"""The three server log formats, each turned into the same `Record`: one message as the server
wrote it (a LOG, ERROR ... with its DETAIL, HINT, CONTEXT and STATEMENT), whatever the format.

Each reader is fed one physical line at a time and hands back a Record once it is complete, so
memory holds at most one message per format reader. A record's text is capped (`max_chars`);
a longer one is kept cut and counted as truncated. Lines that cannot be read are reported to the
ParseReport with their number and the reason, and reading goes on.
"""
from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import TYPE_CHECKING

from logimport.prefix import SUB_FIELDS, Prefix

if TYPE_CHECKING:
    from logimport.reader import ParseReport

MAX_ENTRY_CHARS = 1 << 20


@dataclass(slots=True)
class Record:
    line: int
    raw: str
    severity: str
    message: str
    time_text: str | None = None
    user: str | None = None
    database: str | None = None
    application: str | None = None
    host: str | None = None
    port: str | None = None
    pid: int | None = None
    leader_pid: int | None = None
    session_id: str | None = None
    session_line: int | None = None
    vxid: str | None = None
    xid: int | None = None
    sqlstate: str | None = None
    detail: str | None = None
    hint: str | None = None
    context: str | None = None
    statement: str | None = None
    internal_query: str | None = None
    location: str | None = None
    ps: str | None = None
    backend_type: str | None = None
    query_id: int | None = None
    truncated: bool = False

    @property
    def time(self) -> datetime | None:
        return parse_time(self.time_text) if self.time_text else None


# Abbreviations PostgreSQL may print for log_timezone. An abbreviation not listed gives a time
# without a zone (naive) rather than a guess.
_ZONES = {"UTC": 0, "GMT": 0, "UCT": 0, "Z": 0, "WET": 0, "WEST": 1, "BST": 1, "CET": 1, "CEST": 2, "MET": 1,
          "MEST": 2, "EET": 2, "EEST": 3, "MSK": 3, "EST": -5, "EDT": -4, "CST": -6, "CDT": -5, "MST": -7,
          "MDT": -6, "PST": -8, "PDT": -7, "AKST": -9, "AKDT": -8, "HST": -10, "JST": 9, "KST": 9, "HKT": 8,
          "SGT": 8, "AWST": 8, "AEST": 10, "AEDT": 11, "ACST": 9.5, "ACDT": 10.5, "NZST": 12, "NZDT": 13,
          "SAST": 2, "WIB": 7}
_OFFSET = re.compile(r"([+-])(\d{2}):?(\d{2})?")


@lru_cache(maxsize=4096)
def parse_time(text: str) -> datetime | None:
    """'2024-05-01 12:00:00.123 UTC' (%m, csvlog, jsonlog), '... 12:00:00 CEST' (%t) or an epoch
    with milliseconds (%n); None when it is none of these."""
    parts = text.split(" ")
    try:
        if len(parts) == 1:
            return datetime.fromtimestamp(float(text), timezone.utc)
        moment = datetime.fromisoformat(f"{parts[0]} {parts[1]}")
    except (ValueError, OverflowError):
        return None
    zone_text = parts[2] if len(parts) > 2 else ""
    if zone_text in _ZONES:
        return moment.replace(tzinfo=timezone(timedelta(hours=_ZONES[zone_text])))
    if m := _OFFSET.fullmatch(zone_text):
        minutes = int(m.group(2)) * 60 + int(m.group(3) or 0)
        return moment.replace(tzinfo=timezone(timedelta(minutes=-minutes if m.group(1) == "-" else minutes)))
    return moment


def _int(value) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _split_remote(value: str) -> tuple[str, str | None]:
    """'10.0.0.1(5432)' (%r) or '10.0.0.1:5432' (csvlog) -> host, port; '[local]' has no port."""
    if value.endswith(")") and "(" in value:
        host, _, port = value[:-1].rpartition("(")
        return host, port
    host, sep, port = value.rpartition(":")
    if sep and port.isdigit() and host:
        return host, port
    return value, None


def cap(record: Record, max_chars: int) -> Record:
    """Cut a record's long texts to `max_chars` each and mark it truncated if any was cut."""
    for name in ("raw", "message", "statement", "detail", "context", "internal_query"):
        value = getattr(record, name)
        if value is not None and len(value) > max_chars:
            setattr(record, name, value[:max_chars])
            record.truncated = True
    return record


class StderrRecords:
    """stderr (and syslog-less file) format: `<prefix><SEVERITY>:  <message>`, continuation lines
    starting with a tab, and DETAIL/HINT/CONTEXT/STATEMENT/QUERY/LOCATION lines that belong to
    the message before them."""

    def __init__(self, prefix: Prefix, report: ParseReport, max_chars: int = MAX_ENTRY_CHARS):
        self.max_chars = max_chars
        self.prefix = prefix
        self.report = report
        self._current: Record | None = None
        self._field = "message"

    def feed(self, number: int, line: str) -> Record | None:
        if line.startswith("\t"):
            if self._current is None:
                self.report.unparsed_line(number, "continuation line (tab) of no message read", line)
            else:
                self._append(self._field, "\n" + line[1:], line)
            return None
        if not line.strip():
            self.report.blank += 1
            return None
        m = self.prefix.match(line)
        if m is None:
            self.report.unparsed_line(number, f"does not match log_line_prefix {self.prefix.text!r}", line)
            return self._take()
        if m.severity in SUB_FIELDS:
            current = self._current
            pid = _int(m.fields.get("pid"))
            if current is None or (pid is not None and current.pid is not None and pid != current.pid):
                self.report.unparsed_line(number, f"{m.severity} line without its message", line)
                return None
            self._field = SUB_FIELDS[m.severity]
            self._append(self._field, m.message, line, replace=True)
            return None
        done = self._take()
        self._current = self._record(number, line, m.severity, m.message, m.fields)
        self._field = "message"
        return done

    def finish(self) -> Record | None:
        return self._take()

    def _take(self) -> Record | None:
        done, self._current = self._current, None
        return done

    def _append(self, field: str, text: str, raw_line: str, replace: bool = False) -> None:
        record = self._current
        if record.truncated:
            return
        left = max(self.max_chars - len(record.raw) - 1, 0)
        if len(raw_line) > left:
            record.truncated = True
            raw_line, text = raw_line[:left], text[:left]
        record.raw += "\n" + raw_line
        old = getattr(record, field)
        setattr(record, field, text if replace or old is None else old + text)

    def _record(self, number: int, line: str, severity: str, message: str, f: dict[str, str]) -> Record:
        record = Record(line=number, raw=line, severity=severity, message=message)
        if len(line) > self.max_chars:  # the line holds every other text of the record
            cap(record, self.max_chars)
        record.time_text = f.get("time_ms") or f.get("epoch") or f.get("time_s")
        record.user, record.database, record.application = f.get("user"), f.get("database"), f.get("application")
        record.host = f.get("host")
        if "remote" in f:
            host, record.port = _split_remote(f["remote"])
            record.host = record.host or host
        record.pid, record.leader_pid = _int(f.get("pid")), _int(f.get("leader_pid"))
        record.session_id, record.session_line = f.get("session_id"), _int(f.get("session_line"))
        record.vxid, record.xid, record.sqlstate = f.get("vxid"), _int(f.get("xid")), f.get("sqlstate")
        record.ps, record.backend_type, record.query_id = f.get("ps"), f.get("backend_type"), _int(f.get("query_id"))
        return record


# PostgreSQL 15's csvlog columns; 13 has the first 24, 12 and older the first 23.
CSV_COLUMNS = ("log_time", "user_name", "database_name", "process_id", "connection_from", "session_id",
               "session_line_num", "command_tag", "session_start_time", "virtual_transaction_id", "transaction_id",
               "error_severity", "sql_state_code", "message", "detail", "hint", "internal_query",
               "internal_query_pos", "context", "query", "query_pos", "location", "application_name",
               "backend_type", "leader_pid", "query_id")
_CSV_START = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?(?: [^,]*)?,")


def parse_csv_row(text: str) -> list[str] | None:
    """One csvlog record's text -> its columns, or None when it is not a csvlog row."""
    try:
        rows = list(csv.reader([text]))
    except csv.Error:
        return None
    if len(rows) != 1 or not 23 <= len(rows[0]) <= len(CSV_COLUMNS) or not _CSV_START.match(rows[0][0] + ","):
        return None
    return rows[0]


class CsvRecords:
    """csvlog: one record per row; quoted fields may span lines, so physical lines are joined
    until the quotes balance. A record cut short (an unterminated quote) is recognised when a line
    that is itself a whole csvlog row arrives, and reported instead of swallowing the rest."""

    def __init__(self, report: ParseReport, max_chars: int = MAX_ENTRY_CHARS):
        self.max_chars = max_chars
        self.report = report
        csv.field_size_limit(max(csv.field_size_limit(), 2 * max_chars))
        self._parts: list[str] = []
        self._size = 0
        self._first = 0
        self._odd = False
        self._cut = False

    def feed(self, number: int, line: str) -> Record | None:
        if self._parts and _CSV_START.match(line) and line.count('"') % 2 == 0 and parse_csv_row(line):
            self.report.unparsed_line(self._first, "csvlog record cut short (unterminated quoted field)",
                                      self._parts[0])
            self._reset()
        if not self._parts:
            if not line.strip():
                self.report.blank += 1
                return None
            self._first = number
        room = self.max_chars - self._size
        if len(line) + 1 > room:
            self._cut = True
        kept = line[:max(room - 1, 0)]
        if kept or not self._cut:
            self._parts.append(kept)
            self._size += len(kept) + 1
        self._odd ^= line.count('"') % 2 == 1
        if self._odd:
            return None
        return self._complete()

    def finish(self) -> Record | None:
        if self._parts:
            self.report.unparsed_line(self._first, "csvlog record cut short at the end of the input", self._parts[0])
            self._reset()
        return None

    def _reset(self) -> None:
        self._parts, self._size, self._odd, self._cut = [], 0, False, False

    def _complete(self) -> Record | None:
        text = "\n".join(self._parts)
        cut, first = self._cut, self._first
        self._reset()
        if cut and text.count('"') % 2:
            text += '"'  # close the field the cap cut through; the columns after it are lost
        row = parse_csv_row(text)
        if row is None and cut:
            row = parse_csv_row(text + "," * (len(CSV_COLUMNS) - 1))
        if row is None:
            self.report.unparsed_line(first, "not a csvlog row", text)
            return None
        c = dict(zip(CSV_COLUMNS, row))
        host, port = _split_remote(c["connection_from"]) if c.get("connection_from") else (None, None)
        return Record(
            line=first, raw=text, severity=c["error_severity"], message=c["message"], time_text=c["log_time"],
            user=c["user_name"] or None, database=c["database_name"] or None,
            application=c.get("application_name") or None, host=host, port=port, pid=_int(c["process_id"]),
            leader_pid=_int(c.get("leader_pid")), session_id=c["session_id"] or None,
            session_line=_int(c["session_line_num"]), vxid=c["virtual_transaction_id"] or None,
            xid=_int(c["transaction_id"]), sqlstate=c["sql_state_code"] or None, detail=c["detail"] or None,
            hint=c["hint"] or None, context=c["context"] or None, statement=c["query"] or None,
            internal_query=c["internal_query"] or None, location=c["location"] or None,
            ps=c["command_tag"] or None, backend_type=c.get("backend_type") or None,
            query_id=_int(c.get("query_id")), truncated=cut)


class JsonRecords:
    """jsonlog (PostgreSQL 15+): one JSON object per line, newlines inside values escaped."""

    def __init__(self, report: ParseReport, max_chars: int = MAX_ENTRY_CHARS):
        self.max_chars = max_chars
        self.report = report

    def feed(self, number: int, line: str) -> Record | None:
        if not line.strip():
            self.report.blank += 1
            return None
        try:
            obj = json.loads(line)
        except ValueError as exc:
            self.report.unparsed_line(number, f"not a JSON object ({exc.msg})", line)
            return None
        if not isinstance(obj, dict) or "error_severity" not in obj or "message" not in obj:
            self.report.unparsed_line(number, "JSON without error_severity and message: not a jsonlog entry", line)
            return None
        g = obj.get
        port = g("remote_port")
        return cap(Record(
            line=number, raw=line, severity=str(g("error_severity")), message=str(g("message")),
            time_text=g("timestamp"), user=g("user"), database=g("dbname"), application=g("application_name"),
            host=g("remote_host"), port=str(port) if port is not None else None, pid=_int(g("pid")),
            leader_pid=_int(g("leader_pid")), session_id=g("session_id"), session_line=_int(g("line_num")),
            vxid=g("vxid"), xid=_int(g("txid")), sqlstate=g("state_code"), detail=g("detail"), hint=g("hint"),
            context=g("context"), statement=g("statement"), internal_query=g("internal_query"),
            location=_location(obj), ps=g("ps") or None, backend_type=g("backend_type"),
            query_id=_int(g("query_id"))), self.max_chars)

    def finish(self) -> Record | None:
        return None


def _location(obj: dict) -> str | None:
    if "func_name" not in obj:
        return None
    return f"{obj['func_name']}, {obj.get('file_name')}:{obj.get('file_line_num')}"
