-- pgtrail Data Vault 2.0 store, version 1. Idempotent: safe to run again.
--
-- Insert-only: hubs hold business keys, links relate them, satellites hold descriptive facts.
-- Hash keys are computed by the sink (sink/hashing.py documents the one standard). Every table's
-- key makes a replayed load a no-op, so loads are idempotent, also with several sinks at once.

create schema if not exists vault;

-- Since part 7 the event tables of parts 1-4 (hub_event, sat_event, link_event_*, sat_row_change)
-- are views of vault.link_event; what these parts do to them as tables is done only while they are
-- tables.
create or replace function vault.is_table(name text)
returns boolean
language sql stable
set search_path = pg_catalog, pg_temp
as $$ select exists (select 1 from pg_class where relnamespace = 'vault'::regnamespace
                        and relname = name and relkind in ('r', 'p')) $$;

create or replace function vault.index_if_table(tbl text, ddl text)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$ begin if vault.is_table(tbl) then execute ddl; end if; end $$;

create table if not exists vault.hub_database (
    hk_database   bytea       primary key,
    system_id     text        not null,
    database_name text        not null,
    load_ts       timestamptz not null default clock_timestamp(),
    record_source text        not null
);

create table if not exists vault.hub_object (
    hk_object       bytea       primary key,
    system_id       text        not null,
    database_name   text        not null,
    object_identity text        not null,
    load_ts         timestamptz not null default clock_timestamp(),
    record_source   text        not null
);

create table if not exists vault.hub_event (
    hk_event      bytea       primary key,
    event_id      uuid        not null unique,
    load_ts       timestamptz not null default clock_timestamp(),
    record_source text        not null
);

-- Which object an event touched, in which database.
create table if not exists vault.link_event_object (
    hk_event_object bytea       primary key,
    hk_event        bytea       not null,
    hk_object       bytea       not null,
    hk_database     bytea       not null,
    load_ts         timestamptz not null default clock_timestamp(),
    record_source   text        not null
);
select vault.index_if_table('link_event_object', 'create index if not exists link_event_object_object on vault.link_event_object (hk_object)');

-- What every event shares: kind, position in the source's WAL, who.
create table if not exists vault.sat_event (
    hk_event         bytea       primary key,
    load_ts          timestamptz not null default clock_timestamp(),
    kind             text        not null,
    schema_version   integer     not null,
    xid              bigint,
    commit_lsn       pg_lsn,
    change_lsn       pg_lsn,
    position         integer     not null,
    commit_time      timestamptz,
    session_user_name text,
    current_user_name text,
    application_name text,
    client_addr      text,
    backend_pid      integer,
    tenant_id        text,
    tags             text[]      not null default '{}',
    record_source    text        not null
);
select vault.index_if_table('sat_event', 'create index if not exists sat_event_time on vault.sat_event (commit_time)');

create table if not exists vault.sat_ddl (
    hk_event        bytea       primary key,
    load_ts         timestamptz not null default clock_timestamp(),
    command_tag     text        not null,
    object_type     text,
    schema_name     text,
    object_identity text,
    statement       text,
    record_source   text        not null
);

create table if not exists vault.sat_row_change (
    hk_event        bytea       primary key,
    load_ts         timestamptz not null default clock_timestamp(),
    operation       text        not null,
    schema_name     text        not null,
    table_name      text        not null,
    primary_key     jsonb       not null,
    new_values      jsonb,
    old_values      jsonb,
    changed_columns text[]      not null default '{}',
    record_source   text        not null
);

create table if not exists vault.sat_operation (
    hk_event       bytea       primary key,
    load_ts        timestamptz not null default clock_timestamp(),
    operation_id   uuid        not null,
    name           text        not null,
    operation_type text        not null,
    record_source  text        not null
);

-- Insert-only is enforced, not just promised.
create or replace function vault.forbid_change()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
    raise exception 'pgtrail vault is insert-only: % on %.% refused', tg_op, tg_table_schema, tg_table_name
        using errcode = '42501';
end
$$;

-- Attaches the insert-only trigger to every table of the schema that lacks it; each install file
-- ends by calling it, so a table added later is covered too.
create or replace function vault.ensure_insert_only()
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    t regclass;
begin
    for t in select c.oid::regclass from pg_class c
              where c.relnamespace = 'vault'::regnamespace and c.relkind = 'r'
                and c.relname not in ('install_history', 'tenant_reader')
                and not exists (select 1 from pg_trigger g where g.tgrelid = c.oid and g.tgname = 'insert_only') loop
        execute format('create trigger insert_only before update or delete or truncate on %s '
                       'for each statement execute function vault.forbid_change()', t);
    end loop;
end
$$;
select vault.ensure_insert_only();

create table if not exists vault.install_history (
    version      integer     primary key,
    installed_at timestamptz not null default now()
);
