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

-- Row-level security on the tables of event facts, the reporting views and the reporting API
-- are made in part 7, on the event link.

-- ------------------------------------------------------------------ the original reporting API
create schema if not exists script_tracking;
grant usage on schema script_tracking to pgtrail_vault_reader;

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

grant execute on function vault.object_definition_at(text, timestamptz, text) to pgtrail_vault_reader;
