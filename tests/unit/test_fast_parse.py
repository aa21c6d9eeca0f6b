"""schemas.fast reads what pydantic reads, as the same values: on a corpus of every event kind it
gives the fast Structs, equal to pydantic's models and making the same vault rows; on thousands
of mutated bodies (a field dropped, nulled, given another type or an out-of-range value, an
unknown field added) it never accepts what pydantic refuses, and what it accepts equals pydantic's
reading."""
from __future__ import annotations

import copy
import json
import uuid
from datetime import datetime, timezone
from pathlib import Path

import msgspec
import pytest
from pydantic import ValidationError

from bench.vault import synthetic_events
from schemas.events import LogImportEvent, parse_event
from schemas.fast import parse_event_fast
from sink.loader import rows_for

FIXTURE = Path(__file__).parent / "fixtures" / "events_v1.jsonl"


def _log_import() -> bytes:
    return LogImportEvent(
        event_id=uuid.uuid4(), source=dict(system_id="s", database="d", slot="log-import", position=0,
                                           commit_time=datetime(2026, 1, 5, 1, 2, 3, 456000, tzinfo=timezone.utc)),
        actor=dict(session_user="bob", application_name="psql", backend_pid=42),
        payload=dict(log_format="stderr", origin="f.log", line=7, category="ddl", command_tag="CREATE TABLE",
                     statement="create table t (id int)", duration_ms=1.5, audit={"class": "DDL"})
    ).model_dump_json().encode()


def corpus() -> list[bytes]:
    bodies = FIXTURE.read_bytes().splitlines()
    bodies += [e.model_dump_json().encode() for e in synthetic_events(400)]
    bodies.append(_log_import())
    dml = json.loads(next(b for b in bodies if b'"kind":"dml"' in b))
    dml["oversize"] = [{"path": "payload.new.doc", "size_bytes": 9, "sha256": "ab" * 32,
                        "fetch": {"table": "t", "column": "doc", "primary_key": {"id": 1}}}]
    dml["payload"]["new"] = {"n": 123456789012345678901234567890, "f": 1.5, "s": "1.50", "z": None, "a": [1, "x"]}
    bodies.append(json.dumps(dml).encode())
    return bodies


CORPUS = corpus()


def test_the_corpus_holds_every_kind():
    assert {json.loads(b)["kind"] for b in CORPUS} == {"dml", "ddl", "operation", "script", "heartbeat",
                                                       "security", "log_import"}


@pytest.mark.parametrize("body", CORPUS[:40] + CORPUS[-2:])
def test_every_kind_reads_fast_as_pydantic_reads_it(body):
    fast, model = parse_event_fast(body), parse_event(body)
    assert isinstance(fast, msgspec.Struct), "a valid body must take the fast path"
    assert fast.kind == model.kind
    assert fast.to_model() == model
    assert rows_for([fast], "src") == rows_for([model], "src")


def test_a_batch_of_both_makes_the_rows_of_pydantic_alone():
    fast = [parse_event_fast(b) for b in CORPUS]
    assert rows_for(fast, "src") == rows_for([parse_event(b) for b in CORPUS], "src")


_ODD_VALUES = [None, "5", 5, 5.0, -1, 0, 2 ** 70, True, "true", [], {}, "", "x", "0/16B3748",
               "2026-12-05T07:00:00", "2026-12-05 07:00:00+00", "6a2f41a3-c54c-fce8-32d2-0324e1c32e22",
               "6A2F41A3C54CFCE832D20324E1C32E22", 1e400, "NaN", "a\ud800b", "a\x00b"]


def _paths(doc, prefix=()):
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield prefix + (key,)
            yield from _paths(value, prefix + (key,))


def _mutations(body: bytes):
    doc = json.loads(body)
    objects = [()] + [p for p in _paths(doc) if isinstance(_get(doc, p), dict)]
    for path in _paths(doc):
        parent, key = _get(doc, path[:-1]), path[-1]
        dropped = copy.deepcopy(doc)
        del _get(dropped, path[:-1])[key]
        yield dropped
        for value in _ODD_VALUES:
            if parent[key] == value and type(parent[key]) is type(value):
                continue
            changed = copy.deepcopy(doc)
            _get(changed, path[:-1])[key] = value
            yield changed
    for path in objects:
        extra = copy.deepcopy(doc)
        _get(extra, path)["unexpected"] = 1
        yield extra


def _get(doc, path):
    for key in path:
        doc = doc[key]
    return doc


def _one_of_each_kind() -> list[bytes]:
    seen: dict[str, bytes] = {}
    for body in CORPUS:
        seen.setdefault(json.loads(body)["kind"], body)
    ddl_with_definition = next(b for b in CORPUS if b'"definition":{' in b)
    return list(seen.values()) + [ddl_with_definition, CORPUS[-1]]


def test_mutated_bodies_are_never_read_laxer_than_pydantic_reads_them():
    checked = accepted_fast = 0
    for body in _one_of_each_kind():
        for doc in _mutations(body):
            data = json.dumps(doc).encode()
            try:
                model = parse_event(data)
            except (ValidationError, ValueError):
                model = None
            try:
                fast = parse_event_fast(data)
            except (ValidationError, ValueError):
                fast = None
            checked += 1
            if isinstance(fast, msgspec.Struct):
                accepted_fast += 1
                assert model is not None, f"fast path accepted what pydantic refuses: {data[:300]!r}"
                assert fast.to_model() == model, data[:300]
                assert rows_for([fast], "s") == rows_for([model], "s"), data[:300]
            else:
                assert (fast is None) == (model is None)  # refused by msgspec: pydantic's own answer
    assert checked > 2000 and accepted_fast > 100, (checked, accepted_fast)
