-- pgtrail vault, part 8: the original reporting API, read only from the vault. Idempotent.
--
-- get_execution_history: script executions and tracked operations (track_operation, tracked
--   calls of *_tracking wrappers, imports), newest first. A script execution still 'started' longer
--   than `abandoned_after` is reported 'abandoned': its session ended or its transaction rolled
--   back without complete_/fail_script_execution (a rollback is never decoded, so nothing else
--   would ever finish it).
-- get_enterprise_dashboard: (section, name, value, detail) rows.
-- get_object_history: one object's events, oldest first.
--
-- Simulated history (import_historical_operations(days, true)) is excluded from every count and
-- list unless include_simulated; when included, its rows are marked (`simulated`, '[simulated]').
--
-- The same functions are callable in every tracked database (sql/source/009_vault_reports.sql),
-- which calls these through postgres_fdw's server: they are the one definition of each report.

-- How long a script execution may stay 'started' before it is reported 'abandoned': the argument,
-- else the setting pgtrail.abandoned_after (ALTER DATABASE <vault> SET pgtrail.abandoned_after =
-- '2 hours'), else 24 hours.
create or replace function vault.abandoned_after(given interval default null)
returns interval
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select coalesce(given, nullif(current_setting('pgtrail.abandoned_after', true), '')::interval,
                    interval '24 hours')
$$;

-- Part 7 made these with fewer arguments; a second overload would make a call without arguments
-- ambiguous.
drop function if exists script_tracking.get_execution_history(integer, text, text, text, timestamptz);
drop function if exists script_tracking.get_enterprise_dashboard(timestamptz);

drop function if exists script_tracking.get_execution_history(integer, text, text, text, timestamptz, boolean,
                                                              boolean, interval);
create function script_tracking.get_execution_history(
    max_rows integer default 100,
    script_name_filter text default null,
    status_filter text default null,
    tenant_filter text default null,
    since timestamptz default null,
    include_simulated boolean default false,
    include_operations boolean default true,
    abandoned_after interval default null)
returns table (execution_id uuid, script_name text, script_type text, version text, status text,
               started_at timestamptz, finished_at timestamptz, duration_ms double precision,
               rows_affected bigint, error text, ticket_number text, business_justification text,
               executed_by text, tenant_id text, database_name text, kind text, simulated boolean)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    with runs as (
        select x.execution_id, x.script_name, x.script_type, x.version,
               case when x.status = 'started' and x.started_at < now() - vault.abandoned_after(abandoned_after)
                    then 'abandoned' else x.status end as status,
               x.started_at, x.finished_at, x.duration_ms, x.rows_affected, x.error, x.ticket_number,
               x.business_justification, x.executed_by, x.tenant_id, x.database_name,
               'script'::text as kind, false as simulated
          from vault.script_executions x
        union all
        select o.operation_id, o.name, o.operation_type, null::text, o.status,
               coalesce(e.commit_time, e.load_ts), coalesce(e.commit_time, e.load_ts), o.duration_ms,
               null::bigint, o.error, null::text, null::text, e.session_user_name, e.tenant_id, d.database_name,
               'operation'::text, vault.simulated_operation(o.operation_type, o.details)
          from vault.sat_operation o
          join vault.link_event e using (hk_event)
          left join vault.hub_database d on d.hk_database = e.hk_database
         where include_operations)
    select r.* from runs r
     where (script_name_filter is null or r.script_name = script_name_filter)
       and (status_filter is null or r.status = status_filter)
       and (tenant_filter is null or r.tenant_id = tenant_filter)
       and (since is null or r.started_at >= since)
       and (include_simulated or not r.simulated)
     order by r.started_at desc nulls last
     limit max_rows
$$;

drop function if exists script_tracking.get_enterprise_dashboard(timestamptz, boolean, interval);
create function script_tracking.get_enterprise_dashboard(since timestamptz default now() - interval '30 days',
                                                         include_simulated boolean default false,
                                                         abandoned_after interval default null)
