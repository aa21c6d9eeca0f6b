"""pgtrail events: the only definition. JSON Schema for subscribers is generated from these models.

Every event carries its deterministic id, its kind, where it came from (`Source`), who caused it
(`Actor`, when known), compliance tags, and a kind-specific payload.
"""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Union
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from schemas.ids import quote_ident

SCHEMA_VERSION = 1

EventKind = Literal["ddl", "dml", "operation", "script", "heartbeat", "security", "log_import"]
EVENT_KINDS: tuple[str, ...] = EventKind.__args__  # type: ignore[attr-defined]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Model):
    """Where and when: one position in one database's WAL."""

    system_id: str = Field(description="pg_control_system() system identifier of the source cluster")
    database: str
    slot: str
    xid: int | None = None
    commit_lsn: str | None = Field(None, description="LSN of the transaction's commit record; null for non-transactional messages")
    change_lsn: str | None = None
    position: int = Field(0, ge=0, description="index of the change inside its transaction")
    commit_time: datetime | None = None


class Actor(_Model):
    """Who: the session that made the change."""

    session_user: str | None = None
    current_user: str | None = None
    application_name: str | None = None
    client_addr: str | None = None
    backend_pid: int | None = None
    tenant_id: str | None = None


class OversizeValue(_Model):
    """A value too large for Kafka's message limit, left out of the event (consumer/oversize.py)."""

    path: str = Field(description="where it was: payload.new.<column>, payload.old.<column>, payload.statement, ...")
    size_bytes: int = Field(ge=0, description="its size: UTF-8 bytes of a text value, else of its JSON text")
    sha256: str = Field(description="hex SHA-256 of those bytes, to check a value fetched later")
    fetch: dict[str, Any] | None = Field(None, description="where to read it: table, column and the row's "
                                                           "primary key (the current value, which may be newer)")


class _EventBase(_Model):
    schema_version: int = Field(SCHEMA_VERSION, ge=1, le=SCHEMA_VERSION,
                                description="versions before this one still parse; a newer one is refused, never misread")
    event_id: UUID
    source: Source
    actor: Actor | None = Field(None, description="null when the change carried no attribution")
    tags: list[str] = Field(default_factory=list, description="compliance tags (PII, PHI, FINANCIAL, HIPAA, GDPR, SOX)")
    oversize: list[OversizeValue] = Field(
        default_factory=list, description="values left out because the event would exceed Kafka's message limit; "
                                          "a column left out of `new`/`old` is listed here, never sent as null")

    def object_key(self) -> str:
        """Kafka key: database.schema.object, so one object's events stay ordered."""
        raise NotImplementedError

    @property
    def time(self) -> datetime | None:
        return self.source.commit_time


class DdlPayload(_Model):
    command_tag: str
    object_type: str | None = None
    schema_name: str | None = None
    object_identity: str | None = Field(None, description="null for GRANT/REVOKE, which PostgreSQL reports without one")
    statement: str | None = Field(None, description="the whole client string (current_query()) that ran the command")
    definition: dict[str, Any] | None = Field(None, description="the object after the change; null after DROP")
    rewrite: bool = Field(False, description="the command rewrote the table (table_rewrite fired)")
    cascade: bool = Field(False, description="dropped because something it depended on was dropped")
    parent_identity: str | None = Field(None, description="the table of a column-level change (COMMENT ON COLUMN)")
    table_identity: str | None = Field(None, description="the table a trigger, constraint, policy or rule belongs to: "
                                                         "its events are keyed (and partitioned) with the table's")
    execution_id: UUID | None = Field(None, description="the tracked script or migration that ran this DDL")
    untracked: bool = Field(False, description="no tracked script or migration was running in the session")
    managed_by: str | None = Field(None, description="pgtrail's own DDL ('pgtrail install', 'pgtrail tracking': "
                                                     "the tracking trigger): attributed to pgtrail, never drift")


class DdlEvent(_EventBase):
    kind: Literal["ddl"] = "ddl"
    payload: DdlPayload

    def object_key(self) -> str:
        # a column-level change goes with its table, so one table's events stay in one partition, in order
        p = self.payload
        return f"{self.source.database}.{p.parent_identity or p.table_identity or p.object_identity or p.command_tag}"


class DmlPayload(_Model):
    operation: Literal["insert", "update", "delete", "truncate"]
    schema_name: str
    table: str
    primary_key: dict[str, Any] = Field(default_factory=dict)
    new: dict[str, Any] | None = None
    old: dict[str, Any] | None = Field(None, description="replica identity columns before an update or delete")
    changed_columns: list[str] = Field(default_factory=list)
    unchanged_toast: list[str] = Field(
        default_factory=list, description="columns an UPDATE left unchanged whose values wal2json does not send "
                                          "(TOASTed): absent from `new`, never null")
    redacted: dict[str, Literal["mask", "hash", "drop"]] = Field(
        default_factory=dict, description="sensitive columns whose values were masked, hashed or dropped")


class DmlEvent(_EventBase):
    kind: Literal["dml"] = "dml"
    payload: DmlPayload

    def object_key(self) -> str:
        # as the table's DDL events name it (pg_identify_object): one table, one key, one partition
        return f"{self.source.database}.{quote_ident(self.payload.schema_name)}.{quote_ident(self.payload.table)}"


