"""`pgtrail history`: the tracked history read back from the vault (reads only the vault)."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

_QUERY = """
select event_id, kind, commit_time, commit_lsn::text as commit_lsn, position, database_name, object_identity,
       session_user_name, application_name, client_addr, tenant_id, action, statement, primary_key,
       operation_name, status, error, ticket_number, tags
  from vault.event_history
 where (%(object)s::text is null or object_identity = %(object)s or object_identity like '%%.' || %(object)s)
   and (%(database)s::text is null or database_name = %(database)s)
 order by commit_time, commit_lsn, position
 limit %(limit)s
"""


def fetch(conn: psycopg.Connection, object_name: str | None = None, database: str | None = None,
          limit: int = 1000) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(_QUERY, {"object": object_name, "database": database, "limit": limit})
        return cur.fetchall()


def _detail(row: dict[str, Any]) -> str:
    if row["kind"] == "ddl":
        return " ".join((row["statement"] or "").split())
    if row["kind"] == "dml":
        return "pk " + json.dumps(row["primary_key"], separators=(",", ":"))
    if row["kind"] == "script":
        ticket = f" {row['ticket_number']}" if row.get("ticket_number") else ""
        error = f": {row['error']}" if row.get("error") else ""
        return f"{row['operation_name'] or 'script'}{ticket}{error}"
    if row["kind"] == "security":
        return f"UNTRUSTED MESSAGE: {row['error']}"
    status = f" {row['status']}" if row.get("status") and row["status"] != "completed" else ""
    return f"operation {row['operation_name']!r}{status}"


def render_table(rows: list[dict[str, Any]], width: int = 60) -> str:
    if not rows:
        return "(no events in the vault yet)"
    headers = ["time (UTC)", "db", "kind", "action", "object", "who", "app", "tenant", "tags", "detail"]
    table = []
    for r in rows:
        t = r["commit_time"]
        detail = _detail(r)
        table.append([
            t.strftime("%Y-%m-%d %H:%M:%S") if isinstance(t, datetime) else "-",
            r["database_name"] or "-", r["kind"], r["action"] or "-", r["object_identity"] or "-",
            r["session_user_name"] or "?", r["application_name"] or "-", r["tenant_id"] or "-",
            ",".join(r["tags"] or ()) or "-",
            detail if len(detail) <= width else detail[: width - 1] + "…",
        ])
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    out = [line(headers), line(["-" * w for w in widths])]
    out.extend(line(row) for row in table)
    return "\n".join(out)


def render_json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, default=str, indent=1)
