"""`pgtrail tail`: follow events live from Kafka, filtered by kind, database and object."""
from __future__ import annotations

import sys
import uuid

from kafka import KafkaConsumer
from pydantic import ValidationError

from pgtrail.errors import Fatal
from publisher.settings import KafkaSettings
from publisher.topics import check_reachable
from schemas import Event, parse_event
from schemas.events import EVENT_KINDS
from sink.loader import object_identity


def summary(ev: Event) -> str:
    who = ev.actor.session_user if ev.actor else "?"
    when = ev.time.strftime("%H:%M:%S") if ev.time else "--:--:--"
    p = ev.payload
    what = {"ddl": lambda: f"{p.command_tag} {p.object_identity or ''} {'(untracked)' if p.untracked else ''}",
            "dml": lambda: f"{p.operation.upper()} {p.schema_name}.{p.table} pk={p.primary_key}",
            "operation": lambda: f"{p.operation_type} {p.name} {p.status}",
            "script": lambda: f"SCRIPT {p.status.upper()} {p.script_name or p.execution_id}",
            "heartbeat": lambda: "heartbeat",
            "security": lambda: f"UNTRUSTED MESSAGE: {p.reason}",
            "log_import": lambda: (f"{'[SIMULATED] ' if p.simulated else ''}[log {p.origin}:{p.line}] "
                                   f"{p.command_tag or p.category.upper()} {p.object_identity or ''} "
                                   f"{'FAILED' if p.status == 'failed' else ''}")}[ev.kind]()
    tags = f" [{','.join(ev.tags)}]" if ev.tags else ""
    return f"{when} {ev.source.database} {ev.kind:<9} {who:<12} {what.strip()}{tags}"


def follow(settings: KafkaSettings, kinds: list[str] | None, database: str | None, obj: str | None,
           as_json: bool, from_beginning: bool, max_events: int = 0) -> int:
    kinds = kinds or [k for k in EVENT_KINDS if k != "heartbeat"]
    unknown = set(kinds) - set(EVENT_KINDS)
    if unknown:
        raise Fatal(f"unknown kind(s) {', '.join(sorted(unknown))}: choose from {', '.join(EVENT_KINDS)}")
    check_reachable(settings)
    consumer = KafkaConsumer(*(settings.topic(k) for k in kinds), **settings.client_options(),
                             group_id=f"pgtrail-tail-{uuid.uuid4().hex[:8]}", enable_auto_commit=False,
                             auto_offset_reset="earliest" if from_beginning else "latest")
    shown = 0
    try:
        while True:
            for batch in consumer.poll(timeout_ms=500).values():
                for rec in batch:
                    try:
                        ev = parse_event(rec.value)
                    except ValidationError:
                        continue  # not an event (the sink dead-letters such records)
                    if database and ev.source.database != database:
                        continue
                    if obj and obj not in (object_identity(ev), ev.object_key().split(".", 1)[-1]):
                        continue
                    print(ev.model_dump_json() if as_json else summary(ev), flush=True)
                    shown += 1
                    if max_events and shown >= max_events:
                        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        consumer.close()
        sys.stdout.flush()
