"""Reports read only from the vault: the enterprise dashboard, execution history, an HTML page."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
from psycopg.rows import dict_row

from pgtrail import history, report_html, tables

EXECUTION_COLUMNS = [
    ("started (UTC)", "started_at"), ("script", "script_name"), ("version", "version"), ("status", "status"),
    ("ms", "duration_ms"), ("rows", "rows_affected"), ("ticket", "ticket_number"), ("by", "executed_by"),
    ("tenant", "tenant_id"), ("db", "database_name"), ("error", "error"),
]
DASHBOARD_COLUMNS = [("section", "section"), ("name", "name"), ("value", "value"), ("detail", "detail")]


def dashboard(conn: psycopg.Connection, days: int = 30, include_simulated: bool = False) -> list[dict[str, Any]]:
    since = datetime.now(timezone.utc) - timedelta(days=days)
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("select * from script_tracking.get_enterprise_dashboard(%s, %s)", (since, include_simulated))
        return cur.fetchall()


def executions(conn: psycopg.Connection, limit: int = 50, script: str | None = None, status: str | None = None,
               tenant: str | None = None, include_simulated: bool = False) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        # the named argument only when asked: a vault of the previous release has the four-argument form
        cur.execute("select * from script_tracking.get_execution_history(%s, %s, %s, %s"
                    + (", include_simulated => true)" if include_simulated else ")"), (limit, script, status, tenant))
        return cur.fetchall()


def render_dashboard(rows: list[dict[str, Any]], now: datetime | None = None) -> str:
    """The dashboard for a terminal: times as '5 min ago' beside the UTC time, durations as
    '2 min 5 s' (the JSON output keeps the numbers)."""
    now = now or datetime.now(timezone.utc)
    out, section = [], None
    for r in rows:
        if r["section"] != section:
            section = r["section"]
            out.append(f"\n{section}")
        value, detail = tables.cell(r["value"]), r["detail"]
        if section == "last activity":
            at = (detail or {}).get("at")
            at = datetime.fromisoformat(at) if at else None
            value, detail = report_html.ago(at, now), report_html.when(at)
        elif section.startswith("slowest"):
            value = report_html.duration(r["value"])
        out.append(f"  {value:>14}  {tables.cell(r['name'], 50)}"
                   + (f"  {tables.cell(detail, 80)}" if detail else ""))
    return "\n".join(out).lstrip("\n") if out else "(the vault is empty)"


def render_rows(rows: list[dict[str, Any]], columns) -> str:
    return tables.render(rows, columns)


def render_json(rows: list[dict[str, Any]]) -> str:
    return tables.to_json(rows)


# The period's events. Simulated history (import_historical_operations(days, true)) is left out
# unless asked, as in every report of sql/vault/008_reports.sql; each figure is grouped by the flag,
# so that, asked for, it is drawn apart and marked (pgtrail/report_html.py). An event's time is
# vault.event_history's: its commit, else (a script step outside any transaction) the step's own
# time. Hours are UTC hours.
_EVENTS = """
with ev as (
    select * from (
        select s.hk_event, s.hk_object, s.kind, coalesce(s.commit_time, sc.step_at) as at, s.session_user_name,
               s.tenant_id, s.tags, d.database_name,
               date_trunc('hour', coalesce(s.commit_time, sc.step_at) at time zone 'UTC') as hour,
               coalesce(le.simulated, vault.simulated_operation(op.operation_type, op.details), false) as simulated
          from vault.link_event s
          left join vault.hub_database d using (hk_database)
          left join vault.sat_script_execution sc using (hk_event)
          left join vault.sat_log_entry le using (hk_event)
          left join vault.sat_operation op using (hk_event)) e
     where at >= %(since)s and (%(simulated)s or not simulated))
"""
_FIGURES = {
    "hourly": "select database_name, kind, hour, simulated, count(*) as n from ev group by 1, 2, 3, 4 order by 3, 2",
    "actors": """select coalesce(session_user_name, '(unknown)') as actor, simulated,
                        count(*) filter (where kind = 'ddl') as ddl, count(*) filter (where kind = 'dml') as dml
                   from ev where kind in ('ddl', 'dml') group by 1, 2 order by count(*) desc, 1 limit 15""",
    "objects": """select ev.database_name, coalesce(ddl.parent_identity, o.object_identity) as object, ev.simulated,
                         count(*) as n
                    from ev left join vault.hub_object o on o.hk_object = ev.hk_object
                    left join vault.sat_ddl ddl on ddl.hk_event = ev.hk_event
                   where ev.kind in ('ddl', 'dml') and coalesce(ddl.parent_identity, o.object_identity) is not null
                   group by 1, 2, 3 order by 4 desc, 2 limit 15""",
    "sensitive": """select database_name, tag, hour, simulated, count(*) as n from ev cross join unnest(ev.tags) as tag
                     where kind = 'dml' group by 1, 2, 3, 4 order by 3, 2""",
}
_TOTALS = """select count(*) as events, count(distinct session_user_name) as actors,
                    count(*) filter (where kind = 'dml' and cardinality(tags) > 0) as sensitive,
                    coalesce(array_agg(distinct database_name) filter (where database_name is not null), '{}')
                        as databases,
                    coalesce(array_agg(distinct tenant_id) filter (where tenant_id is not null), '{}') as tenants,
                    coalesce(array_agg(distinct kind), '{}') as kinds
               from ev"""


def html_report(conn: psycopg.Connection, days: int = 30, include_simulated: bool = False) -> str:
    """One self-contained page (pgtrail/report_html.py): figures, inline SVG charts and sortable,
    filterable tables of the last `days` days, read only from the vault."""
    now = datetime.now(timezone.utc)
    since = now - timedelta(days=days)
    params = {"since": since, "simulated": include_simulated}
    figures: dict[str, Any] = {}
    with conn.cursor(row_factory=dict_row) as cur:
        for name, sql in _FIGURES.items():
            cur.execute(_EVENTS + sql, params)
            figures[name] = cur.fetchall()
        cur.execute(_EVENTS + _TOTALS, params)
        totals = cur.fetchone()
        cur.execute("select * from script_tracking.get_execution_history(max_rows => 500, since => %s, "
                    "include_simulated => %s)", (since, include_simulated))
        runs = cur.fetchall()
    recent = [r for r in history.fetch(conn, limit=300, include_simulated=include_simulated)
              if r["commit_time"] and r["commit_time"] >= since]
    return report_html.page(report_html.Figures(now=now, since=since, days=days, totals=totals,
                                                dashboard=dashboard(conn, days, include_simulated), executions=runs,
                                                recent=recent, **figures))