returns table (section text, name text, value double precision, detail jsonb)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    with every_event as (
        select s.hk_event, s.hk_database, s.kind, s.commit_time, s.session_user_name, s.tenant_id, s.tags,
               coalesce(le.simulated, vault.simulated_operation(op.operation_type, op.details), false) as simulated
          from vault.link_event s
          left join vault.sat_log_entry le using (hk_event)
          left join vault.sat_operation op using (hk_event)
         where s.commit_time >= since or s.commit_time is null
    ),
    ev as (select * from every_event where include_simulated or not simulated),
    -- a name in a group of simulated events is marked, so made-up databases and users never pass for real
    marked as (select ev.*, case when simulated then ' [simulated]' else '' end as mark from ev)
    select 'events by kind', kind || mark, count(*)::float8, null::jsonb from marked group by kind, mark
    union all
    select 'events by database', d.database_name || mark, count(*)::float8, null
      from marked join vault.hub_database d using (hk_database)
     group by d.database_name, mark
    union all
    (select 'events by actor', coalesce(session_user_name, '(unknown)') || mark, count(*)::float8, null
       from marked group by 2 order by 3 desc limit 20)
    union all
    (select 'events by tenant', coalesce(tenant_id, '(none)') || mark, count(*)::float8, null
       from marked group by 2 order by 3 desc limit 20)
    union all
    select 'failures', 'failed script executions', count(*)::float8, null
      from vault.sat_script_execution x where x.status = 'failed' and x.step_at >= since
    union all
    select 'failures', 'failed tracked calls', count(*)::float8, null
      from vault.sat_operation o join ev using (hk_event) where o.status = 'failed'
    union all
    select 'failures', 'security events (untrusted messages)', count(*)::float8, null
      from vault.sat_security_event x join ev using (hk_event)
    union all
    -- shown when there are any: started, never completed nor failed, for longer than abandoned_after
    select 'failures', 'abandoned script executions', count(*)::float8,
           jsonb_build_object('abandoned_after', vault.abandoned_after(abandoned_after)::text,
                              'scripts', jsonb_agg(distinct x.script_name))
      from vault.script_executions x
     where x.status = 'started' and x.started_at >= since
       and x.started_at < now() - vault.abandoned_after(abandoned_after)
    having count(*) > 0
    union all
    select 'untracked DDL', coalesce(ddl.parent_identity, ddl.object_identity, ddl.command_tag), count(*)::float8,
           jsonb_build_object('last', max(ev.commit_time), 'by', jsonb_agg(distinct ev.session_user_name))
      from vault.sat_ddl ddl join ev using (hk_event) where ddl.untracked group by 2
    union all
    select 'sensitive data changes', rc.schema_name || '.' || rc.table_name, count(*)::float8,
           jsonb_build_object('tags', (select jsonb_agg(distinct t) from unnest(array_agg(distinct ev.tags)) a(t)))
      from vault.sat_row_change rc join ev using (hk_event) where cardinality(ev.tags) > 0 group by 2
    union all
    (select 'slowest scripts', x.script_name, x.duration_ms,
            jsonb_build_object('execution_id', x.execution_id, 'status', x.status, 'started_at', x.started_at)
       from vault.script_executions x where x.duration_ms is not null and x.started_at >= since
      order by x.duration_ms desc limit 10)
    union all
    (select 'slowest statements', o.name, o.duration_ms,
            jsonb_build_object('status', o.status, 'at', ev.commit_time)
       from vault.sat_operation o join ev using (hk_event) where o.duration_ms is not null
      order by o.duration_ms desc limit 10)
    union all
    -- the last ever, not the last within `since`
    select 'last activity', d.database_name || m.mark, extract(epoch from max(m.commit_time)),
           jsonb_build_object('at', max(m.commit_time))
      from (select s.hk_database, s.commit_time, case when sim.simulated then ' [simulated]' else '' end as mark
              from vault.link_event s
              left join vault.sat_log_entry le using (hk_event)
              left join vault.sat_operation op using (hk_event)
              cross join lateral (select coalesce(le.simulated, vault.simulated_operation(op.operation_type, op.details),
                                                  false) as simulated) sim
             where include_simulated or not sim.simulated) m
      join vault.hub_database d using (hk_database)
     group by d.database_name, m.mark
    union all
    -- shown when there are any: what was left out, so a reader knows it exists
    select 'simulated history', case when include_simulated then 'simulated events (included, marked)'
                                     else 'simulated events (excluded)' end, count(*)::float8,
           jsonb_build_object('hint', 'made up by import_historical_operations(days, true); never real history')
      from every_event where simulated
    having count(*) > 0
$$;

-- One object's events (identity as PostgreSQL prints it, or without its schema), oldest first:
-- the latest max_rows of them.
drop function if exists script_tracking.get_object_history(text, text, integer, boolean);
create function script_tracking.get_object_history(object_name text, database text default null,
                                                   max_rows integer default 1000,
                                                   include_simulated boolean default false)
returns table (event_id uuid, kind text, commit_time timestamptz, database_name text, object_identity text,
               action text, statement text, session_user_name text, application_name text, tenant_id text,
               operation_name text, status text, error text, ticket_number text, untracked boolean,
               tags text[], simulated boolean)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select h.event_id, h.kind, h.commit_time, h.database_name, h.object_identity, h.action, h.statement,
           h.session_user_name, h.application_name, h.tenant_id, h.operation_name, h.status, h.error,
           h.ticket_number, h.untracked, h.tags, h.simulated
      from (select * from vault.event_history x
             where (x.object_identity = object_name or x.object_identity like '%.' || object_name)
               and (database is null or x.database_name = database)
               and (include_simulated or not x.simulated)
             order by x.commit_time desc nulls last, x.commit_lsn desc, x.position desc
             limit max_rows) h
     order by h.commit_time nulls first, h.commit_lsn, h.position
$$;

grant execute on function
    script_tracking.get_execution_history(integer, text, text, text, timestamptz, boolean, boolean, interval),
    script_tracking.get_enterprise_dashboard(timestamptz, boolean, interval),
    script_tracking.get_object_history(text, text, integer, boolean),
    vault.abandoned_after(interval), vault.simulated_operation(text, jsonb)
    to pgtrail_vault_reader;
