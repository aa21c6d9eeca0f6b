-- pgtrail source side, part 9: the original reporting API where its users type it. Idempotent.
--
-- script_tracking.get_execution_history(), get_enterprise_dashboard() and get_object_history(...)
-- in a tracked database call the vault's functions of the same names and arguments (sql/vault/
-- 008_reports.sql, the one definition of each report) through the foreign server pgtrail_vault
-- (postgres_fdw), whose user mapping holds the vault credentials. `pgtrail install source
-- --vault-dsn ...` sets the server up (configure_vault); without it the functions say so in one line.
-- A remote function call needs dblink (contrib, like postgres_fdw): postgres_fdw reads tables, not
-- functions with arguments. dblink connects with the foreign server's options and user mapping.
--
-- The functions are SECURITY DEFINER (owned by the installer): the user mapping is used for every
-- caller, and nobody but the installer can read it or use the server otherwise. They read the whole
-- fleet's history, so they are granted to pgtrail_admin and pgtrail_reporter, not to PUBLIC.

do $$
begin
    if not exists (select 1 from pg_roles where rolname = 'pgtrail_reporter') then
        create role pgtrail_reporter nologin;
    end if;
end
$$;

-- Called by `pgtrail install` with bound parameters, so no password is ever part of a statement's
-- text (the DDL event of CREATE USER MAPPING carries the statement: it is `select
-- script_tracking.configure_vault($1, $2)`). server_options: libpq options but user and password
-- (host, port, dbname, sslmode, ...); user_options: user and password.
create or replace function script_tracking.configure_vault(server_options jsonb, user_options jsonb)
returns text
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    opts text;
begin
    if server_options is null or jsonb_typeof(server_options) <> 'object' then
        raise exception 'configure_vault: server options must be a JSON object' using errcode = '22023';
    end if;
    if not exists (select 1 from pg_extension where extname = 'postgres_fdw') then
        create extension postgres_fdw schema script_tracking;
    end if;
    if not exists (select 1 from pg_extension where extname = 'dblink') then
        create extension dblink schema script_tracking;
    end if;
    drop server if exists pgtrail_vault cascade;   -- and its user mappings: replaced below
    select string_agg(format('%I %L', key, value), ', ') into opts from jsonb_each_text(server_options);
    execute format('create server pgtrail_vault foreign data wrapper postgres_fdw%s',
                   coalesce(' options (' || opts || ')', ''));
    select string_agg(format('%I %L', key, value), ', ') into opts from jsonb_each_text(coalesce(user_options, '{}'));
    execute format('create user mapping for public server pgtrail_vault%s', coalesce(' options (' || opts || ')', ''));
    return 'reports read the vault at ' || script_tracking._vault_described();
end
$$;
revoke all on function script_tracking.configure_vault(jsonb, jsonb) from public;

-- host:port/dbname of the vault server: for messages; never a credential (those are in the mapping).
create or replace function script_tracking._vault_described()
returns text
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select coalesce(max(case when o.option_name = 'host' then o.option_value end), 'localhost') || ':'
           || coalesce(max(case when o.option_name = 'port' then o.option_value end), '5432') || '/'
           || coalesce(max(case when o.option_name = 'dbname' then o.option_value end), '?')
      from pg_foreign_server s
      left join lateral pg_options_to_table(s.srvoptions) o on true
     where s.srvname = 'pgtrail_vault'
$$;

-- The schema of dblink's functions (it may have been installed before pgtrail, anywhere), after
-- checking that there is a vault to call. Callers name dblink(text, text) exactly (typed
-- arguments), so no look-alike overload in that schema is chosen instead.
create or replace function script_tracking._vault_dblink()
returns text
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
    schema_name text;
begin
    select n.nspname into schema_name from pg_extension e join pg_namespace n on n.oid = e.extnamespace
     where e.extname = 'dblink';
    if schema_name is null or not exists (select 1 from pg_foreign_server where srvname = 'pgtrail_vault') then
        raise exception 'pgtrail: no vault configured for reports in database %: run `pgtrail install source --vault-dsn <vault DSN>`',
                        current_database() using errcode = '55000';
    end if;
    return schema_name;
end
$$;

-- The one-line error for a vault that cannot be reached or cannot answer.
create or replace function script_tracking._vault_failed(state text, message text, detail text)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    why text := split_part(btrim(coalesce(nullif(detail, ''), message)), E'\n', 1);
begin
    if state like '08%' then
        raise exception 'pgtrail: the vault at % is not reachable: %', script_tracking._vault_described(), why
            using errcode = '08001';
    elsif state in ('42883', '3F000', '42P01') then
        raise exception 'pgtrail: the vault at % has no reporting API of this version (%): run `pgtrail install vault`',
                        script_tracking._vault_described(), why using errcode = state;
    end if;
    raise exception 'pgtrail: the vault at % answered: %', script_tracking._vault_described(), message
        using errcode = state;
