"""Events -> Data Vault rows, insert-only and idempotent."""
from __future__ import annotations

import select
import struct
from functools import lru_cache
from operator import itemgetter
from typing import Any, Callable, Iterable, Protocol
from uuid import UUID

import msgspec
import psycopg
from psycopg import postgres, pq
from psycopg.adapt import Dumper, PyFormat
from psycopg.pq import Format

from pgtrail.errors import Retryable
from schemas import Event
from schemas.ids import quote_ident
from sink.hashing import hash_diff, hk_actor, hk_database, hk_event, hk_link, hk_object, hk_script, hk_tenant

@lru_cache(maxsize=65536)
def _table_identity(schema_name: str, table: str) -> str:
    return f"{quote_ident(schema_name)}.{quote_ident(table)}"


def object_identity(event: Event) -> str:
    """The business key of what an event touched, within its database."""
    kind = event.kind   # not isinstance: a body read by schemas.fast is a Struct of the same shape
    if kind == "dml":
        return _table_identity(event.payload.schema_name, event.payload.table)
    if kind == "ddl":
        # a column's comment or default is a change of its table
        return event.payload.parent_identity or event.payload.object_identity or event.payload.command_tag.lower()
    if kind == "operation":
        return f"operation:{event.payload.name}"
    if kind == "script":
        if event.payload.script_name:
            return f"script:{event.payload.script_name}"
        return f"script_execution:{event.payload.execution_id}"
    if kind == "security":
        return "security"
    if kind == "heartbeat":
        return "heartbeat"
    if kind == "log_import":
        # as written in the statement: `t` and `public.t` stay two keys (a log does not say which
        # schema a name resolved to)
        p = event.payload
        return p.object_identity or f"log:{(p.command_tag or p.category).lower()}"
    raise TypeError(f"unknown event type {type(event).__name__}")


class Loader(Protocol):
    """The sink's target. `load` writes a batch in one transaction and returns the ids of the
    events that were new; repeats are ignored. It raises pgtrail errors classified by SQLSTATE.
    A loader with `overlapping = True` (PairedLoader) also has `stage(events, rows) -> Staged`, on
    a session other than the one of the batch before: the sink then overlaps batches."""

    def load(self, events: list[Event], rows: dict[str, list[tuple]] | None = None) -> set[UUID]: ...

    def close(self) -> None: ...


RECORD_SOURCE = "pgtrail-sink"


