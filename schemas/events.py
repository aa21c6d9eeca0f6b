"""pgtrail events: the only definition. JSON Schema for subscribers is generated from these models.

Every event carries its deterministic id, its kind, where it came from (`Source`), who caused it
(`Actor`, when known), compliance tags, and a kind-specific payload.
"""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Union
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

SCHEMA_VERSION = 1

EventKind = Literal["ddl", "dml", "operation"]


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


class _EventBase(_Model):
    schema_version: int = SCHEMA_VERSION
    event_id: UUID
    source: Source
    actor: Actor | None = Field(None, description="null when the change carried no attribution")
    tags: list[str] = Field(default_factory=list, description="compliance tags (PII, PHI, FINANCIAL, HIPAA, GDPR, SOX)")

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
    object_identity: str | None = None
    statement: str | None = None


class DdlEvent(_EventBase):
    kind: Literal["ddl"] = "ddl"
    payload: DdlPayload

    def object_key(self) -> str:
        return f"{self.source.database}.{self.payload.object_identity or self.payload.command_tag}"


class DmlPayload(_Model):
    operation: Literal["insert", "update", "delete", "truncate"]
    schema_name: str
    table: str
    primary_key: dict[str, Any] = Field(default_factory=dict)
    new: dict[str, Any] | None = None
    old: dict[str, Any] | None = Field(None, description="replica identity columns before an update or delete")
    changed_columns: list[str] = Field(default_factory=list)


class DmlEvent(_EventBase):
    kind: Literal["dml"] = "dml"
    payload: DmlPayload

    def object_key(self) -> str:
        return f"{self.source.database}.{self.payload.schema_name}.{self.payload.table}"


class OperationPayload(_Model):
    operation_id: UUID
    name: str
    operation_type: str


class OperationEvent(_EventBase):
    kind: Literal["operation"] = "operation"
    payload: OperationPayload

    def object_key(self) -> str:
        return f"{self.source.database}.operation.{self.payload.name}"


Event = Annotated[Union[DdlEvent, DmlEvent, OperationEvent], Field(discriminator="kind")]
event_adapter: TypeAdapter[Event] = TypeAdapter(Event)


def parse_event(data: bytes | str) -> Event:
    """Parse one JSON event body; raises pydantic.ValidationError on anything malformed."""
    return event_adapter.validate_json(data)
