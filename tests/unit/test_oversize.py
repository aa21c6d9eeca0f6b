"""consumer.oversize: an event over Kafka's limit goes out with its largest values referenced."""
import hashlib
import json
from uuid import uuid4

import pytest

from consumer.oversize import fit
from pgtrail.errors import Poison
from schemas import DdlEvent, DdlPayload, DmlEvent, DmlPayload, Source, parse_event
from schemas.wire import encode

LIMIT = 1_000_000
SOURCE = Source(system_id="1", database="db", slot="s", xid=7, commit_lsn="0/10", change_lsn="0/8", position=0)


def dml(new, old=None, pk=None):
    return encode(DmlEvent(event_id=uuid4(), source=SOURCE, tags=["PII"],
                           payload=DmlPayload(operation="update", schema_name="public", table="docs",
                                              primary_key=pk or {"id": 5}, new=new, old=old)))


def test_an_event_that_fits_is_sent_as_it_is():
    enc = dml({"id": 5, "body": "x" * 1000})
    assert fit(enc, LIMIT) == (enc, 0)


def test_the_largest_column_is_left_out_and_referenced_the_rest_kept_exactly():
    body = "é" * 2_000_000  # 4 MB of UTF-8
    new = {"id": 5, "body": body, "price": "12345678901234567890.000000001", "big": 2 ** 70, "f": 1.5e300}
    enc = dml(new)
    out, left_out = fit(enc, LIMIT)
    assert left_out == 1 and len(out.value) < LIMIT
    assert (out.key, out.headers, out.tags) == (enc.key, enc.headers, enc.tags)
    event = parse_event(out.value)
    assert "body" not in event.payload.new  # absent, never null
    assert event.payload.new == {k: v for k, v in json.loads(enc.value)["payload"]["new"].items() if k != "body"}
    numbers = enc.value[enc.value.index(b'"price":'):enc.value.index(b'},"old"')]
    assert b'"big":1180591620717411303424' in numbers and numbers in out.value  # numbers' text untouched
    (ref,) = event.oversize
    assert ref.path == "payload.new.body"
    assert ref.size_bytes == len(body.encode()) and ref.sha256 == hashlib.sha256(body.encode()).hexdigest()
    assert ref.fetch == {"schema": "public", "table": "docs", "column": "body", "primary_key": {"id": 5}}


def test_as_many_values_as_needed_largest_first_old_and_new():
    new = {"id": 5, "a": "a" * 900_000, "b": "b" * 900_000, "c": "c" * 10}
    out, left_out = fit(dml(new, old=dict(new)), LIMIT)
    event = parse_event(out.value)
    assert left_out == 3 and len(out.value) < LIMIT
    # ties keep the payload's order: new before old
    assert [r.path for r in event.oversize] == ["payload.new.a", "payload.new.b", "payload.old.a"]
    assert event.payload.old["b"] == "b" * 900_000
    assert event.payload.new["c"] == "c" * 10 and event.payload.old["c"] == "c" * 10


def test_a_huge_statement_keeps_a_prefix():
    statement = "insert into t values " + "(1)," * 600_000
    enc = encode(DdlEvent(event_id=uuid4(), source=SOURCE,
                          payload=DdlPayload(command_tag="CREATE FUNCTION", object_identity="public.f()",
                                             statement=statement)))
    out, left_out = fit(enc, LIMIT)
    event = parse_event(out.value)
    assert left_out == 1 and statement.startswith(event.payload.statement) and 0 < len(event.payload.statement) < 1000
    assert event.oversize[0].path == "payload.statement" and event.oversize[0].fetch is None


def test_an_event_that_cannot_fit_even_without_its_values_is_poison():
    new = {f"c{i}": i for i in range(200_000)}  # many small values: none is worth leaving out alone
    with pytest.raises(Poison, match="exceeds Kafka's limit"):
        fit(dml(new), 100_000)
