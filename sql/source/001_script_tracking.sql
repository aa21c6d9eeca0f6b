-- pgtrail source side, version 1: schema script_tracking, DDL event triggers, track_operation,
-- per-transaction attribution context for tracked tables. Idempotent: safe to run again.
--
-- Every tracked fact leaves the database as a logical decoding message with prefix 'pgtrail'
-- (pg_logical_emit_message), read by the consumer through wal2json. Transactional messages
-- commit or roll back with the work they describe.

create schema if not exists script_tracking;
revoke all on schema script_tracking from public;
grant usage on schema script_tracking to public;

create table if not exists script_tracking.install_history (
    version     integer     not null,
    installed_at timestamptz not null default now(),
    installed_by text        not null default session_user,
    primary key (version)
);

-- Who is acting, evaluated in the caller's own context (SECURITY INVOKER on purpose: inside a
-- SECURITY DEFINER function current_user would be the owner, not the caller).
create or replace function script_tracking.actor()
returns jsonb
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select jsonb_build_object(
        'session_user', session_user::text,
        'current_user', current_user::text,
        'application_name', nullif(current_setting('application_name', true), ''),
        'client_addr', host(inet_client_addr()),
        'backend_pid', pg_backend_pid(),
        'tenant_id', nullif(current_setting('pgtrail.tenant_id', true), ''))
$$;

-- The one place messages are emitted. SECURITY DEFINER so that roles without the right to call
-- pg_logical_emit_message directly can still be tracked. Every role may call it: the event
-- triggers and tracking functions run as the caller, so that the actor they record is the caller.
-- A caller can therefore also emit a message of its own making; telling those apart from genuine
-- ones (an HMAC keyed by a secret only the tracking functions can read) is the source-side
-- tracking issue's tamper-evidence work.
create or replace function script_tracking.emit(kind text, body jsonb, transactional boolean default true)
returns pg_lsn
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
begin
    return pg_logical_emit_message(transactional, 'pgtrail',
        (jsonb_build_object('v', 1, 'kind', kind) || body)::text);
end
$$;
grant execute on function script_tracking.emit(text, jsonb, boolean) to public;

-- DDL: one transactional message per affected object, on ddl_command_end.
create or replace function script_tracking.on_ddl_command_end()
returns event_trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    r record;
    who jsonb := script_tracking.actor();
begin
    for r in select * from pg_event_trigger_ddl_commands() loop
        -- objects created inside CREATE EXTENSION are reported with the extension itself
        continue when r.in_extension;
        continue when r.schema_name = 'script_tracking';
        perform script_tracking.emit('ddl', jsonb_build_object(
            'command_tag', r.command_tag,
            'object_type', r.object_type,
            'schema_name', r.schema_name,
            'object_identity', r.object_identity,
            'statement', current_query(),
            'actor', who));
    end loop;
end
$$;

-- DROP reports its objects only here. ALTER ... DROP COLUMN also fires ddl_command_end, which
-- already reports it, so only DROP commands are taken from sql_drop.
create or replace function script_tracking.on_sql_drop()
returns event_trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    r record;
    who jsonb := script_tracking.actor();
begin
    if tg_tag not like 'DROP %' then
        return;
    end if;
    for r in select * from pg_event_trigger_dropped_objects() where original loop
        continue when r.schema_name = 'script_tracking';
        perform script_tracking.emit('ddl', jsonb_build_object(
            'command_tag', tg_tag,
            'object_type', r.object_type,
            'schema_name', r.schema_name,
            'object_identity', r.object_identity,
            'statement', current_query(),
            'actor', who));
    end loop;
end
$$;

do $$
begin
    if not exists (select 1 from pg_event_trigger where evtname = 'pgtrail_ddl_command_end') then
        create event trigger pgtrail_ddl_command_end on ddl_command_end
            execute function script_tracking.on_ddl_command_end();
    end if;
    if not exists (select 1 from pg_event_trigger where evtname = 'pgtrail_sql_drop') then
        create event trigger pgtrail_sql_drop on sql_drop
            execute function script_tracking.on_sql_drop();
    end if;
end
$$;

-- track_operation(name, type): an attributed operation event; returns its id.
create or replace function script_tracking.track_operation(operation_name text, operation_type text default 'MANUAL')
returns uuid
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    id uuid := gen_random_uuid();
begin
    if operation_name is null or btrim(operation_name) = '' then
        raise exception 'track_operation: operation name must not be empty' using errcode = '22023';
    end if;
    perform script_tracking.emit('operation', jsonb_build_object(
        'operation_id', id,
        'name', operation_name,
        'operation_type', coalesce(nullif(btrim(operation_type), ''), 'MANUAL'),
        'actor', script_tracking.actor()));
    return id;
end
$$;

-- The original API calls track_operation(...) unqualified: keep that working from public.
create or replace function public.track_operation(operation_name text, operation_type text default 'MANUAL')
returns uuid
language sql
set search_path = pg_catalog, pg_temp
as $$ select script_tracking.track_operation(operation_name, operation_type) $$;

-- Row changes: one 'context' message per transaction (and again if the actor changes within it),
-- emitted by a statement trigger before the first row change of a tracked table, so every DML
-- event of the transaction is attributed to a person, an application and a tenant.
create or replace function script_tracking.emit_context()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    who jsonb := script_tracking.actor();
begin
    if current_setting('pgtrail.context', true) is distinct from who::text then
        perform script_tracking.emit('context', jsonb_build_object('actor', who));
        perform set_config('pgtrail.context', who::text, true);
    end if;
    return null;
end
$$;

create or replace function script_tracking.track_table(tbl regclass)
returns text
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    ident char;
    has_pk boolean;
begin
    select c.relreplident, exists (select 1 from pg_index i where i.indrelid = c.oid and i.indisprimary)
      into ident, has_pk
      from pg_class c where c.oid = tbl;
    if not exists (select 1 from pg_trigger where tgrelid = tbl and tgname = 'pgtrail_context') then
        execute format('create trigger pgtrail_context before insert or update or delete or truncate on %s '
                       'for each statement execute function script_tracking.emit_context()', tbl);
    end if;
    if ident = 'n' or (ident = 'd' and not has_pk) then
        raise warning 'pgtrail: % has no replica identity: UPDATE and DELETE on it cannot be captured; '
                      'add a primary key or ALTER TABLE % REPLICA IDENTITY FULL', tbl, tbl;
        return format('%s tracked; UPDATE/DELETE not capturable (no replica identity)', tbl);
    end if;
    return format('%s tracked', tbl);
end
$$;

create or replace function script_tracking.untrack_table(tbl regclass)
returns text
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
    execute format('drop trigger if exists pgtrail_context on %s', tbl);
    return format('%s untracked', tbl);
end
$$;

insert into script_tracking.install_history (version) values (1)
    on conflict (version) do update set installed_at = now(), installed_by = session_user;
