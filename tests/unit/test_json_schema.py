"""The committed JSON Schemas are exactly what the models generate, and they describe real events."""
from schemas.export import DEFAULT, documents, render
from tests.unit.conftest import normalize


def test_committed_schemas_match_the_models():
    docs = documents()
    assert sorted(p.name for p in DEFAULT.glob("*.json")) == sorted(docs)
    for name, doc in docs.items():
        assert (DEFAULT / name).read_text() == render(doc), f"{name} is stale: run python -m schemas.export"


def test_schemas_cover_every_kind_and_require_the_envelope(tracked_lines):
    docs = documents()
    kinds = {e.kind for e in normalize(tracked_lines)[0]}
    assert {f"{k}.schema.json" for k in kinds} <= set(docs)
    for name, doc in docs.items():
        if name != "event.schema.json":
            assert {"event_id", "source", "payload"} <= set(doc["required"]), name
            assert doc["properties"]["schema_version"]["default"] == 1
