"""Reports read only from the vault: the enterprise dashboard, execution history, an HTML page."""
from __future__ import annotations

import html
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
from psycopg.rows import dict_row

from pgtrail import history, tables

EXECUTION_COLUMNS = [
    ("started (UTC)", "started_at"), ("script", "script_name"), ("version", "version"), ("status", "status"),
    ("ms", "duration_ms"), ("rows", "rows_affected"), ("ticket", "ticket_number"), ("by", "executed_by"),
    ("tenant", "tenant_id"), ("db", "database_name"), ("error", "error"),
]
DASHBOARD_COLUMNS = [("section", "section"), ("name", "name"), ("value", "value"), ("detail", "detail")]


def dashboard(conn: psycopg.Connection, days: int = 30) -> list[dict[str, Any]]:
    since = datetime.now(timezone.utc) - timedelta(days=days)
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("select * from script_tracking.get_enterprise_dashboard(%s)", (since,))
        return cur.fetchall()


def executions(conn: psycopg.Connection, limit: int = 50, script: str | None = None, status: str | None = None,
               tenant: str | None = None) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("select * from script_tracking.get_execution_history(%s, %s, %s, %s)",
                    (limit, script, status, tenant))
        return cur.fetchall()


def render_dashboard(rows: list[dict[str, Any]]) -> str:
    out, section = [], None
    for r in rows:
        if r["section"] != section:
            section = r["section"]
            out.append(f"\n{section}")
        out.append(f"  {tables.cell(r['value']):>14}  {tables.cell(r['name'], 50)}"
                   + (f"  {tables.cell(r['detail'], 80)}" if r["detail"] else ""))
    return "\n".join(out).lstrip("\n") if out else "(the vault is empty)"


def render_rows(rows: list[dict[str, Any]], columns) -> str:
    return tables.render(rows, columns)


def render_json(rows: list[dict[str, Any]]) -> str:
    return tables.to_json(rows)


_STYLE = """body{font-family:system-ui,sans-serif;margin:2rem;color:#222}h1{margin-bottom:0}
table{border-collapse:collapse;margin:1rem 0;font-size:.85rem}td,th{border:1px solid #ccc;padding:.25rem .5rem;
text-align:left;vertical-align:top}th{background:#f3f3f3}.k-ddl{color:#8a2be2}.k-dml{color:#1e6fd9}
.k-script{color:#c75000}.k-security{color:#c00;font-weight:bold}.bar{background:#1e6fd9;height:.8rem;display:inline-block}
.day{white-space:nowrap}"""


def html_report(conn: psycopg.Connection, days: int = 30) -> str:
    """One self-contained page: the dashboard's figures, a per-day timeline per database, and
    the latest changes per database."""
    dash = dashboard(conn, days)
    since = datetime.now(timezone.utc) - timedelta(days=days)
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("""select d.database_name, date_trunc('day', s.commit_time) as day, s.kind, count(*) as n
                         from vault.link_event s join vault.hub_database d using (hk_database)
                        where s.commit_time >= %s group by 1, 2, 3 order by 1, 2""", (since,))
        timeline = cur.fetchall()
    recent = [r for r in history.fetch(conn, limit=100000) if r["commit_time"] and r["commit_time"] >= since]
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>pgtrail report</title>"
             f"<style>{_STYLE}</style></head><body><h1>pgtrail report</h1>"
             f"<p>{e(datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC'))}, last {days} days, "
             f"read from the Data Vault.</p><h2>Dashboard</h2><table><tr><th>section</th><th>name</th>"
             f"<th>value</th><th>detail</th></tr>"]
    for r in dash:
        parts.append(f"<tr><td>{e(r['section'])}</td><td>{e(str(r['name']))}</td><td>{e(tables.cell(r['value']))}"
                     f"</td><td>{e(tables.cell(r['detail'], 200)) if r['detail'] else ''}</td></tr>")
    parts.append("</table><h2>Timeline of changes per database</h2>")
    per_db: dict[str, dict[Any, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    for r in timeline:
        per_db[r["database_name"]][r["day"]][r["kind"]] = r["n"]
    peak = max((sum(k.values()) for days_ in per_db.values() for k in days_.values()), default=1)
    for db, by_day in per_db.items():
        parts.append(f"<h3>{e(db)}</h3><table><tr><th>day</th><th>events</th><th>by kind</th></tr>")
        for day, kinds in by_day.items():
            total = sum(kinds.values())
            parts.append(f"<tr><td class='day'>{e(day.strftime('%Y-%m-%d'))}</td><td><span class='bar' "
                         f"style='width:{max(2, int(300 * total / peak))}px'></span> {total}</td><td>"
                         + ", ".join(f"<span class='k-{e(k)}'>{e(k)} {n}</span>" for k, n in sorted(kinds.items()))
                         + "</td></tr>")
        parts.append("</table><table><tr>" + "".join(f"<th>{e(h)}</th>" for h, _ in history.COLUMNS) + "</tr>")
        for r in [r for r in recent if r["database_name"] == db][-200:]:
            parts.append(f"<tr class='k-{e(r['kind'])}'>" + "".join(
                f"<td>{e(tables.cell(col(r) if callable(col) else r.get(col), 120))}</td>"
                for _, col in history.COLUMNS) + "</tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "".join(parts)