# Each table: its columns and their types, in the order rows_for() builds its tuples. A batch is
# written by COPY (binary) into a per-session staging table of these columns, then moved into the
# vault set-based: INSERT ... SELECT ... ON CONFLICT DO NOTHING, one statement per table.
_TABLES: dict[str, list[tuple[str, str]]] = {
    "hub_database": [("hk_database", "bytea"), ("system_id", "text"), ("database_name", "text"),
                     ("record_source", "text")],
    "hub_object": [("hk_object", "bytea"), ("system_id", "text"), ("database_name", "text"),
                   ("object_identity", "text"), ("record_source", "text")],
    "hub_actor": [("hk_actor", "bytea"), ("system_id", "text"), ("role_name", "text"), ("record_source", "text")],
    "hub_tenant": [("hk_tenant", "bytea"), ("tenant_id", "text"), ("record_source", "text")],
    "hub_script": [("hk_script", "bytea"), ("script_name", "text"), ("record_source", "text")],
    # the event itself: a non-historized link (sql/vault/007_event_link.sql), with a row change's
    # payload (null for the other kinds, whose payloads are in their satellites)
    "link_event": [("hk_event", "bytea"), ("event_id", "uuid"), ("hk_database", "bytea"), ("hk_object", "bytea"),
                   ("hk_actor", "bytea"), ("hk_tenant", "bytea"), ("kind", "text"), ("schema_version", "integer"),
                   ("xid", "bigint"), ("commit_lsn", "pg_lsn"), ("change_lsn", "pg_lsn"), ("position", "integer"),
                   ("commit_time", "timestamptz"), ("session_user_name", "text"), ("current_user_name", "text"),
                   ("application_name", "text"), ("client_addr", "text"), ("backend_pid", "integer"),
                   ("tenant_id", "text"), ("tags", "text[]"), ("record_source", "text"),
                   ("operation", "text"), ("schema_name", "text"), ("table_name", "text"), ("primary_key", "jsonb"),
                   ("new_values", "jsonb"), ("old_values", "jsonb"), ("changed_columns", "text[]"),
                   ("redacted", "jsonb"), ("unchanged_toast", "text[]")],
    "link_script_event": [("hk_script_event", "bytea"), ("hk_script", "bytea"), ("hk_event", "bytea"),
                          ("execution_id", "uuid"), ("record_source", "text")],
    "sat_ddl": [("hk_event", "bytea"), ("command_tag", "text"), ("object_type", "text"), ("schema_name", "text"),
                ("object_identity", "text"), ("statement", "text"), ("definition", "jsonb"), ("rewrite", "boolean"),
                ("cascade_drop", "boolean"), ("parent_identity", "text"), ("execution_id", "uuid"),
                ("untracked", "boolean"), ("managed_by", "text"), ("record_source", "text")],
    "sat_oversize_value": [("hk_event", "bytea"), ("path", "text"), ("size_bytes", "bigint"), ("sha256", "text"),
                           ("fetch_from", "jsonb"), ("record_source", "text")],
    "sat_operation": [("hk_event", "bytea"), ("operation_id", "uuid"), ("name", "text"), ("operation_type", "text"),
                      ("status", "text"), ("duration_ms", "double precision"), ("details", "jsonb"),
                      ("error", "text"), ("error_state", "text"), ("record_source", "text")],
    "sat_script_execution": [("hk_event", "bytea"), ("execution_id", "uuid"), ("status", "text"),
                             ("script_name", "text"), ("script_type", "text"), ("category", "text"),
                             ("file_path", "text"), ("version", "text"), ("checksum", "text"),
                             ("size_bytes", "bigint"), ("business_justification", "text"),
                             ("ticket_number", "text"), ("rows_affected", "bigint"),
                             ("duration_ms", "double precision"), ("error", "text"), ("error_state", "text"),
                             ("failed_statement", "text"), ("step_at", "timestamptz"), ("record_source", "text")],
    "sat_security_event": [("hk_event", "bytea"), ("reason", "text"), ("prefix", "text"),
                           ("transactional", "boolean"), ("claimed_kind", "text"), ("content", "text"),
                           ("content_bytes", "integer"), ("record_source", "text")],
    "sat_log_entry": [("hk_event", "bytea"), ("log_format", "text"), ("origin", "text"), ("line", "bigint"),
                      ("category", "text"), ("command_tag", "text"), ("object_type", "text"),
                      ("object_identity", "text"), ("statement", "text"), ("status", "text"), ("error", "text"),
                      ("error_state", "text"), ("duration_ms", "double precision"), ("severity", "text"),
                      ("session_id", "text"), ("session_line", "bigint"), ("virtual_xid", "text"),
                      ("xid", "bigint"), ("query_id", "bigint"), ("backend_type", "text"), ("audit", "jsonb"),
                      ("simulated", "boolean"), ("record_source", "text")],
}
# History satellites: (hk_object, hk_event, effective_at, commit_lsn, position, hash_diff, <payload...>, source).
_HISTORY: dict[str, list[tuple[str, str]]] = {
    "sat_object_definition": [("dropped", "boolean"), ("definition", "jsonb")],
    "sat_object_compliance": [("tags", "text[]"), ("columns", "jsonb")],
}
_HISTORY_KEY = [("hk_object", "bytea"), ("hk_event", "bytea"), ("effective_at", "timestamptz"),
                ("commit_lsn", "pg_lsn"), ("position", "integer"), ("hash_diff", "bytea")]
_TYPES = {**_TABLES, **{n: _HISTORY_KEY + e + [("record_source", "text")] for n, e in _HISTORY.items()}}

class _LsnBinary(Dumper):
    """pg_lsn in COPY's binary format (an 8-byte integer) from its text form 'X/Y', which psycopg
    has no dumper for. Bad text is the same data error the server would raise for it."""
    format = Format.BINARY
    oid = postgres.types["pg_lsn"].oid

    def dump(self, obj: str) -> bytes:
        return _lsn_bytes(obj)


@lru_cache(maxsize=4096)   # a transaction's events share their commit LSN
def _lsn_bytes(obj: str) -> bytes:
    hi, slash, lo = obj.partition("/")
    try:
        if not slash or len(hi) > 8 or len(lo) > 8:
            raise ValueError(obj)
        return ((int(hi, 16) << 32) | int(lo, 16)).to_bytes(8, "big")
    except ValueError:
        raise psycopg.errors.InvalidTextRepresentation(
            f'invalid input syntax for type pg_lsn: "{obj[:40]}"') from None


