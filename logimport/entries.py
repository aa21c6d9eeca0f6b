"""Records -> log-import events: what each server message means, and which messages are one entry.

One statement can be written several times: `statement: S` (log_statement), then AUDIT lines
(pgaudit), then `duration: X ms` (log_duration, or log_min_duration_statement once log_statement
already showed the text), or an ERROR whose STATEMENT is S. PostgreSQL writes these from the same
process, in that order, so a statement stays pending per process id until something that cannot
belong to it arrives from that process; what belongs to it is merged into one entry:

- `duration: X ms` alone                  -> the duration of the pending statement
- `duration: X ms  statement|execute: S`  -> the pending statement's duration when its text is S,
                                             otherwise an entry of its own with its duration
- ERROR/FATAL with STATEMENT S            -> marks the pending statement S failed (SQLSTATE from
                                             %e or the csv/json field); otherwise its own entry
- AUDIT with statement S                  -> the pending statement's audit fields (the first one);
                                             other AUDIT lines are entries of their own
- `duration: X ms  parse|bind ...: S`     -> folded: phases of an extended-protocol statement whose
                                             execute line is the entry

Server messages that are none of a statement, a connection, a disconnection, an audit record or
an error (checkpoints, autovacuum, NOTICE ...) are not entries; they are counted as skipped.
At most `max_pending` processes have a pending statement at a time (the oldest is let go first),
so memory stays flat whatever the size of the log.

Ids: `session_id/session_line` of the entry's first message when the log has them (%c and %l,
csvlog, jsonlog); otherwise a sha256 of the first message's time, pid, user, database and full
text, plus how many times that same hash was already seen in this input (exact duplicates).
"""
from __future__ import annotations

import csv
import hashlib
import re
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

from logimport.formats import Record
from logimport.redact import redact_secrets
from logimport.sqlclass import classify
from schemas.events import LogImportEvent
from schemas.fast import build_event
from schemas.ids import PGTRAIL_NAMESPACE, uuid5_text

if TYPE_CHECKING:
    from logimport.reader import ParseReport

_DURATION = re.compile(r"duration: (?P<ms>\d+(?:\.\d+)?) ms(?:  (?P<rest>.*))?\Z", re.S)
_STATEMENT = re.compile(r"(?P<kind>statement|(?:execute fetch from|execute|parse|bind) .*?): (?P<sql>.*)\Z", re.S)
_AUDIT_FIELDS = ("audit_type", "statement_id", "substatement_id", "class", "command", "object_type", "object_name",
                 "statement", "parameter", "rows")
_NOT_A_STATEMENT = {"<previously logged>", "<not logged>", ""}
_SESSION_TIME = re.compile(r"disconnection: session time: (?P<h>\d+):(?P<m>\d\d):(?P<s>\d\d(?:\.\d+)?)")
_PAIR = re.compile(r"(\w+)=(\S*)")
_ERRORS = {"ERROR", "FATAL", "PANIC"}
_NOBODY: dict[str, str] = {}
ATTRIBUTION = ("user", "database", "application", "client")  # what a session's connection lines say

# What a message is to the builder (message_kind); feed() and logimport.parallel both go by it.
ERROR, AUDIT, DURATION, STATEMENT, CONNECTION, DISCONNECTION, OTHER = range(7)


def message_kind(record: Record) -> tuple[int, re.Match | None]:
    """The kind of a record's message, with the match of its duration or statement pattern."""
    message = record.message
    if record.severity in _ERRORS:
        return ERROR, None
    if message.startswith("AUDIT: "):
        return AUDIT, None
    if (d := _DURATION.match(message)) is not None:
        return DURATION, d
    if (s := _STATEMENT.match(message)) is not None and record.severity == "LOG":
        return STATEMENT, s
    if message.startswith(("connection ", "replication connection ")):
        return CONNECTION, None
    if message.startswith("disconnection: "):
        return DISCONNECTION, None
    return OTHER, None


@dataclass(slots=True)
class _Entry:
    record: Record
    category: str
    command_tag: str | None = None
    object_type: str | None = None
    object_identity: str | None = None
    statement: str | None = None
    status: str = "ok"
    error: str | None = None
    error_state: str | None = None
    duration_ms: float | None = None
    audit: dict[str, Any] | None = None
    severity: str | None = None
    user: str | None = None
    database: str | None = None
    application: str | None = None
    client: str | None = None

    def absorb(self, record: Record) -> None:
        """Take what a later message of the same statement knows that the first did not."""
        r = self.record
        r.xid = r.xid or record.xid
        r.query_id = r.query_id or record.query_id
        r.vxid = r.vxid or record.vxid


