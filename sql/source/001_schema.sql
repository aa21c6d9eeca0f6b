-- pgtrail source side, part 1: schema, roles, configuration and the signing key. Idempotent.
--
-- Everything pgtrail tracks leaves the database as a logical decoding message with prefix
-- 'pgtrail', read by the consumer through wal2json. Each message is signed with an HMAC whose key
-- only the tracking functions (SECURITY DEFINER, owned by the installer) and the consumer's role
-- can read, so a message emitted by anyone else with pg_logical_emit_message is detected.

-- The event triggers are recreated by 003_ddl.sql. Dropping them first keeps an upgrade from
-- running the old trigger functions against half-replaced ones; the installer applies all files
-- in one transaction, so no DDL of other sessions goes untracked meanwhile.
drop event trigger if exists pgtrail_ddl_command_end;
drop event trigger if exists pgtrail_sql_drop;
drop event trigger if exists pgtrail_table_rewrite;
drop event trigger if exists pgtrail_ddl_command_start;

create schema if not exists script_tracking;
revoke all on schema script_tracking from public;
grant usage on schema script_tracking to public;

-- Group roles. Members of pgtrail_admin choose what is tracked; members of pgtrail_consumer may
-- read the signing key and send heartbeats (the consumer's login role also needs REPLICATION).
do $$
begin
    if not exists (select 1 from pg_roles where rolname = 'pgtrail_admin') then
        create role pgtrail_admin nologin;
    end if;
    if not exists (select 1 from pg_roles where rolname = 'pgtrail_consumer') then
        create role pgtrail_consumer nologin;
    end if;
end
$$;

create table if not exists script_tracking.install_history (
    version      integer     primary key,
    installed_at timestamptz not null default now(),
    installed_by text        not null default session_user
);
revoke all on script_tracking.install_history from public;
grant select on script_tracking.install_history to public;

-- HMAC-SHA256 key, with its inner and outer pads precomputed so that signing needs only the
-- core sha256() (no extension). Readable by its owner only.
create table if not exists script_tracking.signing_key (
    kid        integer     primary key,
    key        bytea       not null check (length(key) = 32),
    ipad       bytea       not null,
    opad       bytea       not null,
    created_at timestamptz not null default now()
);
revoke all on script_tracking.signing_key from public;

create or replace function script_tracking._new_signing_key()
returns integer
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    k bytea := decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex');
    padded bytea := k || decode(repeat('00', 32), 'hex');
    ipad bytea := padded;
    opad bytea := padded;
    next_kid integer;
begin
    for i in 0..63 loop
        ipad := set_byte(ipad, i, get_byte(padded, i) # 54);   -- 0x36
        opad := set_byte(opad, i, get_byte(padded, i) # 92);   -- 0x5c
    end loop;
    select coalesce(max(kid), 0) + 1 into next_kid from script_tracking.signing_key;
    insert into script_tracking.signing_key (kid, key, ipad, opad) values (next_kid, k, ipad, opad);
    return next_kid;
end
$$;
revoke all on function script_tracking._new_signing_key() from public;

do $$
begin
    if not exists (select 1 from script_tracking.signing_key) then
        perform script_tracking._new_signing_key();
    end if;
end
$$;

-- Schemas whose tables are all tracked, now and when created later.
create table if not exists script_tracking.tracked_schemas (
    schema_name text        primary key,
    added_at    timestamptz not null default now(),
    added_by    text        not null default session_user
);
revoke all on script_tracking.tracked_schemas from public;
grant select on script_tracking.tracked_schemas to public;

-- Explicit column classification; overrides the name rules and column COMMENT tags.
create table if not exists script_tracking.column_classification (
    schema_name    text not null,
    table_name     text not null,
    column_name    text not null,
    classification text not null check (classification in ('PII', 'PHI', 'FINANCIAL', 'NONE')),
    policy         text check (policy in ('mask', 'hash', 'drop', 'keep')),
    primary key (schema_name, table_name, column_name)
);
revoke all on script_tracking.column_classification from public;
grant select on script_tracking.column_classification to public;
grant insert, update, delete on script_tracking.column_classification to pgtrail_admin;

-- Settings of the tracking functions (audit_hook: an existing audit function to call as well).
create table if not exists script_tracking.config (
    key   text primary key,
    value text not null
);
revoke all on script_tracking.config from public;
grant select on script_tracking.config to public;
