-- pgtrail vault, part 3: the full Data Vault 2.0 model, tenant isolation and reporting.
-- Idempotent. Hash keys and hash diffs follow sink/hashing.py (docs/data-vault.md).

-- ------------------------------------------------------------------ hubs
create table if not exists vault.hub_actor (
    hk_actor      bytea       primary key,
    system_id     text        not null,
    role_name     text        not null,
    load_ts       timestamptz not null default clock_timestamp(),
    record_source text        not null
);

create table if not exists vault.hub_tenant (
    hk_tenant     bytea       primary key,
    tenant_id     text        not null,
    load_ts       timestamptz not null default clock_timestamp(),
    record_source text        not null
);

create table if not exists vault.hub_script (
    hk_script     bytea       primary key,
    script_name   text        not null,
    load_ts       timestamptz not null default clock_timestamp(),
    record_source text        not null
);

-- ------------------------------------------------------------------ links
create table if not exists vault.link_event_actor (
    hk_event_actor bytea       primary key,
    hk_event       bytea       not null,
    hk_actor       bytea       not null,
    load_ts        timestamptz not null default clock_timestamp(),
    record_source  text        not null
);
select vault.index_if_table('link_event_actor', 'create index if not exists link_event_actor_actor on vault.link_event_actor (hk_actor)');
select vault.index_if_table('link_event_actor', 'create index if not exists link_event_actor_event on vault.link_event_actor (hk_event)');

create table if not exists vault.link_event_tenant (
    hk_event_tenant bytea       primary key,
    hk_event        bytea       not null,
    hk_tenant       bytea       not null,
    load_ts         timestamptz not null default clock_timestamp(),
    record_source   text        not null
);
select vault.index_if_table('link_event_tenant', 'create index if not exists link_event_tenant_event on vault.link_event_tenant (hk_event)');

-- A script execution's steps, and the DDL it ran, linked to the script.
create table if not exists vault.link_script_event (
    hk_script_event bytea       primary key,
    hk_script       bytea       not null,
    hk_event        bytea       not null,
    execution_id    uuid        not null,
    load_ts         timestamptz not null default clock_timestamp(),
    record_source   text        not null
);
create index if not exists link_script_event_execution on vault.link_script_event (execution_id);
create index if not exists link_script_event_event on vault.link_script_event (hk_event);

-- ------------------------------------------------------------------ satellites on hub_object
-- An object's definitions over time: a row only when the definition's hash diff differs from
-- the row before it (in WAL order), so the rows are the object's schema history.
create table if not exists vault.sat_object_definition (
    hk_object     bytea       not null,
    hk_event      bytea       not null,
    load_ts       timestamptz not null default clock_timestamp(),
    effective_at  timestamptz not null,
    commit_lsn    pg_lsn      not null,
    position      integer     not null,
    hash_diff     bytea       not null,
    dropped       boolean     not null default false,
    definition    jsonb,
    record_source text        not null,
    primary key (hk_object, hk_event)
);
create index if not exists sat_object_definition_order on vault.sat_object_definition (hk_object, commit_lsn, position);

create table if not exists vault.sat_object_compliance (
    hk_object     bytea       not null,
    hk_event      bytea       not null,
    load_ts       timestamptz not null default clock_timestamp(),
    effective_at  timestamptz not null,
    commit_lsn    pg_lsn      not null,
    position      integer     not null,
    hash_diff     bytea       not null,
    tags          text[]      not null,
    columns       jsonb       not null,
    record_source text        not null,
    primary key (hk_object, hk_event)
);
create index if not exists sat_object_compliance_order on vault.sat_object_compliance (hk_object, commit_lsn, position);

alter table vault.sat_ddl add column if not exists execution_id uuid;
alter table vault.sat_ddl add column if not exists untracked boolean not null default false;
alter table vault.sat_ddl add column if not exists parent_identity text;

-- Reporting reads by time, kind and tenant.
select vault.index_if_table('sat_event', 'create index if not exists sat_event_kind_time on vault.sat_event (kind, commit_time)');
select vault.index_if_table('sat_event', 'create index if not exists sat_event_tenant on vault.sat_event (tenant_id, commit_time) where tenant_id is not null');
create index if not exists sat_script_execution_status on vault.sat_script_execution (status, step_at);

select vault.ensure_insert_only();