def statement_entry(record: Record, sql: str) -> _Entry:
    c = classify(sql)
    return _Entry(record, c.category, c.command_tag, c.object_type, c.object_identity, statement=sql)


class EntryBuilder:
    """Feeds on Records in log order; yields LogImportEvents (possibly later, once merged).

    `fast`: events as schemas.fast wire Structs where msgspec accepts them (the same fields and
    body, a third of pydantic's cost; logimport.parallel's workers, which only count and encode
    them); False: pydantic models, for every other reader."""

    fast = False

    def __init__(self, *, log_format: str, origin: str, server: str, simulated: bool, report: ParseReport,
                 max_pending: int = 1024, max_pending_chars: int = 32 << 20, max_seen: int = 65536):
        self.log_format, self.origin, self.server, self.simulated = log_format, origin, server, simulated
        self.report = report
        self.max_pending, self.max_pending_chars, self.max_seen = max_pending, max_pending_chars, max_seen
        self._pending: OrderedDict[int | None, _Entry] = OrderedDict()
        self._pending_chars = 0
        self._seen: OrderedDict[str, int] = OrderedDict()
        # who each process is, from its connection lines: fills user/database/application/client
        # for prefixes without %u %d %a %h (PostgreSQL's default '%m [%p] ' among them)
        self._sessions: OrderedDict[int | None, dict[str, str]] = OrderedDict()
        self.ids = EntryIds(server)
        self.last_digest: str | None = None  # the content hash behind the last event's id (None: %c/%l)
        self.last_seen = 0
        self.last_missing = 0

    def feed(self, record: Record) -> Iterator[LogImportEvent]:
        if record.truncated:
            self.report.truncated += 1
        pid = record.pid
        kind, m = message_kind(record)
        if kind == ERROR:
            yield from self._error(pid, record)
        elif kind == AUDIT:
            yield from self._audit(pid, record)
        elif kind == DURATION:
            yield from self._duration(pid, record, float(m.group("ms")), m.group("rest"))
        elif kind == STATEMENT:
            yield from self._flush(pid)
            yield from self._hold(pid, statement_entry(record, m.group("sql")))
        elif kind == CONNECTION:
            entry = _connection(record)
            self.remember(pid, {name: value for name in ATTRIBUTION if (value := getattr(entry, name))},
                          fresh=record.message.startswith("connection received"))
            yield self._event(entry)
        elif kind == DISCONNECTION:
            yield from self._flush(pid)
            yield self._event(_disconnection(record))
            self.forget(pid)
        else:
            self.report.skip(f"server message, not a statement ({record.severity})")

    def finish(self) -> Iterator[LogImportEvent]:
        while self._pending:
            yield from self._flush(next(iter(self._pending)))

    # --- the kinds of message

    def _duration(self, pid, record: Record, ms: float, rest: str | None) -> Iterator[LogImportEvent]:
        pending = self._pending.get(pid)
        if rest is None:
            if pending is None or pending.duration_ms is not None or pending.statement is None:
                self.report.skip("duration without its statement (the statement was not logged)")
                return
            pending.duration_ms = ms
            pending.absorb(record)
            self.report.merged += 1
            yield from self._flush(pid)  # a duration is the last line of a statement
            return
        s = _STATEMENT.match(rest)
        if s is None:
            self.report.skip("duration of something that is not a statement")
            return
        kind, sql = s.group("kind"), s.group("sql")
        if kind.startswith(("parse ", "bind ")):
            self.report.merged += 1  # the execute line that follows is the entry
            return
        if pending is not None and pending.statement == sql and pending.duration_ms is None:
            pending.duration_ms = ms
            pending.absorb(record)
            self.report.merged += 1
            yield from self._flush(pid)
            return
        yield from self._flush(pid)
        entry = statement_entry(record, sql)
        entry.duration_ms = ms
        yield self._event(entry)

    def _error(self, pid, record: Record) -> Iterator[LogImportEvent]:
        pending = self._pending.get(pid)
        sql = record.statement
        if sql is not None and pending is not None and pending.statement == sql:
            entry = pending
            entry.absorb(record)
            self.report.merged += 1
        else:
            yield from self._flush(pid)
            entry = statement_entry(record, sql) if sql else _Entry(record, "error")
            pending = None
        entry.status, entry.error, entry.error_state = "failed", record.message, record.sqlstate
        entry.severity = record.severity
        if pending is not None:
            yield from self._flush(pid)
        else:
            yield self._event(entry)

    def _audit(self, pid, record: Record) -> Iterator[LogImportEvent]:
        """The first AUDIT line of a statement is part of its entry (or starts it when log_statement
        did not log it); further objects and sub-statements of it are entries of their own."""
        audit = parse_audit(record.message[len("AUDIT: "):])
        sql = audit.get("statement", "")
        pending = self._pending.get(pid)
        if pending is not None and pending.audit is None and sql == pending.statement:
            pending.audit = audit
            pending.object_type = (audit.get("object_type") or "").lower() or pending.object_type
            pending.object_identity = audit.get("object_name") or pending.object_identity
            self.report.merged += 1
            return
        c = classify(sql if sql not in _NOT_A_STATEMENT else audit.get("command"))
        category = "ddl" if c.command_tag in ("GRANT ROLE", "REVOKE ROLE") and audit.get("class") != "ROLE" \
            else c.category
        entry = _Entry(record, category, audit.get("command") or c.command_tag,
                       (audit.get("object_type") or "").lower() or c.object_type,
                       audit.get("object_name") or c.object_identity,
                       statement=sql if sql not in _NOT_A_STATEMENT else None, audit=audit)
        same_statement = pending is not None and sql in (pending.statement, "<previously logged>")
        if audit.get("substatement_id", "1") not in ("1", "") or same_statement or entry.statement is None:
            yield self._event(entry)
            return
        yield from self._flush(pid)
        yield from self._hold(pid, entry)

    def remember(self, pid, fields: dict[str, str], fresh: bool) -> None:
        """Who process `pid` is, from a connection message (`fresh`: it starts a new session)."""
        if pid is None:
            return
        session = {} if fresh else self._sessions.pop(pid, {})
        session.update(fields)
        self._sessions[pid] = session
        if len(self._sessions) > self.max_seen:
            self._sessions.popitem(last=False)

    def forget(self, pid) -> None:
        """Process `pid` disconnected: its next connection is someone else's."""
        self._sessions.pop(pid, None)

    # --- pending statements, bounded

    def pending(self) -> list[_Entry]:
        """The statements still waiting for their duration or error, oldest first."""
        return list(self._pending.values())

    def adopt(self, entries: list[_Entry]) -> None:
        """Hold statements left pending by the part of the log a worker read (logimport.parallel),
        in the order they would have been held had this builder read that part: by line."""
        if not entries:
            return
        held = sorted([*self._pending.values(), *entries], key=lambda e: e.record.line)
        self._pending = OrderedDict((e.record.pid, e) for e in held)
        self._pending_chars += sum(len(e.record.raw) for e in entries)

    def is_pending(self, pid) -> bool:
        return pid in self._pending

    def flush(self, pid) -> Iterator[LogImportEvent]:
        """Let the statement pending for `pid` go (what the next statement of that process does)."""
        return self._flush(pid)

    def _hold(self, pid, entry: _Entry) -> Iterator[LogImportEvent]:
        self._pending[pid] = entry
        self._pending_chars += len(entry.record.raw)
        while len(self._pending) > self.max_pending or (
                self._pending_chars > self.max_pending_chars and len(self._pending) > 1):
            yield from self._flush(next(iter(self._pending)))  # let the oldest go: its process went quiet

    def _flush(self, pid) -> Iterator[LogImportEvent]:
        entry = self._pending.pop(pid, None)
        if entry is not None:
            self._pending_chars -= len(entry.record.raw)
            yield self._event(entry)

    # --- the event

    def _key(self, r: Record) -> str:
        if r.session_id and r.session_line is not None:
            self.last_digest = None
            return f"{r.session_id}/{r.session_line}"
        digest = hashlib.sha256("\x1f".join((r.time_text or "", str(r.pid or ""), r.user or "", r.database or "",
                                             r.raw)).encode("utf-8", "replace")).hexdigest()
        seen = self.count_seen(digest)
        self.last_digest, self.last_seen = digest, seen
        return f"sha256:{digest}/{seen}"

    def count_seen(self, digest: str) -> int:
        """How often this content hash was seen before in this input (exact duplicate lines)."""
        seen = self._seen.pop(digest, 0)
        self._seen[digest] = seen + 1
        if len(self._seen) > self.max_seen:
            self._seen.popitem(last=False)
        return seen

    def known(self, pid) -> dict[str, str]:
        return self._sessions.get(pid, _NOBODY) if pid is not None else _NOBODY

    def _event(self, e: _Entry) -> LogImportEvent:
        r = e.record
        user = e.user or r.user
        database = e.database or r.database
        app = e.application or r.application
        client = e.client or r.host
        # what the prefix did not say comes from the process's connection lines: `last_missing`
        # tells a caller which of the four were looked up (logimport.parallel checks them)
        missing = 0
        if not (user and database and app and client):
            known = self.known(r.pid)
            missing = (not user) | (not database) << 1 | (not app) << 2 | (not client) << 3
            user, database = user or known.get("user"), database or known.get("database")
            app, client = app or known.get("application"), client or known.get("client")
        self.last_missing = missing
        statement, _ = redact_secrets(e.statement)
        error, _ = redact_secrets(e.error)
        audit = ({k: redact_secrets(v)[0] if isinstance(v, str) else v for k, v in e.audit.items()}
                 if e.audit else e.audit)
        # nested models given as dicts: pydantic validates the whole event in one call (~30% less)
        payload = dict(
            log_format=self.log_format, origin=self.origin, line=r.line, category=e.category,
            command_tag=e.command_tag, object_type=e.object_type, object_identity=e.object_identity,
            statement=statement, status=e.status, error=error, error_state=e.error_state,
            duration_ms=e.duration_ms, severity=e.severity or r.severity, session_id=r.session_id,
            session_line=r.session_line, virtual_xid=r.vxid, xid=r.xid or None, query_id=r.query_id or None,
            backend_type=r.backend_type, audit=audit, simulated=self.simulated)
        key = self._key(r)
        fields = dict(actor=actor(user, app, client, r.pid), payload=payload,
                      source=dict(system_id=self.server, database=database or "unknown", slot="log-import",
                                  commit_time=r.time, position=0))
        if self.fast:
            fields["event_id"] = self.ids.text(key)
            return build_event(LogImportEvent, fields)
        return LogImportEvent(event_id=self.ids.id(key), **fields)


