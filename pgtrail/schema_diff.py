"""An object's definition at a point in time, and the diff between two points: git show and
git diff for the schema. Reads only the vault (vault.object_definition_at)."""
from __future__ import annotations

import difflib
from datetime import datetime, timezone
from typing import Any

import psycopg

from pgtrail.errors import Fatal


def parse_time(text: str | None) -> datetime:
    """ISO 8601 ('2026-11-25', '2026-11-25T10:00:00+01:00'); naive times are UTC; None or 'now' is now."""
    if text is None or text == "now":
        return datetime.now(timezone.utc)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise Fatal(f"cannot read {text!r} as a time: use ISO 8601, e.g. 2026-11-25T10:00:00Z") from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def definition_at(conn: psycopg.Connection, identity: str, at: datetime,
                  database: str | None = None) -> dict[str, Any] | None:
    rows = conn.execute("select database_name, effective_at, dropped, definition "
                        "from vault.object_definition_at(%s, %s, %s)", (identity, at, database)).fetchall()
    if len(rows) > 1:
        names = ", ".join(sorted(r[0] for r in rows))
        raise Fatal(f"{identity} exists in several databases ({names}): choose one with --database")
    if not rows:
        return None
    database_name, effective_at, dropped, definition = rows[0]
    return {"database": database_name, "effective_at": effective_at, "dropped": dropped, "definition": definition}


def render(definition: dict[str, Any] | None) -> list[str]:
    """Stable, diff-friendly lines: one per column, constraint and index."""
    if definition is None:
        return []
    lines: list[str] = []
    kind = definition.get("kind", "object")
    name = f"{definition.get('schema', '')}.{definition.get('name', '')}".strip(".")
    lines.append(f"{kind} {name}".rstrip())
    for col in definition.get("columns") or ():
        parts = [f"  column {col['name']} {col.get('type', '')}"]
        if col.get("not_null"):
            parts.append("not null")
        if col.get("default") is not None:
            parts.append(f"default {col['default']}")
        if col.get("identity"):
            parts.append("identity")
        if col.get("generated"):
            parts.append("generated")
        if col.get("classification"):
            parts.append(f"[{','.join(col['classification'])}: {col.get('policy')}]")
        if col.get("comment"):
            parts.append(f"-- {col['comment']}")
        lines.append(" ".join(parts))
    for con in definition.get("constraints") or ():
        lines.append(f"  constraint {con['name']} {con['definition']}")
    for idx in definition.get("indexes") or ():
        lines.append(f"  index {idx}")
    if definition.get("comment"):
        lines.append(f"  comment {definition['comment']}")
    if definition.get("definition"):
        lines.extend("  " + line for line in str(definition["definition"]).strip().splitlines())
    for key in sorted(set(definition) - {"kind", "schema", "name", "columns", "constraints", "indexes",
                                        "comment", "definition", "overrides"}):
        lines.append(f"  {key}: {definition[key]}")
    return lines


def diff(identity: str, before: dict[str, Any] | None, after: dict[str, Any] | None,
         t1: datetime, t2: datetime) -> str:
    a = render(before["definition"]) if before and not before["dropped"] else []
    b = render(after["definition"]) if after and not after["dropped"] else []
    label = lambda t, state: f"{identity} @ {t.isoformat()}" + (f" ({state})" if state else "")  # noqa: E731
    state_a = "absent" if not before else ("dropped" if before["dropped"] else "")
    state_b = "absent" if not after else ("dropped" if after["dropped"] else "")
    out = list(difflib.unified_diff(a, b, label(t1, state_a), label(t2, state_b), lineterm=""))
    return "\n".join(out) if out else f"{identity}: no change between {t1.isoformat()} and {t2.isoformat()}"


def diff_lines(identity: str, expected: dict[str, Any] | None, live: dict[str, Any] | None) -> list[str]:
    """Unified diff of what the migrations produced against the live definition."""
    return list(difflib.unified_diff(render(expected), render(live), f"{identity} (migrations)",
                                     f"{identity} (live)", lineterm=""))
