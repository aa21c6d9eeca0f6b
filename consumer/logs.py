"""Logs handed to the consumer by script_tracking.import_postgres_logs / import_historical_operations.

The same parser as `pgtrail import-logs` (logimport.read_log) turns the log into log_import
events; ids come from the entries' content and the source's system identifier, so the same log
imported from SQL and from a file (with --server <system identifier>) gives the same events.
One operation event named 'import_postgres_logs' follows, carrying the parse report, so the
caller finds in the vault what was read and what was not (with line numbers).
"""
from __future__ import annotations

import io
from typing import Any, Iterator
from uuid import UUID

from logimport import LogFormatError, ParseReport, read_log
from pgtrail.errors import Poison
from schemas import Actor, Event, OperationEvent, OperationPayload, Source


def log_import_events(body: dict[str, Any], system_id: str, source: Source, eid: UUID,
                      actor: Actor | None) -> Iterator[Event]:
    content = body["content"]
    if not isinstance(content, str):
        raise TypeError("content is not text")
    report = ParseReport()
    origin = body.get("origin") or "sql"
    error = None
    try:
        yield from read_log(io.BytesIO(content.encode("utf-8")), origin=origin, log_format=body.get("log_format"),
                            prefix=body.get("log_line_prefix"), server=system_id,
                            simulated=bool(body.get("simulated")), report=report)
    except LogFormatError as exc:
        if report.entries == 0:
            # nothing of it became an event: the message itself goes to the dead-letter topic
            raise Poison(f"log import {body.get('import_id')}: {str(exc).splitlines()[0]}") from exc
        error = str(exc).splitlines()[0]
    details = {"origin": origin, "simulated": bool(body.get("simulated")), "log_format": report.log_format,
               "log_line_prefix": report.prefix, "lines": report.lines, "entries": report.entries,
               "merged": report.merged, "skipped": report.skipped, "unparsed": report.unparsed,
               "unparsed_reasons": dict(report.unparsed_reasons), "notes": report.notes[:20],
               "samples": [{"line": n, "reason": r, "text": t} for n, r, t in report.samples[:20]]}
    yield OperationEvent(event_id=eid, source=source, actor=actor, payload=OperationPayload(
        operation_id=UUID(str(body["import_id"])), name="import_postgres_logs", operation_type="LOG_IMPORT",
        status="failed" if error else "completed", details=details, error=error))