class _JsonbText(Dumper):
    """jsonb in COPY's binary format from JSON text that msgspec has already written (once per
    value, instead of psycopg's json.dumps)."""
    format = Format.BINARY
    oid = postgres.types["jsonb"].oid

    def dump(self, obj: str) -> bytes:
        return b"\x01" + obj.encode()


_TEXT_OID = postgres.types["text"].oid
_EMPTY_ARRAY = struct.pack("!iiI", 0, 0, _TEXT_OID)


class _TextArray(Dumper):
    """text[] in COPY's binary format from a list of str: psycopg's generic array dumper costs a few
    microseconds per value, three times per row change (tags, changed columns, unchanged TOAST)."""
    format = Format.BINARY
    oid = postgres.types["text"].array_oid

    def dump(self, obj: list) -> bytes:
        if not obj:
            return _EMPTY_ARRAY
        return _text_array(tuple(obj))   # the same few tag sets and column lists, row after row


@lru_cache(maxsize=4096)
def _text_array(obj: tuple) -> bytes:
    if None in obj:
        raise psycopg.errors.NullValueNotAllowed("a text[] value of the vault holds a null")
    items = [item.encode() for item in obj]
    return b"".join([struct.pack("!iiIii", 1, 0, _TEXT_OID, len(items), 1),
                     *(struct.pack("!i", len(item)) + item for item in items)])


def _stage(name: str) -> str:
    return f"pgtrail_stage_{name}"


# Staging columns hold pg_lsn and jsonb as text: psycopg's C dumper writes str, where a Python
# dumper (_LsnBinary, _JsonbText) would be called for every value; the INSERT ... SELECT casts them
# (the server parses them either way). A bad value is then refused at the INSERT, as a data error.
_AS_TEXT = {"pg_lsn", "jsonb"}
_STAGE_TYPES = {name: [(c, "text" if t in _AS_TEXT else t) for c, t in cols] for name, cols in _TYPES.items()}


def _stage_ddl(name: str) -> str:
    cols = ", ".join(f"{c} {t}" for c, t in _STAGE_TYPES[name])
    return f"create temp table if not exists {_stage(name)} ({cols}) on commit delete rows"


def _columns(name: str, alias: str = "") -> str:
    return ", ".join(f"{alias}{c}" for c, _ in _TYPES[name])


def _from_stage(name: str, alias: str = "") -> str:
    """The select list that gives a staging table's columns their vault types."""
    return ", ".join(f"{alias}{c}::{t} as {c}" if t in _AS_TEXT else f"{alias}{c}" for c, t in _TYPES[name])


_COPY = {name: f"copy {_stage(name)} ({_columns(name)}) from stdin (format binary)" for name in _TYPES}
_COPY_DIRECT = {name: f"copy vault.{name} ({_columns(name)}) from stdin (format binary)" for name in _TABLES}
_COPY_TYPES = {name: [t for _, t in cols] for name, cols in _TYPES.items()}
_STAGE_COPY_TYPES = {name: [t for _, t in cols] for name, cols in _STAGE_TYPES.items()}
_SQL = {name: f"insert into vault.{name} ({_columns(name)}) select {_from_stage(name)} from {_stage(name)} "
              f"on conflict do nothing"
        for name in _TABLES}
# The event link answers with the staged events it did not insert (the vault had them): usually
# none, so a batch of new events costs no rows back.
_SQL["link_event"] = (f"with ins as ({_SQL['link_event']} returning hk_event) "
                      f"select s.event_id from {_stage('link_event')} s "
                      f"where not exists (select from ins where ins.hk_event = s.hk_event)")
# A history row only when its hash diff differs from the row before it in WAL order: the previous
# row of the batch for the same object, else the object's latest row already in the vault.
for _name in _HISTORY:
    _SQL[_name] = (
        f"insert into vault.{_name} ({_columns(_name)}) "
        f"select {_columns(_name, 'b.')} from (select *, lag(u.hash_diff) over "
        f"(partition by u.hk_object order by u.commit_lsn, u.position) as prev_in_batch "
        f"from (select {_from_stage(_name)} from {_stage(_name)}) u) b "
        f"where coalesce(b.prev_in_batch, (select p.hash_diff from vault.{_name} p where p.hk_object = b.hk_object "
        f"and (p.commit_lsn, p.position) < (b.commit_lsn, b.position) "
        f"order by p.commit_lsn desc, p.position desc limit 1)) is distinct from b.hash_diff "
        f"on conflict do nothing")

