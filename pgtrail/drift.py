"""`pgtrail drift`: objects whose live definition differs from what the migration history produced.

For every object of a source database that has DDL in the vault:
- the definition its last tracked DDL (run by a migration or tracked script) produced, from the
  vault, is compared with its live definition, read from the source now;
- DDL after that which no migration ran (the `untracked` flag set at capture) is listed with who
  ran it, when, and the statement.
An object that no migration ever created or changed, but that DDL by hand did, is drift too.
"""
from __future__ import annotations

from typing import Any

import psycopg

from pgtrail import schema_diff

# consumer-side annotations and tracking state: not part of what a migration produces
_ANNOTATIONS = {"classification", "policy"}
_IGNORED_KEYS = {"tracked", "overrides"}


def _comparable(definition: dict[str, Any] | None) -> dict[str, Any] | None:
    if not isinstance(definition, dict):
        return definition
    out = {k: v for k, v in definition.items() if k not in _IGNORED_KEYS}
    if isinstance(out.get("columns"), list):
        out["columns"] = [{k: v for k, v in c.items() if k not in _ANNOTATIONS} for c in out["columns"]]
    return out


def find(source: psycopg.Connection, vault: psycopg.Connection) -> list[dict[str, Any]]:
    system_id, database = source.execute(
        "select system_identifier::text, current_database() from pg_control_system()").fetchone()
    rows = vault.execute("""
        select coalesce(d.parent_identity, o.object_identity), d.command_tag, d.untracked, d.definition,
               s.session_user_name, s.commit_time, d.statement, s.commit_lsn, s.position
          from vault.sat_ddl d
          join vault.link_event s using (hk_event)
          join vault.hub_object o using (hk_object)
         where o.system_id = %s and o.database_name = %s and d.command_tag <> 'GLOBAL OBJECTS CHANGED'
         order by s.commit_lsn, s.position""", (system_id, database)).fetchall()
    by_object: dict[str, list[tuple]] = {}
    for row in rows:
        by_object.setdefault(row[0], []).append(row)
    drifted = []
    for identity, events in by_object.items():
        tracked = [e for e in events if not e[2] and (e[3] is not None or e[1].startswith("DROP"))]
        last_tracked = tracked[-1] if tracked else None
        after = events[events.index(last_tracked) + 1:] if last_tracked else events
        manual = [{"command": e[1], "by": e[4], "at": e[5], "statement": e[6]} for e in after if e[2]]
        expected = last_tracked[3] if last_tracked else None
        live = _live_definition(source, identity)
        live_differs = _comparable(expected) != _comparable(live)
        if not live_differs and not manual:
            continue
        if last_tracked is None and live is None and not manual:
            continue
        drifted.append({
            "object": identity,
            "database": database,
            "reason": ("changed outside migrations" if manual else "live definition differs from the vault")
            if last_tracked else "created or changed outside migrations",
            "manual_changes": manual,
            "diff": schema_diff.diff_lines(identity, _comparable(expected), _comparable(live)) if live_differs else [],
        })
    return drifted


def _live_definition(source: psycopg.Connection, identity: str) -> dict[str, Any] | None:
    """The live definition of a relation (table, view, index, sequence); None if it does not exist."""
    row = source.execute("select to_regclass(%s)::oid", (identity,)).fetchone()
    if not row or row[0] is None:
        return None
    return source.execute("select script_tracking.object_definition('pg_class'::regclass, %s)", (row[0],)).fetchone()[0]


def render(drifted: list[dict[str, Any]]) -> str:
    if not drifted:
        return "no drift: every object is as the migration history left it"
    out = []
    for d in drifted:
        out.append(f"{d['database']}: {d['object']}: {d['reason']}")
        for m in d["manual_changes"]:
            out.append(f"  {m['at']:%Y-%m-%d %H:%M:%S} {m['by']}: {m['command']}: {' '.join((m['statement'] or '').split())[:120]}")
        out.extend("  " + line for line in d["diff"])
    return "\n".join(out)