-- ------------------------------------------------------------------ tenant isolation
-- A reporting role per tenant sees only that tenant's events: row-level security on every table
-- that holds event facts. The loader (the tables' owner) is not subject to it.
create table if not exists vault.tenant_reader (
    role_name text primary key,
    tenant_id text not null
);

-- Each reader may read its own mapping only (row-level security on the mapping itself), so the
-- lookup runs with the reader's own current_user.
alter table vault.tenant_reader enable row level security;
drop policy if exists own_row on vault.tenant_reader;
create policy own_row on vault.tenant_reader for select using (role_name = current_user::text);

create or replace function vault.reader_tenant()
returns text
language sql stable
set search_path = pg_catalog, pg_temp
as $$ select tenant_id from vault.tenant_reader where role_name = current_user::text $$;

drop function if exists vault.create_tenant_reader(text, text, text);
create function vault.create_tenant_reader(reader text, tenant text, password text default null)
returns text
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
    if tenant is null or btrim(tenant) = '' then
        raise exception 'create_tenant_reader: tenant id must not be empty' using errcode = '22023';
    end if;
    if not exists (select 1 from pg_roles where rolname = reader) then
        if password is null then
            execute format('create role %I nologin', reader);
        else
            execute format('create role %I login password %L', reader, password);
        end if;
    end if;
    execute format('grant pgtrail_vault_reader to %I', reader);
    insert into vault.tenant_reader as t (role_name, tenant_id) values (reader, tenant)
        on conflict (role_name) do update set tenant_id = excluded.tenant_id;
    return format('%s reads tenant %s', quote_ident(reader), tenant);
end
$$;

do $$
begin
    if not exists (select 1 from pg_roles where rolname = 'pgtrail_vault_reader') then
        create role pgtrail_vault_reader nologin;
    end if;
end
$$;
grant usage on schema vault to pgtrail_vault_reader;
grant select on all tables in schema vault to pgtrail_vault_reader;

do $$
declare
    t text;
begin
    -- tables whose rows are facts of one event (keyed by hk_event)
    foreach t in array array['hub_event', 'sat_event', 'sat_ddl', 'sat_row_change', 'sat_operation',
                             'sat_script_execution', 'sat_security_event', 'link_event_object',
                             'link_event_actor', 'link_event_tenant', 'link_script_event',
                             'sat_object_definition', 'sat_object_compliance'] loop
        continue when not vault.is_table(t);  -- part 7: a view of vault.link_event
        execute format('alter table vault.%I enable row level security', t);
        execute format('drop policy if exists tenant_reader on vault.%I', t);
        if t = 'sat_event' then
            execute 'create policy tenant_reader on vault.sat_event for select to pgtrail_vault_reader '
                    'using (tenant_id = vault.reader_tenant())';
        else
            execute format('create policy tenant_reader on vault.%I for select to pgtrail_vault_reader '
                           'using (exists (select 1 from vault.sat_event s where s.hk_event = %I.hk_event '
                           'and s.tenant_id = vault.reader_tenant()))', t, t);
        end if;
    end loop;
end
$$;

-- ------------------------------------------------------------------ reporting views
drop view if exists vault.event_history;
create view vault.event_history with (security_invoker = true) as
select e.event_id,
       s.kind,
       coalesce(s.commit_time, sc.step_at) as commit_time,
       s.commit_lsn,
       s.position,
       d.database_name,
       coalesce(ddl.parent_identity, o.object_identity) as object_identity,
       s.session_user_name,
       s.application_name,
       s.client_addr,
       s.tenant_id,
       coalesce(ddl.command_tag, upper(rc.operation), op.operation_type,
                'SCRIPT ' || upper(sc.status), 'SECURITY') as action,
       coalesce(ddl.statement, sc.failed_statement) as statement,
       rc.primary_key,
       rc.new_values,
       rc.old_values,
       coalesce(op.name, sc.script_name, xs.script_name) as operation_name,
       coalesce(op.status, sc.status) as status,
       coalesce(op.error, sc.error, sec.reason) as error,
       coalesce(sc.ticket_number, xs.ticket_number) as ticket_number,
       coalesce(ddl.execution_id, sc.execution_id) as execution_id,
       ddl.untracked,
       s.tags
  from vault.hub_event e
  join vault.sat_event s using (hk_event)
  left join vault.link_event_object l using (hk_event)
  left join vault.hub_object o on o.hk_object = l.hk_object
  left join vault.hub_database d on d.hk_database = l.hk_database
  left join vault.sat_ddl ddl using (hk_event)
  left join vault.sat_row_change rc using (hk_event)
  left join vault.sat_operation op using (hk_event)
  left join vault.sat_script_execution sc using (hk_event)
  left join vault.sat_security_event sec using (hk_event)
  left join lateral (select x.script_name, x.ticket_number from vault.sat_script_execution x
                      where x.execution_id = ddl.execution_id and x.status = 'started' limit 1) xs on true;

-- One row per script execution: its start joined to its end.
create or replace view vault.script_executions with (security_invoker = true) as
select st.execution_id,
       st.script_name,
       st.script_type,
       st.category,
       st.version,
       st.file_path,
       st.checksum,
       coalesce(fin.status, 'started') as status,
       st.step_at as started_at,
       fin.step_at as finished_at,
       coalesce(fin.duration_ms, extract(epoch from fin.step_at - st.step_at) * 1000) as duration_ms,
       fin.rows_affected,
       fin.error,
       fin.error_state,
       st.ticket_number,
       st.business_justification,
       se.session_user_name as executed_by,
       se.tenant_id,
       d.database_name
  from vault.sat_script_execution st
  join vault.sat_event se on se.hk_event = st.hk_event
  left join vault.link_event_object l on l.hk_event = st.hk_event
  left join vault.hub_database d on d.hk_database = l.hk_database
  left join lateral (select f.* from vault.sat_script_execution f
                      where f.execution_id = st.execution_id and f.status in ('completed', 'failed')
                      order by f.step_at desc limit 1) fin on true
 where st.status = 'started';

grant select on vault.event_history, vault.script_executions to pgtrail_vault_reader;

-- ------------------------------------------------------------------ the original reporting API
create schema if not exists script_tracking;
grant usage on schema script_tracking to pgtrail_vault_reader;

drop function if exists script_tracking.get_execution_history(integer, text, text, text, timestamptz);
create function script_tracking.get_execution_history(
    max_rows integer default 100,
    script_name_filter text default null,
    status_filter text default null,
    tenant_filter text default null,
    since timestamptz default null)
returns table (execution_id uuid, script_name text, script_type text, version text, status text,
               started_at timestamptz, finished_at timestamptz, duration_ms double precision,
               rows_affected bigint, error text, ticket_number text, business_justification text,
               executed_by text, tenant_id text, database_name text)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select x.execution_id, x.script_name, x.script_type, x.version, x.status, x.started_at, x.finished_at,
           x.duration_ms, x.rows_affected, x.error, x.ticket_number, x.business_justification, x.executed_by,
           x.tenant_id, x.database_name
      from vault.script_executions x
     where (script_name_filter is null or x.script_name = script_name_filter)
       and (status_filter is null or x.status = status_filter)
       and (tenant_filter is null or x.tenant_id = tenant_filter)
       and (since is null or x.started_at >= since)
     order by x.started_at desc
     limit max_rows
$$;

-- The enterprise dashboard: (section, name, value, detail) rows, read only from the vault.
drop function if exists script_tracking.get_enterprise_dashboard(timestamptz);
create function script_tracking.get_enterprise_dashboard(since timestamptz default now() - interval '30 days')
returns table (section text, name text, value double precision, detail jsonb)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    with ev as (
        select s.hk_event, s.kind, s.commit_time, s.session_user_name, s.tenant_id, s.tags
          from vault.sat_event s
         where s.commit_time >= since or s.commit_time is null
    )
    select 'events by kind', kind, count(*)::float8, null::jsonb from ev group by kind
    union all
    select 'events by database', d.database_name, count(*)::float8, null
      from ev join vault.link_event_object l using (hk_event) join vault.hub_database d using (hk_database)
     group by d.database_name
    union all
    (select 'events by actor', coalesce(session_user_name, '(unknown)'), count(*)::float8, null
       from ev group by 2 order by 3 desc limit 20)
    union all
    (select 'events by tenant', coalesce(tenant_id, '(none)'), count(*)::float8, null
       from ev group by 2 order by 3 desc limit 20)
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
    select 'last activity', d.database_name, extract(epoch from max(s.commit_time)),
           jsonb_build_object('at', max(s.commit_time))
      from vault.sat_event s join vault.link_event_object l using (hk_event) join vault.hub_database d using (hk_database)
     group by d.database_name
$$;

-- An object's definition at a point in time: the latest satellite row at or before it.
create or replace function vault.object_definition_at(identity text, at timestamptz, database text default null)
returns table (database_name text, effective_at timestamptz, dropped boolean, definition jsonb, hk_event bytea)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select distinct on (o.hk_object) o.database_name, d.effective_at, d.dropped, d.definition, d.hk_event
      from vault.hub_object o
      join vault.sat_object_definition d using (hk_object)
     where o.object_identity = identity and (database is null or o.database_name = database)
       and d.effective_at <= at
     order by o.hk_object, d.commit_lsn desc, d.position desc
$$;

grant execute on function script_tracking.get_execution_history(integer, text, text, text, timestamptz),
                          script_tracking.get_enterprise_dashboard(timestamptz),
                          vault.object_definition_at(text, timestamptz, text) to pgtrail_vault_reader;
