"""The one vocabulary shared by every stage: pgtrail's event models (pure, no I/O)."""
from schemas.events import (
    SCHEMA_VERSION,
    Actor,
    DdlEvent,
    DdlPayload,
    DmlEvent,
    DmlPayload,
    Event,
    EventKind,
    HeartbeatEvent,
    HeartbeatPayload,
    LogImportEvent,
    LogImportPayload,
    OperationEvent,
    OperationPayload,
    ScriptEvent,
    ScriptPayload,
    SecurityEvent,
    SecurityPayload,
    Source,
    event_adapter,
    parse_event,
)
from schemas.ids import event_id, log_entry_id

__all__ = [
    "SCHEMA_VERSION", "Actor", "DdlEvent", "DdlPayload", "DmlEvent", "DmlPayload", "Event",
    "EventKind", "HeartbeatEvent", "HeartbeatPayload", "LogImportEvent", "LogImportPayload", "OperationEvent", "OperationPayload",
    "ScriptEvent", "ScriptPayload", "SecurityEvent", "SecurityPayload", "Source", "event_adapter",
    "event_id", "log_entry_id", "parse_event",
]
