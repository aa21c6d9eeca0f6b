"""`pgtrail drift`: objects whose live definition differs from what the migration history produced.

For every object of a source database that has DDL in the vault:
- the definition its last tracked DDL (run by a migration or tracked script) produced, from the
  vault, is compared with its live definition, read from the source now;
- DDL after that which no migration ran (the `untracked` flag set at capture) is listed with who
  ran it, when, and the statement.
An object that no migration ever created or changed, but that DDL by hand did, is drift too.
"""
from __future__ import annotations

import re
from typing import Any

import psycopg

from pgtrail import schema_diff

# consumer-side annotations and tracking state: not part of what a migration produces
_ANNOTATIONS = {"classification", "policy"}
# A table's indexes are objects with DDL events of their own (CREATE INDEX does not change the
# table's definition in the vault): compared as themselves, not again inside their table.
_IGNORED_KEYS = {"tracked", "overrides", "indexes"}
# A foreign key's triggers are the constraint's implementation; the constraint is in its table.
_INTERNAL = re.compile(r'^"?RI_ConstraintTrigger_')

# Every live object of the kinds the event triggers record (pg_event_trigger_ddl_commands' classes),
# outside the system schemas and pgtrail's own: identity as pg_identify_object gives it, which is
# how the vault recorded it. Looked up by identity text, never parsed, so no name can fail to parse.
_LIVE_OBJECTS = """
with objects(classid, objid) as (
    select 'pg_class'::regclass, c.oid from pg_class c where c.relkind in ('r', 'p', 'v', 'm', 'f', 'i', 'I', 'S')
    union all select 'pg_proc'::regclass, p.oid from pg_proc p
    union all select 'pg_trigger'::regclass, t.oid from pg_trigger t where not t.tgisinternal
    union all select 'pg_type'::regclass, t.oid from pg_type t
               where t.typtype in ('e', 'd', 'r', 'm')
                  or (t.typtype = 'c' and (select relkind from pg_class where oid = t.typrelid) = 'c')
    union all select 'pg_constraint'::regclass, c.oid from pg_constraint c
    union all select 'pg_namespace'::regclass, n.oid from pg_namespace n)
select o.classid::oid, o.objid, i.identity
  from objects o, lateral pg_identify_object(o.classid, o.objid, 0) i
 where coalesce(i.schema, i.identity) not in ('pg_catalog', 'information_schema', 'pg_toast', 'script_tracking')
   and coalesce(i.schema, i.identity) not like 'pg\\_temp%'
   and coalesce(i.schema, i.identity) not like 'pg\\_toast\\_temp%'
   and not exists (select 1 from pg_depend d where d.classid = o.classid and d.objid = o.objid and d.deptype = 'e')
"""


def _comparable(definition: dict[str, Any] | None) -> dict[str, Any] | None:
    if not isinstance(definition, dict):
        return definition
    out = {k: v for k, v in definition.items() if k not in _IGNORED_KEYS}
    if isinstance(out.get("columns"), list):
        out["columns"] = [{k: v for k, v in c.items() if k not in _ANNOTATIONS} for c in out["columns"]]
    return out


def find(source: psycopg.Connection, vault: psycopg.Connection) -> list[dict[str, Any]]:
    """Every drifted object. `source` must be in autocommit mode: an object whose live definition
    cannot be read is reported as such, and the others are still compared."""
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
        if not _INTERNAL.match(row[0] or ""):
            by_object.setdefault(row[0], []).append(row)
    live_objects = {identity: (classid, objid) for classid, objid, identity in source.execute(_LIVE_OBJECTS)}
    drifted = []
    for identity, events in by_object.items():
        tracked = [e for e in events if not e[2] and (e[3] is not None or e[1].startswith("DROP"))]
        last_tracked = tracked[-1] if tracked else None
        after = events[events.index(last_tracked) + 1:] if last_tracked else events
        manual = [{"command": e[1], "by": e[4], "at": e[5], "statement": e[6]} for e in after if e[2]]
        expected = last_tracked[3] if last_tracked else None
        try:
            live = _live_definition(source, live_objects.get(identity))
        except psycopg.Error as exc:
            drifted.append({"object": identity, "database": database, "manual_changes": manual, "diff": [],
                            "reason": f"live definition not readable: {exc.sqlstate} "
                                      f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"})
            continue
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


def _live_definition(source: psycopg.Connection, address: tuple[int, int] | None) -> dict[str, Any] | None:
    """The live definition of one object, as the event triggers record it; None if it does not exist."""
    if address is None:
        return None
    return source.execute("select script_tracking.object_definition(%s, %s)", address).fetchone()[0]


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
