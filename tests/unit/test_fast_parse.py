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
from schemas.fast import build_event, parse_event_fast, wire_struct
from schemas.wire import encode
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


# ---------------------------------------------------------------- building (logimport's workers)

def _fixture_log_events() -> list:
    from logimport import ParseReport, read_log
    from tests.unit.test_logimport_fixtures import LOGS, MANIFEST
    events = []
    for name in sorted(MANIFEST):
        events += read_log(LOGS / name, origin=name, server="fixture", prefix=MANIFEST[name].get("log_line_prefix"),
                           report=ParseReport())
    return events


def _fields(event) -> dict:
    """What logimport.entries gives build_event: the event's fields, nested ones as dicts."""
    return {name: getattr(event, name).model_dump() if hasattr(getattr(event, name), "model_dump")
            else getattr(event, name) for name in type(event).model_fields}


def _wire(enc) -> tuple:
    return enc.kind, enc.key, enc.value, enc.headers, enc.tags


def _encoded(event) -> tuple | str:
    """The event on the wire, or that it cannot be written (a lone surrogate: both raise ValueError)."""
    try:
        return _wire(encode(event))
    except ValueError:
        return "not encodable"


def test_events_built_fast_are_pydantics_byte_for_byte():
    """Every entry of the real-server fixture logs (every format and prefix), built both ways:
    the fast Struct, and the same key, body, CloudEvents headers and tags on the wire."""
    events = _fixture_log_events() + [parse_event(_log_import())]
    assert len(events) > 200
    for model in events:
        built = build_event(LogImportEvent, _fields(model))
        assert type(built) is wire_struct(LogImportEvent), model
        assert _wire(encode(built)) == _wire(encode(model))
        assert encode(built).event == model   # the body parses back to the same model


def test_built_events_are_never_laxer_than_pydantic():
    """Fields with one value changed, dropped or added: what msgspec refuses goes to pydantic,
    which builds its model or raises; what msgspec builds, pydantic builds as the same body."""
    base = parse_event(_log_import())
    doc = json.loads(_log_import())
    doc.pop("kind")
    checked = fast = fell_back = 0
    for fields in _mutations(json.dumps(doc).encode()):
        try:
            model = LogImportEvent(**copy.deepcopy(fields))
        except (ValidationError, ValueError, TypeError):
            model = None
        try:
            built = build_event(LogImportEvent, copy.deepcopy(fields))
        except (ValidationError, ValueError, TypeError):
            built = None
        checked += 1
        if isinstance(built, msgspec.Struct):
            fast += 1
            assert model is not None, f"built fast what pydantic refuses: {fields}"
            assert _encoded(built) == _encoded(model), fields
        else:
            assert (built is None) == (model is None), fields
            fell_back += built is not None
    assert base.kind == "log_import"
    assert checked > 300 and fast > 20 and fell_back > 5, (checked, fast, fell_back)


@pytest.mark.parametrize("duration", [0.5, 3, 1e-05, 0.00001234, 1e16, 2 ** 60, 1.5e300, float("inf"), 0.0])
def test_floats_written_alike_whichever_way_they_are_built(duration):
    """msgspec and pydantic write some floats differently (1e16 / 1e+16, 0.00001 / 1e-05): those
    are built by pydantic, so the body never depends on the way it was built."""
    fields = json.loads(_log_import())
    fields.pop("kind")
    fields["payload"]["duration_ms"] = duration
    assert _encoded(build_event(LogImportEvent, copy.deepcopy(fields))) == _encoded(LogImportEvent(**fields))
