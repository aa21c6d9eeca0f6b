-- pgtrail vault, part 7: events as one non-historized (transactional) link. Idempotent.
--
-- An event has no business key of its own beyond its id and never changes: Data Vault 2.0 models
-- it as a non-historized link, one row per event carrying the hash keys of the hubs it touches
-- (database, object, actor, tenant) and its immutable facts (id, kind, WAL position, commit time,
-- who, tags). A row change's payload is in the link too (operation, table, key, values: the
-- kind's payload columns), so a row change costs one row instead of six (hub_event, sat_event,
-- three links, sat_row_change). The other kinds' payloads stay in their satellites (sat_ddl,
-- sat_operation, ...): wide, and one kind in five.
--
-- A vault of a previous model is moved into this one here, in the install's one transaction:
-- hub_event, sat_event, link_event_object/_actor/_tenant and sat_row_change become views of
-- vault.link_event with the same names and columns, so every report, query and grant written
-- against them still works.

create table if not exists vault.link_event (
    hk_event          bytea       primary key,   -- hash key of the event id (sink/hashing.py)
    event_id          uuid        not null,
    hk_database       bytea,
    hk_object         bytea,
    hk_actor          bytea,
    hk_tenant         bytea,
    load_ts           timestamptz not null default clock_timestamp(),
    kind              text        not null,
    schema_version    integer     not null,
    xid               bigint,
    commit_lsn        pg_lsn,
    change_lsn        pg_lsn,
    position          integer     not null,
    commit_time       timestamptz,
    session_user_name text,
    current_user_name text,
    application_name  text,
    client_addr       text,
    backend_pid       integer,
    tenant_id         text,
    tags              text[]      not null default '{}',
    record_source     text        not null
);

-- A row change's payload (kind 'dml'; null for every other kind), as sat_row_change held it.
alter table vault.link_event
    add column if not exists operation       text,
    add column if not exists schema_name     text,
    add column if not exists table_name      text,
    add column if not exists primary_key     jsonb,
    add column if not exists new_values      jsonb,
    add column if not exists old_values      jsonb,
    add column if not exists changed_columns text[],
    add column if not exists redacted        jsonb,
    add column if not exists unchanged_toast text[];

-- pgtrail's own DDL (its install, the tracking trigger): attributed to pgtrail, never drift
alter table vault.sat_ddl add column if not exists managed_by text;

-- Values left out of an event because it exceeded Kafka's message limit (consumer/oversize.py):
-- where each was, its size and SHA-256, and where to read it (table, column, primary key).
create table if not exists vault.sat_oversize_value (
    hk_event      bytea       not null,
    path          text        not null,
    load_ts       timestamptz not null default clock_timestamp(),
    size_bytes    bigint      not null,
    sha256        text        not null,
    fetch_from    jsonb,
    record_source text        not null,
    primary key (hk_event, path)
);

-- The link hash key of two hub keys, as sink/hashing.py's hk_link computes it.
create or replace function vault.hk_link(a bytea, b bytea)
returns bytea
language sql immutable strict parallel safe
set search_path = pg_catalog, pg_temp
as $$ select sha256(convert_to(upper(encode(a, 'hex')) || '||' || upper(encode(b, 'hex')), 'UTF8')) $$;

-- ------------------------------------------------------------------ the move from the previous model
do $$
declare
    guarded boolean;   -- the link has its insert-only trigger