def actor(user: str | None, application: str | None, client: str | None, pid: int | None) -> dict | None:
    """An entry's actor (the fields of schemas.events.Actor); None when the log says nothing about who."""
    if user or application or client or pid is not None:
        return dict(session_user=user, application_name=application, client_addr=client, backend_pid=pid)
    return None


class EntryIds:
    """schemas.ids.log_entry_id for one server, the hash of its constant head computed once
    (tests/unit/test_logimport_entries.py checks both give the same ids)."""

    def __init__(self, server: str):
        self._head = hashlib.sha1(PGTRAIL_NAMESPACE.bytes + f"log/{server}/".encode())

    def id(self, key: str) -> uuid.UUID:
        return uuid.UUID(bytes=self._digest(key)[:16], version=5)

    def text(self, key: str) -> str:
        """The same id as text (schemas.fast.build_event reads it; no UUID object made twice)."""
        return uuid5_text(self._digest(key))

    def _digest(self, key: str) -> bytes:
        h = self._head.copy()
        h.update(key.encode())
        return h.digest()


def parse_audit(text: str) -> dict[str, Any]:
    """The comma-separated fields of a pgaudit line (after 'AUDIT: '), by name."""
    try:
        row = next(csv.reader([text]), [])
    except csv.Error:
        row = [text]
    audit: dict[str, Any] = dict(zip(_AUDIT_FIELDS, row))
    if len(row) > len(_AUDIT_FIELDS):
        audit["extra"] = row[len(_AUDIT_FIELDS):]
    return audit


def _connection(record: Record) -> _Entry:
    entry = _Entry(record, "connection")
    head, _, tail = record.message.partition(": ")
    fields = dict(_PAIR.findall(tail.split(" SSL enabled")[0].split(" GSS ")[0]))
    entry.user = fields.get("user")
    entry.database = fields.get("database")
    entry.application = fields.get("application_name")
    entry.client = fields.get("host")
    entry.command_tag = head.upper()
    return entry


def _disconnection(record: Record) -> _Entry:
    entry = _Entry(record, "disconnection", command_tag="DISCONNECTION")
    fields = dict(_PAIR.findall(record.message))
    entry.user, entry.database, entry.client = fields.get("user"), fields.get("database"), fields.get("host")
    if m := _SESSION_TIME.match(record.message):
        entry.duration_ms = round((int(m["h"]) * 3600 + int(m["m"]) * 60 + float(m["s"])) * 1000, 3)
    return entry