class OperationPayload(_Model):
    operation_id: UUID
    name: str
    operation_type: str
    status: Literal["completed", "failed"] = "completed"
    duration_ms: float | None = None
    details: dict[str, Any] | None = None
    error: str | None = None
    error_state: str | None = None
    at: datetime | None = Field(None, description="when it happened at the source (failures have no commit time)")


class OperationEvent(_EventBase):
    kind: Literal["operation"] = "operation"
    payload: OperationPayload

    @property
    def time(self) -> datetime | None:
        return self.source.commit_time or self.payload.at

    def object_key(self) -> str:
        return f"{self.source.database}.operation.{self.payload.name}"


class ScriptPayload(_Model):
    """One step of a script execution: started, then completed or failed (same execution_id)."""

    execution_id: UUID
    status: Literal["started", "completed", "failed"]
    script_name: str | None = None
    script_type: str | None = None
    category: str | None = None
    file_path: str | None = None
    version: str | None = None
    checksum: str | None = Field(None, description="sha256 of the content with line endings normalised")
    size_bytes: int | None = None
    business_justification: str | None = None
    ticket_number: str | None = None
    rows_affected: int | None = None
    duration_ms: float | None = None
    error: str | None = None
    error_state: str | None = None
    failed_statement: str | None = None
    at: datetime | None = Field(None, description="when the step happened at the source (failures have no commit time)")


class ScriptEvent(_EventBase):
    kind: Literal["script"] = "script"
    payload: ScriptPayload

    @property
    def time(self) -> datetime | None:
        # started and failed steps are non-transactional messages: no commit, their own time
        return self.source.commit_time or self.payload.at

    def object_key(self) -> str:
        return f"{self.source.database}.script.{self.payload.execution_id}"


class HeartbeatPayload(_Model):
    sent_at: float = Field(description="source clock, seconds since the epoch, when the heartbeat was written")


class HeartbeatEvent(_EventBase):
    kind: Literal["heartbeat"] = "heartbeat"
    payload: HeartbeatPayload

    def object_key(self) -> str:
        return f"{self.source.database}.heartbeat"


class SecurityPayload(_Model):
    """A message with pgtrail's prefix that the tracking functions did not write."""

    reason: str
    prefix: str
    transactional: bool
    claimed_kind: str | None = None
    content: str = Field(description="the message as found, cut to 64 KiB")
    content_bytes: int


class SecurityEvent(_EventBase):
    kind: Literal["security"] = "security"
    payload: SecurityPayload

    def object_key(self) -> str:
        return f"{self.source.database}.security"


LogCategory = Literal["ddl", "dml", "query", "utility", "transaction", "role", "database", "system",
                      "connection", "disconnection", "error", "other"]


class LogImportPayload(_Model):
    """One entry found in a PostgreSQL server log: a statement (with its duration and outcome when
    the log has them), a connection, or an error without a statement.

    Role, database and system commands (CREATE ROLE, CREATE DATABASE, ALTER SYSTEM ...) are what
    event triggers cannot see; a log is the only witness to them from before tracking existed.
    """

    log_format: Literal["stderr", "csvlog", "jsonlog"]
    origin: str = Field(description="file the entry came from, or 'sql' for script_tracking.import_postgres_logs")
    line: int = Field(ge=1, description="first line of the entry in its input (1-based)")
    category: LogCategory
    command_tag: str | None = Field(None, description="e.g. CREATE TABLE, UPDATE, ALTER SYSTEM")
    object_type: str | None = None
    object_identity: str | None = Field(None, description="the object named by the statement, as written in it")
    statement: str | None = None
    status: Literal["ok", "failed"] = "ok"
    error: str | None = None
    error_state: str | None = Field(None, description="SQLSTATE of the error, when the log has it")
    duration_ms: float | None = None
    severity: str | None = Field(None, description="LOG, ERROR, FATAL ... as the server wrote it")
    session_id: str | None = Field(None, description="%c: the server session id")
    session_line: int | None = Field(None, description="%l: the line number inside the session")
    virtual_xid: str | None = None
    xid: int | None = None
    query_id: int | None = None
    backend_type: str | None = None
    audit: dict[str, Any] | None = Field(None, description="the fields of a pgaudit AUDIT line")
    simulated: bool = Field(False, description="made up by script_tracking.import_historical_operations for demos; never real history")


class LogImportEvent(_EventBase):
    kind: Literal["log_import"] = "log_import"
    payload: LogImportPayload

    def object_key(self) -> str:
        p = self.payload
        return f"{self.source.database}.{p.object_identity or p.command_tag or p.category}"


Event = Annotated[Union[DdlEvent, DmlEvent, OperationEvent, ScriptEvent, HeartbeatEvent, SecurityEvent,
                        LogImportEvent],
                  Field(discriminator="kind")]
event_adapter: TypeAdapter[Event] = TypeAdapter(Event)


def parse_event(data: bytes | str) -> Event:
    """Parse one JSON event body; raises pydantic.ValidationError on anything malformed."""
    return event_adapter.validate_json(data)