_HUBS = ["hub_database", "hub_object", "hub_actor", "hub_tenant", "hub_script"]
# The event and what only it holds (keyed by its hash key): new events are written by COPY straight
# into the vault; a batch that holds one event the vault already has takes the set-based path.
_EVENT_TABLES = ["link_event", "sat_ddl", "sat_oversize_value", "sat_operation",
                 "sat_script_execution", "sat_security_event", "sat_log_entry"]
_AFTER_EVENTS = [name for name in _TYPES if name not in _HUBS and name not in _EVENT_TABLES]
_KNOWN_HUBS_MAX = 200_000   # hub keys remembered per table; past that the memory starts again
# rows sort by their key (hash key first) for lock order: concurrent sinks do not deadlock
_SORT_KEY = {name: itemgetter(0) for name in _TYPES}
_SORT_KEY.update({n: itemgetter(0, 1) for n in _HISTORY}, sat_oversize_value=itemgetter(0, 1))

_encode_json = msgspec.json.Encoder(enc_hook=str).encode


def _json(value) -> str | None:
    return None if value is None else _encode_json(value).decode()


_NO_ROW_CHANGE = (None,) * 9   # the link's row-change columns, for every other kind

_hk_database = lru_cache(maxsize=4096)(hk_database)
_hk_object = lru_cache(maxsize=65536)(hk_object)
_hk_actor = lru_cache(maxsize=4096)(hk_actor)
_hk_tenant = lru_cache(maxsize=65536)(hk_tenant)


def rows_for(events: Iterable[Event], record_source: str) -> dict[str, list[tuple]]:
    """Pure: the vault rows a batch of events becomes. Duplicates within a batch are removed."""
    rows: dict[str, dict[bytes, Any]] = {name: {} for name in _TYPES}
    hub_database, hub_object, hub_actor, hub_tenant = (rows["hub_database"], rows["hub_object"], rows["hub_actor"],
                                                       rows["hub_tenant"])
    link_event = rows["link_event"]
    for ev in events:
        src, actor = ev.source, ev.actor
        hdb = _hk_database(src.system_id, src.database)
        ident = object_identity(ev)
        hobj = _hk_object(src.system_id, src.database, ident)
        hev = hk_event(ev.event_id)
        if hdb not in hub_database:
            hub_database[hdb] = (hdb, src.system_id, src.database, record_source)
        if hobj not in hub_object:
            hub_object[hobj] = (hobj, src.system_id, src.database, ident, record_source)
        p = ev.payload
        kind = ev.kind
        ha = ht = None
        if kind == "dml":
            payload = (p.operation, p.schema_name, p.table, _json(p.primary_key), _json(p.new), _json(p.old),
                       list(p.changed_columns), _json(p.redacted), list(p.unchanged_toast))
        else:
            payload = _NO_ROW_CHANGE
        if actor is not None:
            if actor.session_user:
                ha = _hk_actor(src.system_id, actor.session_user)
                if ha not in hub_actor:
                    hub_actor[ha] = (ha, src.system_id, actor.session_user, record_source)
            if actor.tenant_id:
                ht = _hk_tenant(actor.tenant_id)
                if ht not in hub_tenant:
                    hub_tenant[ht] = (ht, actor.tenant_id, record_source)
            link_event[hev] = (
                hev, ev.event_id, hdb, hobj, ha, ht, ev.kind, ev.schema_version, src.xid, src.commit_lsn,
                src.change_lsn, src.position, src.commit_time, actor.session_user, actor.current_user,
                actor.application_name, actor.client_addr, actor.backend_pid, actor.tenant_id, list(ev.tags),
                record_source, *payload)
        else:
            link_event[hev] = (
                hev, ev.event_id, hdb, hobj, None, None, ev.kind, ev.schema_version, src.xid, src.commit_lsn,
                src.change_lsn, src.position, src.commit_time, None, None, None, None, None, None, list(ev.tags),
                record_source, *payload)
        if ev.oversize:
            for ref in ev.oversize:
                rows["sat_oversize_value"][(hev, ref.path)] = (hev, ref.path, ref.size_bytes, ref.sha256,
                                                               _json(ref.fetch), record_source)
        if kind == "ddl":
            definition = _json(p.definition)
            rows["sat_ddl"][hev] = (hev, p.command_tag, p.object_type, p.schema_name, p.object_identity,
                                    p.statement, definition, p.rewrite, p.cascade, p.parent_identity,
                                    p.execution_id, p.untracked, p.managed_by, record_source)
            if p.execution_id is not None:
                _link_script(rows, None, p.execution_id, hev, record_source)
            if src.commit_lsn is not None and (p.definition is not None or p.command_tag.startswith("DROP")):
                dropped = p.definition is None
                key = (hobj, hev, src.commit_time, src.commit_lsn, src.position)
                rows["sat_object_definition"][hev] = (*key, hash_diff(p.definition), dropped, definition,
                                                      record_source)
                columns = _classified_columns(p.definition)
                if columns is not None:
                    rows["sat_object_compliance"][hev] = (*key, hash_diff([ev.tags, columns]), list(ev.tags),
                                                          _json(columns), record_source)
        elif kind == "operation":
            rows["sat_operation"][hev] = (hev, p.operation_id, p.name, p.operation_type, p.status, p.duration_ms,
                                          _json(p.details), p.error, p.error_state, record_source)
        elif kind == "script":
            _link_script(rows, p.script_name, p.execution_id, hev, record_source)
            rows["sat_script_execution"][hev] = (
                hev, p.execution_id, p.status, p.script_name, p.script_type, p.category, p.file_path, p.version,
                p.checksum, p.size_bytes, p.business_justification, p.ticket_number, p.rows_affected,
                p.duration_ms, p.error, p.error_state, p.failed_statement, p.at, record_source)
        elif kind == "security":
            rows["sat_security_event"][hev] = (hev, p.reason, p.prefix, p.transactional, p.claimed_kind,
                                               p.content, p.content_bytes, record_source)
        elif kind == "log_import":
            rows["sat_log_entry"][hev] = (
                hev, p.log_format, p.origin, p.line, p.category, p.command_tag, p.object_type, p.object_identity,
                p.statement, p.status, p.error, p.error_state, p.duration_ms, p.severity, p.session_id,
                p.session_line, p.virtual_xid, p.xid, p.query_id, p.backend_type, _json(p.audit), p.simulated,
                record_source)
    return {name: list(r.values()) for name, r in rows.items()}