end
$$;

-- The source-side functions, unless this database is a vault itself (its own are the real ones:
-- `pgtrail install all` on one database).
do $install$
begin
    if to_regclass('vault.link_event') is not null then
        return;
    end if;

    drop function if exists script_tracking.get_execution_history(integer, text, text, text, timestamptz);
    drop function if exists script_tracking.get_enterprise_dashboard(timestamptz);

    create or replace function script_tracking.get_execution_history(
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
    language plpgsql volatile security definer
    set search_path = pg_catalog, pg_temp
    as $$
    declare
        dblink text := script_tracking._vault_dblink();
        state text; message text; err_detail text;
    begin
        return query execute format(
            'select * from %I.dblink(%L::text, %L::text) as t(execution_id uuid, script_name text, script_type text, '
            'version text, status text, started_at timestamptz, finished_at timestamptz, '
            'duration_ms double precision, rows_affected bigint, error text, ticket_number text, '
            'business_justification text, executed_by text, tenant_id text, database_name text, kind text, '
            'simulated boolean)',
            dblink, 'pgtrail_vault',
            format('select * from script_tracking.get_execution_history(%L::integer, %L::text, %L::text, %L::text, '
                   '%L::timestamptz, %L::boolean, %L::boolean, %L::interval)',
                   max_rows, script_name_filter, status_filter, tenant_filter, since, include_simulated,
                   include_operations, abandoned_after));
    exception when others then
        get stacked diagnostics state = returned_sqlstate, message = message_text, err_detail = pg_exception_detail;
        if state = '55000' then raise; end if;
        perform script_tracking._vault_failed(state, message, err_detail);
    end
    $$;

    create or replace function script_tracking.get_enterprise_dashboard(
        since timestamptz default now() - interval '30 days',
        include_simulated boolean default false,
        abandoned_after interval default null)
    returns table (section text, name text, value double precision, detail jsonb)
    language plpgsql volatile security definer
    set search_path = pg_catalog, pg_temp
    as $$
    declare
        dblink text := script_tracking._vault_dblink();
        state text; message text; err_detail text;
    begin
        return query execute format(
            'select * from %I.dblink(%L::text, %L::text) as t(section text, name text, value double precision, detail jsonb)',
            dblink, 'pgtrail_vault',
            format('select * from script_tracking.get_enterprise_dashboard(%L::timestamptz, %L::boolean, %L::interval)',
                   since, include_simulated, abandoned_after));
    exception when others then
        get stacked diagnostics state = returned_sqlstate, message = message_text, err_detail = pg_exception_detail;
        if state = '55000' then raise; end if;
        perform script_tracking._vault_failed(state, message, err_detail);
    end
    $$;

    -- here the database defaults to this one: the history of one of its objects
    create or replace function script_tracking.get_object_history(object_name text,
                                                                  database text default current_database(),
                                                                  max_rows integer default 1000,
                                                                  include_simulated boolean default false)
    returns table (event_id uuid, kind text, commit_time timestamptz, database_name text, object_identity text,
                   action text, statement text, session_user_name text, application_name text, tenant_id text,
                   operation_name text, status text, error text, ticket_number text, untracked boolean,
                   tags text[], simulated boolean)
    language plpgsql volatile security definer
    set search_path = pg_catalog, pg_temp
    as $$
    declare
        dblink text := script_tracking._vault_dblink();
        state text; message text; err_detail text;
    begin
        return query execute format(
            'select * from %I.dblink(%L::text, %L::text) as t(event_id uuid, kind text, commit_time timestamptz, '
            'database_name text, object_identity text, action text, statement text, session_user_name text, '
            'application_name text, tenant_id text, operation_name text, status text, error text, '
            'ticket_number text, untracked boolean, tags text[], simulated boolean)',
            dblink, 'pgtrail_vault',
            format('select * from script_tracking.get_object_history(%L::text, %L::text, %L::integer, %L::boolean)',
                   object_name, database, max_rows, include_simulated));
    exception when others then
        get stacked diagnostics state = returned_sqlstate, message = message_text, err_detail = pg_exception_detail;
        if state = '55000' then raise; end if;
        perform script_tracking._vault_failed(state, message, err_detail);
    end
    $$;

    revoke all on function
        script_tracking.get_execution_history(integer, text, text, text, timestamptz, boolean, boolean, interval),
        script_tracking.get_enterprise_dashboard(timestamptz, boolean, interval),
        script_tracking.get_object_history(text, text, integer, boolean) from public;
    grant execute on function
        script_tracking.get_execution_history(integer, text, text, text, timestamptz, boolean, boolean, interval),
        script_tracking.get_enterprise_dashboard(timestamptz, boolean, interval),
        script_tracking.get_object_history(text, text, integer, boolean) to pgtrail_admin, pgtrail_reporter;
end
$install$;