begin
    if vault.is_table('sat_event') then
        insert into vault.link_event (hk_event, event_id, hk_database, hk_object, hk_actor, hk_tenant, load_ts, kind,
                                      schema_version, xid, commit_lsn, change_lsn, position, commit_time,
                                      session_user_name, current_user_name, application_name, client_addr,
                                      backend_pid, tenant_id, tags, record_source)
        select e.hk_event, e.event_id, l.hk_database, l.hk_object,
               (select a.hk_actor from vault.link_event_actor a where a.hk_event = e.hk_event limit 1),
               (select t.hk_tenant from vault.link_event_tenant t where t.hk_event = e.hk_event limit 1),
               least(e.load_ts, s.load_ts), s.kind, s.schema_version, s.xid, s.commit_lsn, s.change_lsn, s.position,
               s.commit_time, s.session_user_name, s.current_user_name, s.application_name, s.client_addr,
               s.backend_pid, s.tenant_id, s.tags, s.record_source
          from vault.hub_event e
          join vault.sat_event s using (hk_event)
          left join lateral (select o.hk_database, o.hk_object from vault.link_event_object o
                              where o.hk_event = e.hk_event limit 1) l on true
        on conflict do nothing;
        raise notice 'pgtrail vault: % events moved into vault.link_event', (select count(*) from vault.link_event);
        -- the views and row-level security policies built on them are made again below
        drop table vault.link_event_object, vault.link_event_actor, vault.link_event_tenant, vault.sat_event,
                   vault.hub_event cascade;
    end if;
    -- row changes' payloads into their events (the link is insert-only, but not for its own move)
    if vault.is_table('sat_row_change') then
        -- a link made above in this install has no insert-only trigger yet (it comes at the end)
        guarded := exists (select 1 from pg_trigger where tgrelid = 'vault.link_event'::regclass
                                                        and tgname = 'insert_only');
        if guarded then
            alter table vault.link_event disable trigger insert_only;
        end if;
        update vault.link_event l
           set operation = r.operation, schema_name = r.schema_name, table_name = r.table_name,
               primary_key = r.primary_key, new_values = r.new_values, old_values = r.old_values,
               changed_columns = r.changed_columns, redacted = r.redacted, unchanged_toast = r.unchanged_toast
          from vault.sat_row_change r
         where r.hk_event = l.hk_event;
        raise notice 'pgtrail vault: % row changes moved into vault.link_event', (select count(*) from vault.sat_row_change);
        if guarded then
            alter table vault.link_event enable trigger insert_only;
        end if;
        drop table vault.sat_row_change cascade;   -- the views on it are made again below and in part 8
    end if;
end
$$;

-- A row change's payload is whole, and only row changes have one (rows loaded before the move
-- are as their satellite held them: not checked again).
do $$
begin
    if not exists (select 1 from pg_constraint where conrelid = 'vault.link_event'::regclass
                                                 and conname = 'link_event_row_change') then
        alter table vault.link_event add constraint link_event_row_change check (
            (kind = 'dml') = (operation is not null)
            and (operation is null or (schema_name is not null and table_name is not null and primary_key is not null
                                       and changed_columns is not null and redacted is not null
                                       and unchanged_toast is not null))) not valid;
    end if;
end
$$;

-- Only the indexes the reports read: an object's history, the latest events, a tenant's events.
create index if not exists link_event_by_object on vault.link_event (hk_object);
create index if not exists link_event_by_time on vault.link_event (commit_time desc nulls last, commit_lsn desc, position desc);
create index if not exists link_event_by_tenant on vault.link_event (tenant_id, commit_time) where tenant_id is not null;

-- ------------------------------------------------------------------ the previous model's names, as views
create or replace view vault.hub_event with (security_invoker = true) as
select hk_event, event_id, load_ts, record_source from vault.link_event;

create or replace view vault.sat_event with (security_invoker = true) as
select hk_event, load_ts, kind, schema_version, xid, commit_lsn, change_lsn, position, commit_time,
       session_user_name, current_user_name, application_name, client_addr, backend_pid, tenant_id, tags,
       record_source
  from vault.link_event;

create or replace view vault.link_event_object with (security_invoker = true) as
select vault.hk_link(hk_event, hk_object) as hk_event_object, hk_event, hk_object, hk_database, load_ts, record_source
  from vault.link_event where hk_object is not null;

create or replace view vault.link_event_actor with (security_invoker = true) as
select vault.hk_link(hk_event, hk_actor) as hk_event_actor, hk_event, hk_actor, load_ts, record_source
  from vault.link_event where hk_actor is not null;

create or replace view vault.sat_row_change with (security_invoker = true) as
select hk_event, load_ts, operation, schema_name, table_name, primary_key, new_values, old_values, changed_columns,
       record_source, redacted, unchanged_toast
  from vault.link_event where operation is not null;

create or replace view vault.link_event_tenant with (security_invoker = true) as
select vault.hk_link(hk_event, hk_tenant) as hk_event_tenant, hk_event, hk_tenant, load_ts, record_source
  from vault.link_event where hk_tenant is not null;