def _link_script(rows, script_name: str | None, execution_id, hev: bytes, record_source: str) -> None:
    """Link an event to its script. DDL knows only the execution: its script is found in the vault."""
    if script_name is None:
        rows["link_script_event"][hev] = ("by_execution", execution_id, hev, record_source)
        return
    hs = hk_script(script_name)
    rows["hub_script"][hs] = (hs, script_name, record_source)
    hl = hk_link(hs, hev)
    rows["link_script_event"][hl] = (hl, hs, hev, execution_id, record_source)


def _classified_columns(definition: dict | None) -> dict[str, Any] | None:
    if not isinstance(definition, dict) or not isinstance(definition.get("columns"), list):
        return None
    return {c["name"]: {"classification": c["classification"], "policy": c.get("policy")}
            for c in definition["columns"] if c.get("classification")}


def connect_vault(dsn: str) -> psycopg.Connection:
    """A vault connection for loading: a server that is down or restarting is worth retrying."""
    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=10, application_name="pgtrail-sink")
    except psycopg.OperationalError as exc:
        raise Retryable(f"cannot connect to the vault: {str(exc).strip().splitlines()[-1]}") from exc


class VaultLoader:
    """Writes events into the vault, insert-only.

    A batch of new events (the usual case) is written by binary COPY straight into the event link
    and its satellites, under a savepoint. When one of them is already there (a replay after a
    crash, a second sink on the same topics) the unique key refuses the COPY, the savepoint is rolled
    back and the batch goes the set-based way: COPY into staging tables, then INSERT ... SELECT ...
    ON CONFLICT DO NOTHING. Hubs and history satellites always go the set-based way; hub keys this
    loader has seen committed are not written again (hubs are never deleted).

    Guarantee: when `load` returns, the batch is committed; when it raises, nothing of it is.
    Replays and concurrent sinks are harmless: every row's key is derived from the event id.
    """

    def __init__(self, conn: psycopg.Connection, record_source: str = RECORD_SOURCE):
        self.conn = conn
        self.record_source = record_source
        self._known: dict[str, set[bytes]] = {name: set() for name in _HUBS}
        conn.adapters.register_dumper(None, _LsnBinary)   # used by COPY ... set_types() only
        conn.adapters.register_dumper(None, _JsonbText)
        conn.adapters.register_dumper(None, _TextArray)
        # bytea by oid is psycopg's Python dumper for dbapi20.Binary (two Python calls per value,
        # three keys a row); the C dumper for bytes does the same for what rows_for gives it
        conn.adapters.register_dumper(None, conn.adapters.get_dumper(bytes, PyFormat.BINARY))
        self._staging: set[str] = set()   # this session's staging tables (they live as long as it)

    def _create_staging(self, rows: dict[str, list[tuple]]) -> None:
        """The staging tables a batch needs that this session lacks, made before its transaction
        (one made inside would go with a rollback). Only those: PostgreSQL empties every ON COMMIT
        DELETE ROWS table of the session at each commit, ~0.2 ms a table here even when empty."""
        needed = {name for name, table_rows in rows.items() if table_rows}
        if rows["link_script_event"]:
            needed.add("hub_script")    # the script hubs a DDL's execution id leads to
        if not needed - self._staging:
            return
        with self.conn.transaction():
            for name in sorted(needed - self._staging):
                self.conn.execute(_stage_ddl(name))
        self._staging |= needed

    def load(self, events: list[Event], rows: dict[str, list[tuple]] | None = None) -> set[UUID]:
        """`rows`: rows_for(events, record_source) made beforehand (by the sink, on its other thread)."""
        if rows is None:
            rows = rows_for(events, self.record_source)
        self._create_staging(rows)
        written: dict[str, list[tuple]] = {}
        with self.conn.transaction():
            with self.conn.cursor() as cur:
                # sorted keys: concurrent sinks take row locks in one order, so they do not deadlock
                for name in _HUBS:
                    known = self._known[name]
                    written[name] = [row for row in rows[name] if row[0] not in known]
                    self._move(cur, name, written[name])
                try:
                    with self.conn.transaction():   # a savepoint
                        for name in _EVENT_TABLES:
                            self._copy(cur, _COPY_DIRECT[name], _COPY_TYPES[name], name, rows[name])
                    new = {row[1] for row in rows["link_event"]}
                except psycopg.errors.UniqueViolation:
                    had = {row[0] for row in self._move(cur, "link_event", rows["link_event"], returning=True)}
                    new = {row[1] for row in rows["link_event"] if row[1] not in had}
                    for name in _EVENT_TABLES[1:]:
                        self._move(cur, name, rows[name])
                hubs = self._resolve_script_links(cur, rows["link_script_event"], rows["sat_script_execution"])
                if hubs:
                    cur.execute(f"delete from {_stage('hub_script')}")  # emptied at commit; here used twice
                    self._move(cur, "hub_script", hubs)
                for name in _AFTER_EVENTS:
                    self._move(cur, name, rows[name])
        self._remember(written)
        return new

    def _remember(self, written: dict[str, list[tuple]]) -> None:
        for name, hub_rows in written.items():   # committed: not written again by this loader
            known = self._known[name]
            if len(known) + len(hub_rows) > _KNOWN_HUBS_MAX:
                known.clear()
            known.update(row[0] for row in hub_rows)

    def _copy(self, cur, statement: str, types: list[str], name: str, rows: list[tuple]) -> None:
        if not rows:
            return
        rows.sort(key=_SORT_KEY[name])
        with cur.copy(statement) as copy:
            copy.set_types(types)
            write = copy.write_row
            for row in rows:
                write(row)

    def _move(self, cur, name: str, rows: list[tuple], returning: bool = False) -> list:
        """COPY the rows into the table's staging table, then into the vault in one statement.
        `returning`: the event link's rows the vault had already (their event ids)."""
        if not rows:
            return []
        self._copy(cur, _COPY[name], _STAGE_COPY_TYPES[name], name, rows)
        cur.execute(_SQL[name])
        return cur.fetchall() if returning else []

    def _resolve_script_links(self, cur, links: list[tuple], executions: list[tuple]) -> list[tuple]:
        """DDL run by a script knows the execution id; its script name comes from the execution's
        start: in this batch, or loaded before (same session, earlier in the WAL). Returns the
        script hubs the links found need."""
        pending = [link for link in links if link[0] == "by_execution"]
        if not pending:
            return []
        links[:] = [link for link in links if link[0] != "by_execution"]
        names = {row[1]: row[3] for row in executions if row[3]}  # execution_id -> script_name
        missing = [link[1] for link in pending if link[1] not in names]
        if missing:
            cur.execute("select distinct on (execution_id) execution_id, script_name from vault.sat_script_execution "
                        "where execution_id = any(%s) and script_name is not null", (missing,))
            names.update(dict(cur.fetchall()))
        hubs: dict[bytes, tuple] = {}
        for _, execution_id, hev, source in pending:
            name = names.get(execution_id)
            if name is None:
                continue  # the start is not in the vault (yet): the DDL keeps its execution id in sat_ddl
            hs = hk_script(name)
            hubs[hs] = (hs, name, source)
            links.append((hk_link(hs, hev), hs, hev, execution_id, source))
        return list(hubs.values())

    def stage(self, events: list[Event], rows: dict[str, list[tuple]] | None = None) -> "Staged":
        """The first half of `load`, for overlapping batches (PairedLoader): a transaction is begun
        and the batch written by COPY into this session's staging tables only (no vault row, no
        lock). `Staged.send()` sends the rest without waiting, `Staged.result()` waits for it."""
        if rows is None:
            rows = rows_for(events, self.record_source)
        if self.conn.pgconn.transaction_status != pq.TransactionStatus.IDLE:
            raise RuntimeError("stage() on a session whose last batch is not finished")
        written = {name: [row for row in rows[name] if row[0] not in self._known[name]] for name in _HUBS}
        self._create_staging({**rows, **written})
        staged = Staged(self, rows, written)
        self.conn.execute("begin")
        try:
            with self.conn.cursor() as cur:
                for name in _STAGED_ORDER:
                    table_rows = written[name] if name in written else rows[name]
                    if table_rows and name != "link_script_event":   # links: at send, once resolved
                        self._copy(cur, _COPY[name], _STAGE_COPY_TYPES[name], name, table_rows)
                        staged.tables.append(name)
        except BaseException:
            staged.abort()
            raise
        return staged

    def close(self) -> None:
        self.conn.close()


