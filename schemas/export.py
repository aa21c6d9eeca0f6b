"""Write the JSON Schema of every event kind, generated from the models (never written by hand).

    python -m schemas.export [folder]     (default: schemas/json)

tests/unit/test_json_schema.py fails when the committed files differ from the models.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import get_args

from pydantic import TypeAdapter

from schemas.events import SCHEMA_VERSION, Event

DEFAULT = Path(__file__).with_name("json")


def documents() -> dict[str, dict]:
    docs = {}
    union = get_args(get_args(Event)[0])
    for model in union:
        kind = model.model_fields["kind"].default
        schema = model.model_json_schema()
        schema["$id"] = f"urn:pgtrail:schema:v{SCHEMA_VERSION}:{kind}"
        docs[f"{kind}.schema.json"] = schema
    event = TypeAdapter(Event).json_schema()
    event["$id"] = f"urn:pgtrail:schema:v{SCHEMA_VERSION}:event"
    event["title"] = "pgtrail event"
    docs["event.schema.json"] = event
    return docs


def render(doc: dict) -> str:
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def main(folder: Path = DEFAULT) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, doc in documents().items():
        (folder / name).write_text(render(doc))
    print(f"wrote {len(documents())} schemas to {folder}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT)