-- ------------------------------------------------------------------ tenant isolation
-- A reporting role per tenant sees only that tenant's events: row-level security on the link and on
-- every table that holds facts of one event (keyed by hk_event). The loader (the tables' owner) is
-- not subject to it; the views are security_invoker, so they are filtered too.
alter table vault.link_event enable row level security;
drop policy if exists tenant_reader on vault.link_event;
-- (select vault.reader_tenant()): looked up once per query (an InitPlan), not once per row; the
-- same value, since it is stable within a statement. A tenant's count(*) at 100,000 events: 13-17 ms
-- -> 3-4 ms.
create policy tenant_reader on vault.link_event for select to pgtrail_vault_reader
    using (tenant_id = (select vault.reader_tenant()));
do $$
declare
    t text;
begin
    foreach t in array array['sat_ddl', 'sat_operation', 'sat_script_execution',
                             'sat_security_event', 'sat_log_entry', 'link_script_event', 'sat_object_definition',
                             'sat_object_compliance'] loop
        execute format('alter table vault.%I enable row level security', t);
        execute format('drop policy if exists tenant_reader on vault.%I', t);
        execute format('create policy tenant_reader on vault.%I for select to pgtrail_vault_reader '
                       'using (exists (select 1 from vault.link_event s where s.hk_event = %I.hk_event '
                       'and s.tenant_id = (select vault.reader_tenant())))', t, t);
    end loop;
end
$$;

-- ------------------------------------------------------------------ reporting views
-- Simulated history (script_tracking.import_historical_operations(days, true)) is never real: its
-- log entries carry `simulated`, and so does the details of the LOG_IMPORT operation reporting it.
-- No SET clause, so PostgreSQL inlines it into the reports' queries: with one it was a function
-- call per event (the dashboard at 100,000 events: 1.3 s, two thirds of it these calls). Not a
-- SECURITY DEFINER; its operators and type are schema-qualified, so no search_path can change them.
create or replace function vault.simulated_operation(operation_type text, details jsonb)
returns boolean
language sql immutable parallel safe
as $$ select operation_type operator(pg_catalog.=) 'LOG_IMPORT'
             and coalesce((details operator(pg_catalog.->>) 'simulated')::pg_catalog.bool, false) $$;

create or replace view vault.event_history with (security_invoker = true) as
select s.event_id,
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
       coalesce(ddl.command_tag, upper(s.operation), op.operation_type,
                'SCRIPT ' || upper(sc.status), le.command_tag, upper(le.category), 'SECURITY') as action,
       coalesce(ddl.statement, sc.failed_statement, le.statement) as statement,
       s.primary_key,
       s.new_values,
       s.old_values,
       coalesce(op.name, sc.script_name, xs.script_name, ddl.managed_by) as operation_name,
       coalesce(op.status, sc.status, le.status) as status,
       coalesce(op.error, sc.error, sec.reason, le.error) as error,
       coalesce(sc.ticket_number, xs.ticket_number) as ticket_number,
       coalesce(ddl.execution_id, sc.execution_id) as execution_id,
       ddl.untracked,
       s.tags,
       coalesce(le.simulated, vault.simulated_operation(op.operation_type, op.details), false) as simulated,
       le.duration_ms as log_duration_ms,
       s.hk_event   -- last: added after the others (pgtrail history finds its latest events by it)
  from vault.link_event s
  left join vault.hub_object o on o.hk_object = s.hk_object
  left join vault.hub_database d on d.hk_database = s.hk_database
  left join vault.sat_ddl ddl using (hk_event)
  left join vault.sat_operation op using (hk_event)
  left join vault.sat_script_execution sc using (hk_event)
  left join vault.sat_security_event sec using (hk_event)
  left join vault.sat_log_entry le using (hk_event)
  left join lateral (select x.script_name, x.ticket_number from vault.sat_script_execution x
                      where x.execution_id = ddl.execution_id and x.status = 'started' limit 1) xs on true;

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
  join vault.link_event se on se.hk_event = st.hk_event
  left join vault.hub_database d on d.hk_database = se.hk_database
  left join lateral (select f.* from vault.sat_script_execution f
                      where f.execution_id = st.execution_id and f.status in ('completed', 'failed')
                      order by f.step_at desc limit 1) fin on true
 where st.status = 'started';

-- The reporting API (get_execution_history, get_enterprise_dashboard, get_object_history): part 8.

grant select on vault.event_history, vault.script_executions to pgtrail_vault_reader;

grant usage on schema vault to pgtrail_vault_reader;
grant select on all tables in schema vault to pgtrail_vault_reader;

select vault.ensure_insert_only();