# The statements that move a staged batch into the vault, in the order `load` writes them.
_STAGED_ORDER = _HUBS + _EVENT_TABLES + _AFTER_EVENTS
# The event tables first by plain INSERT ... SELECT (no ON CONFLICT: a quarter less server work on
# the event link), under a savepoint; a batch holding one event the vault has is refused by the
# unique key and goes again the ON CONFLICT way from the savepoint.
_PLAIN = {name: f"insert into vault.{name} ({_columns(name)}) select {_from_stage(name)} from {_stage(name)}"
          for name in _EVENT_TABLES}
_SAVEPOINT = "savepoint pgtrail_events"
_RELEASE = "release savepoint pgtrail_events"
_ROLLBACK_TO = "rollback to savepoint pgtrail_events"


class Staged:
    """One batch in one session's staging tables, its transaction open (VaultLoader.stage).

    `send()` resolves the batch's script links, then sends every INSERT ... SELECT and the COMMIT
    as one query, without waiting: the server moves the batch while the caller goes on (stages the
    next batch on another session). `result()` waits for the commit and returns the ids of the
    events that were new; if the vault had one of the batch's events already, it goes on from the
    savepoint the ON CONFLICT DO NOTHING way first. On any other error the transaction is rolled
    back and the error raised: then nothing of the batch is in the vault and it can be loaded again.
    """

    def __init__(self, loader: VaultLoader, rows: dict[str, list[tuple]], written: dict[str, list[tuple]]):
        self.loader = loader
        self.rows = rows
        self.written = written      # hub rows not known to be in the vault
        self.tables: list[str] = []  # staged, in _STAGED_ORDER

    def _statements(self, events_plain: bool) -> list[str]:
        """What moves the staged tables into the vault, from the first event table on."""
        events = [name for name in self.tables if name in _PLAIN]
        after = [_SQL[name] for name in self.tables if name in _AFTER_EVENTS]
        if not events:
            return [*after, "commit"]
        if not events_plain:
            return [*(_SQL[name] for name in events), _RELEASE, *after, "commit"]
        return [_SAVEPOINT, *(_PLAIN[name] for name in events), _RELEASE, *after, "commit"]

    def send(self) -> None:
        conn = self.loader.conn
        try:
            links = self.rows["link_script_event"]
            with conn.cursor() as cur:
                hubs = self.loader._resolve_script_links(cur, links, self.rows["sat_script_execution"])
                for name, table_rows in (("hub_script", hubs), ("link_script_event", links)):
                    if table_rows:
                        self.loader._copy(cur, _COPY[name], _STAGE_COPY_TYPES[name], name, table_rows)
                        if name not in self.tables:
                            self.tables.append(name)
            self.tables.sort(key=_STAGED_ORDER.index)
            hub_inserts = [_SQL[name] for name in self.tables if name in _HUBS]
            self._send([*hub_inserts, *self._statements(events_plain=True)])
        except BaseException:
            self.abort()
            raise

    def _send(self, statements: list[str]) -> None:
        self._sent = statements
        self.loader.conn.pgconn.send_query(";\n".join(statements).encode())

    def result(self) -> set[UUID]:
        had: set[UUID] = set()
        error, failed = self._results(had)
        if isinstance(error, psycopg.errors.UniqueViolation) and failed in _PLAIN.values():
            self._send([_ROLLBACK_TO, *self._statements(events_plain=False)])   # a replay: from the savepoint
            error, failed = self._results(had)
        if error is not None or self.loader.conn.pgconn.transaction_status != pq.TransactionStatus.IDLE:
            self.abort()
            raise error or psycopg.OperationalError("the vault transaction did not commit")
        self.loader._remember(self.written)
        return {row[1] for row in self.rows["link_event"] if row[1] not in had}

    def _results(self, had: set[UUID]) -> tuple[psycopg.Error | None, str | None]:
        """Reads the results of what was sent: the first error and the statement that raised it.
        A result with rows is the event link's list of the events the vault had already."""
        conn = self.loader.conn
        pgconn = conn.pgconn
        error: psycopg.Error | None = None
        failed = None
        i = 0
        try:
            while True:
                while pgconn.is_busy():
                    select.select([pgconn.socket], [], [], 1.0)
                    pgconn.consume_input()
                res = pgconn.get_result()
                if res is None:
                    break
                if res.status == pq.ExecStatus.TUPLES_OK:
                    had.update(UUID(res.get_value(r, 0).decode()) for r in range(res.ntuples))
                elif res.status != pq.ExecStatus.COMMAND_OK and error is None:
                    error = psycopg.errors.error_from_result(res, encoding=conn.info.encoding)
                    failed = self._sent[i] if i < len(self._sent) else None
                i += 1
        except psycopg.Error as exc:
            error = error or exc
        return error, failed

    def abort(self) -> None:
        """Roll the batch back (a broken connection rolls it back by itself)."""
        try:
            if self.loader.conn.pgconn.transaction_status != pq.TransactionStatus.IDLE:
                self.loader.conn.execute("rollback")
        except psycopg.Error:
            pass


