"""`pgtrail history`: the tracked history read back from the vault (reads only the vault).

The queries here and script_tracking.get_object_history (sql/vault/008_reports.sql) read the same
view with the same object match; this module reads the view itself so that it also reads a vault
of an earlier release."""
from __future__ import annotations

import json
from typing import Any

import psycopg
from psycopg.rows import dict_row

from pgtrail import tables

_COLUMNS = """event_id, kind, commit_time, commit_lsn::text as commit_lsn, position, database_name, object_identity,
       session_user_name, application_name, client_addr, tenant_id, action, statement, primary_key,
       operation_name, status, error, ticket_number, untracked, execution_id, tags, simulated, log_duration_ms"""

# One object's (or database's) events, the latest `limit` of them.
_BY_OBJECT_WHERE = f"""
select {_COLUMNS} from (
    select * from vault.event_history
     where {{candidates}}(object_identity = %(object)s or object_identity like '%%.' || %(object)s)
       and (%(database)s::text is null or database_name = %(database)s)
       and (%(simulated)s or not simulated)
     order by commit_time desc nulls last, commit_lsn desc, position desc
     limit %(limit)s) latest
 order by commit_time nulls first, commit_lsn, position
"""
# With hk_event in the view, only candidates are read through it (found by the primary key): the
# object's latest events on the link (its hubs by name, then their events), those without a commit
# time (the view orders them by their step's time), and DDL whose parent is the object (their hub
# is the parent already, as the loader keys them; here whatever loaded them). The view's own
# conditions above then decide exactly, as without candidates.
_OBJECT_HUBS = """array(select o.hk_object from vault.hub_object o
                         where (o.object_identity = %(object)s or o.object_identity like '%%.' || %(object)s)
                           and (%(database)s::text is null or o.database_name = %(database)s))"""
_NOT_SIMULATED = """(%(simulated)s or not exists (select 1 from vault.sat_log_entry le
                                                       where le.hk_event = s.hk_event and le.simulated))"""
_CANDIDATES = f"""hk_event = any(array(
        with own as materialized (   -- the object's own events first, by the object index
            select s.hk_event, s.commit_time, s.commit_lsn, s.position from vault.link_event s
             where s.hk_object = any({_OBJECT_HUBS}) and {_NOT_SIMULATED})
        (select hk_event from own order by commit_time desc nulls last, commit_lsn desc, position desc
          limit %(limit)s)
        union all
        select hk_event from own where commit_time is null
        union all
        select d.hk_event from vault.sat_ddl d
         where d.parent_identity = %(object)s or d.parent_identity like '%%.' || %(object)s))
       and """
_BY_OBJECT = _BY_OBJECT_WHERE.format(candidates=_CANDIDATES)
_BY_OBJECT_EARLIER = _BY_OBJECT_WHERE.format(candidates="")

# The whole vault: the latest events are chosen on the event link's time index first, then only
# they are read through the view, found by the link's key (an array, so that PostgreSQL looks each
# up by the primary key instead of joining the whole vault and keeping 1,000 rows: 28 ms instead of
# 400 at 100,000 events, and it stays so as the vault grows). A vault of an earlier release has no
# hk_event in the view: there the events are matched by id.
_PICK = """(select s.{key} from vault.link_event s
          where %(simulated)s
             or not exists (select 1 from vault.sat_log_entry le where le.hk_event = s.hk_event and le.simulated)
          order by s.commit_time desc nulls last, s.commit_lsn desc, s.position desc limit %(limit)s)"""
_LATEST_WHERE = f"""
select {_COLUMNS} from vault.event_history
 where {{match}}
   and (%(database)s::text is null or database_name = %(database)s)
   and (%(simulated)s or not simulated)
 order by commit_time nulls first, commit_lsn, position
"""
_LATEST = _LATEST_WHERE.format(match="hk_event = any(array" + _PICK.format(key="hk_event") + ")")
_LATEST_EARLIER = _LATEST_WHERE.format(match="event_id in " + _PICK.format(key="event_id"))


def fetch(conn: psycopg.Connection, object_name: str | None = None, database: str | None = None,
          limit: int = 1000, include_simulated: bool = False) -> list[dict[str, Any]]:
    """The latest `limit` events (of one object, when named), oldest first. Simulated history
    (import_historical_operations(days, true)) is left out unless `include_simulated`; its rows
    then have `simulated` true and are marked in the table."""
    with conn.cursor(row_factory=dict_row) as cur:
        keyed = cur.execute("select 1 from pg_attribute where attrelid = 'vault.event_history'::regclass "
                            "and attname = 'hk_event' and not attisdropped").fetchone()
        if object_name:
            query = _BY_OBJECT if keyed else _BY_OBJECT_EARLIER
        else:
            query = _LATEST if keyed else _LATEST_EARLIER
        cur.execute(query, {"object": object_name, "database": database, "limit": limit,
                            "simulated": include_simulated})
        return cur.fetchall()


def _detail(row: dict[str, Any]) -> str:
    if row["kind"] == "ddl":
        via = f"[{row['operation_name']} {row['ticket_number'] or ''}]".replace(" ]", "]") + " " \
            if row.get("operation_name") else ""
        return via + " ".join((row["statement"] or "").split())
    if row["kind"] == "dml":
        return "pk " + json.dumps(row["primary_key"], separators=(",", ":"))
    if row["kind"] == "script":
        ticket = f" {row['ticket_number']}" if row.get("ticket_number") else ""
        error = f": {row['error']}" if row.get("error") else ""
        return f"{row['operation_name'] or 'script'}{ticket}{error}"
    if row["kind"] == "security":
        return f"UNTRUSTED MESSAGE: {row['error']}"
    if row["kind"] == "log_import":
        simulated = "[SIMULATED] " if row.get("simulated") else ""
        failed = f" FAILED: {row['error']}" if row.get("status") == "failed" else ""
        took = f" ({row['log_duration_ms']:.1f} ms)" if row.get("log_duration_ms") is not None else ""
        return f"{simulated}[from log] {' '.join((row['statement'] or '').split())}{took}{failed}"
    status = f" {row['status']}" if row.get("status") and row["status"] != "completed" else ""
    simulated = "[SIMULATED] " if row.get("simulated") else ""
    return f"{simulated}operation {row['operation_name']!r}{status}"


COLUMNS = [
    ("time (UTC)", "commit_time"), ("db", "database_name"), ("kind", "kind"), ("action", "action"),
    ("object", "object_identity"), ("who", "session_user_name"), ("app", "application_name"),
    ("tenant", "tenant_id"), ("tags", "tags"), ("detail", _detail),
]


def render_table(rows: list[dict[str, Any]]) -> str:
    return tables.render(rows, COLUMNS, empty="(no events in the vault yet)")


def render_json(rows: list[dict[str, Any]]) -> str:
    return tables.to_json(rows)
