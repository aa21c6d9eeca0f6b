"""Plain-text tables for the terminal, and JSON for machines: one renderer for every command."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Callable, Sequence


def cell(value: Any, width: int = 60) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        text = value.strftime("%Y-%m-%d %H:%M:%S")
    elif isinstance(value, float):
        text = f"{value:,.3f}".rstrip("0").rstrip(".")
    elif isinstance(value, (list, tuple)):
        text = ",".join(str(v) for v in value) or "-"
    elif isinstance(value, dict):
        text = json.dumps(value, separators=(",", ":"), default=str)
    else:
        text = " ".join(str(value).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def render(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str | Callable[[dict], Any]]],
           empty: str = "(nothing)") -> str:
    """columns: (header, key or function of the row)."""
    if not rows:
        return empty
    table = [[cell(col(r) if callable(col) else r.get(col)) for _, col in columns] for r in rows]
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, (h, _) in enumerate(columns)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line([h for h, _ in columns]), line(["-" * w for w in widths]), *map(line, table)])


def to_json(rows: Sequence[dict[str, Any]]) -> str:
    return json.dumps(list(rows), default=str, indent=1)