class PairedLoader:
    """Two vault sessions, so that batches overlap: batch N is staged (COPY into staging tables,
    the client's work) on one while batch N-1's INSERTs and COMMIT run on the server in the other.
    The caller (SinkService) sends N's INSERTs only after N-1's commit, so the vault sees the
    batches one after the other, in order, as with one session: history satellites compare each
    row with the committed row before it, and no two batches of one sink hold locks at once.

    `load` is VaultLoader.load on a session with nothing open (the sequential way: tests, a batch
    that failed the overlapped way, a batch searched event by event for the bad one)."""

    overlapping = True

    def __init__(self, connect: Callable[[], psycopg.Connection], record_source: str = RECORD_SOURCE):
        self._loaders = [VaultLoader(connect(), record_source)]
        try:
            self._loaders.append(VaultLoader(connect(), record_source))
        except BaseException:
            self.close()
            raise
        self._next = 0

    def stage(self, events: list[Event], rows: dict[str, list[tuple]] | None = None) -> Staged:
        loader = self._loaders[self._next]
        self._next ^= 1
        return loader.stage(events, rows)

    def load(self, events: list[Event], rows: dict[str, list[tuple]] | None = None) -> set[UUID]:
        idle = [ld for ld in self._loaders if ld.conn.pgconn.transaction_status == pq.TransactionStatus.IDLE]
        return (idle or self._loaders)[0].load(events, rows)

    def close(self) -> None:
        for loader in self._loaders:
            try:
                loader.close()
            except Exception:  # noqa: BLE001 - closing what may be broken already
                pass
