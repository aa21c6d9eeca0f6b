-- pgtrail source side, part 5: the original SQL API (track_operation, track_script_execution and
-- friends) and tracked calls. Idempotent.
--
-- Successes are transactional messages: they commit with the work they describe. Failures are
-- non-transactional: they are in the WAL at once and survive the rollback of their own
-- transaction, so a failed script is tracked even though everything it did is gone.

-- track_operation(name, type): an attributed operation event; returns its id.
create or replace function script_tracking.track_operation(operation_name text, operation_type text default 'MANUAL',
                                                           details jsonb default null)
returns uuid
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    id uuid := gen_random_uuid();
begin
    if operation_name is null or btrim(operation_name) = '' then
        raise exception 'track_operation: operation name must not be empty' using errcode = '22023';
    end if;
    perform script_tracking._emit('operation', jsonb_build_object(
        'operation_id', id,
        'name', operation_name,
        'operation_type', coalesce(nullif(btrim(operation_type), ''), 'MANUAL'),
        'status', 'completed',
        'details', details,
        'actor', script_tracking.actor()));
    return id;
end
$$;

-- The original API calls track_operation(...) unqualified.
create or replace function public.track_operation(operation_name text, operation_type text default 'MANUAL')
returns uuid
language sql
set search_path = pg_catalog, pg_temp
as $$ select script_tracking.track_operation(operation_name, operation_type) $$;

-- Line endings normalised, so a checkout on another operating system gives the same checksum.
create or replace function script_tracking.script_checksum(script_content text)
returns text
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
    select encode(sha256(convert_to(replace(replace(script_content, E'\r\n', E'\n'), E'\r', E'\n'), 'UTF8')), 'hex')
$$;

-- Start of a script execution; returns the execution id to pass to complete_/fail_script_execution.
-- Non-transactional: the attempt is on record even if its transaction rolls back.
create or replace function script_tracking.track_script_execution(
    script_name text,
    script_type text default 'SCRIPT',
    category text default null,
    script_content text default null,
    file_path text default null,
    version text default null,
    tenant_id text default null,
    business_justification text default null,
    ticket_number text default null)
returns uuid
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    id uuid := gen_random_uuid();
begin
    if script_name is null or btrim(script_name) = '' then
        raise exception 'track_script_execution: script name must not be empty' using errcode = '22023';
    end if;
    perform script_tracking._emit('script', jsonb_build_object(
        'execution_id', id,
        'status', 'started',
        'script_name', script_name,
        'script_type', coalesce(nullif(btrim(script_type), ''), 'SCRIPT'),
        'category', category,
        'file_path', file_path,
        'version', version,
        'checksum', script_tracking.script_checksum(script_content),
        'size_bytes', octet_length(script_content),
        'business_justification', business_justification,
        'ticket_number', ticket_number,
        'actor', script_tracking.actor(tenant_id)), false);
    -- session-level (not rolled back by a later failure of the script's own transaction)
    perform set_config('pgtrail.exec_' || replace(id::text, '-', ''),
                       extract(epoch from clock_timestamp())::text, false);
    perform set_config('pgtrail.exec_tenant_' || replace(id::text, '-', ''), coalesce(tenant_id, ''), false);
    perform set_config('pgtrail.exec_name_' || replace(id::text, '-', ''), script_name, false);
    return id;
end
$$;

create or replace function script_tracking._execution_elapsed_ms(execution_id uuid)
returns numeric
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select round((extract(epoch from clock_timestamp())
                  - nullif(current_setting('pgtrail.exec_' || replace(execution_id::text, '-', ''), true), '')::numeric)
                 * 1000, 3)
$$;

create or replace function script_tracking.complete_script_execution(execution_id uuid, rows_affected bigint default null)
returns uuid
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
begin
    if execution_id is null then
        raise exception 'complete_script_execution: execution id must not be null' using errcode = '22004';
    end if;
    perform script_tracking._emit('script', jsonb_build_object(
        'execution_id', execution_id,
        'status', 'completed',
        'script_name', nullif(current_setting('pgtrail.exec_name_' || replace(execution_id::text, '-', ''), true), ''),
        'rows_affected', rows_affected,
        'duration_ms', script_tracking._execution_elapsed_ms(execution_id),
        'actor', script_tracking.actor(nullif(current_setting('pgtrail.exec_tenant_' || replace(execution_id::text, '-', ''), true), ''))));
    return execution_id;
end
$$;

-- Non-transactional: call it from an exception handler or after the rollback.
create or replace function script_tracking.fail_script_execution(execution_id uuid, error_message text,
                                                                 error_state text default null,
                                                                 failed_statement text default null)
returns uuid
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
begin
    if execution_id is null then
        raise exception 'fail_script_execution: execution id must not be null' using errcode = '22004';
    end if;
    perform script_tracking._emit('script', jsonb_build_object(
        'execution_id', execution_id,
        'status', 'failed',
        'script_name', nullif(current_setting('pgtrail.exec_name_' || replace(execution_id::text, '-', ''), true), ''),
        'error', error_message,
        'error_state', error_state,
        'failed_statement', failed_statement,
        'duration_ms', script_tracking._execution_elapsed_ms(execution_id),
        'actor', script_tracking.actor(nullif(current_setting('pgtrail.exec_tenant_' || replace(execution_id::text, '-', ''), true), ''))), false);
    return execution_id;
end
$$;

-- Run a script with tracking: started, then completed with the work, or failed (recorded even
-- though the failure rolls the script back) and the error raised again to the caller.
create or replace function script_tracking.run_tracked_script(
    script_name text,
    script_content text,
    script_type text default 'SCRIPT',
    category text default null,
    file_path text default null,
    version text default null,
    tenant_id text default null,
    business_justification text default null,
    ticket_number text default null)
returns uuid
language plpgsql
-- no pinned search_path: SECURITY INVOKER, and the script runs as if the caller ran it
as $$
declare
    id uuid;
    n bigint;
    msg text;
    state text;
begin
    id := script_tracking.track_script_execution(script_name, script_type, category, script_content, file_path,
                                                 version, tenant_id, business_justification, ticket_number);
    begin
        execute script_content;
        get diagnostics n = row_count;
    exception when others then
        get stacked diagnostics msg = message_text, state = returned_sqlstate;
        perform script_tracking.fail_script_execution(id, msg, state);
        raise;
    end;
    perform script_tracking.complete_script_execution(id, n);
    return id;
end
$$;

-- One tracked call of a wrapped function (see create_tracking_wrapper).
create or replace function script_tracking.track_call(fn regprocedure, arguments jsonb, started_at timestamptz,
                                                      succeeded boolean, error_message text default null,
                                                      error_state text default null)
returns void
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
begin
    perform script_tracking._emit('operation', jsonb_build_object(
        'operation_id', gen_random_uuid(),
        'name', fn::text,
        'operation_type', 'FUNCTION_CALL',
        'status', case when succeeded then 'completed' else 'failed' end,
        'duration_ms', round(extract(epoch from clock_timestamp() - started_at)::numeric * 1000, 3),
        'details', jsonb_build_object('arguments', arguments),
        'error', error_message,
        'error_state', error_state,
        'actor', script_tracking.actor()), succeeded);
end
$$;

-- Arguments whose name says they hold a secret are never recorded.
create or replace function script_tracking.is_secret_name(name text)
returns boolean
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
    select coalesce(name, '') ~* '(^|_|\m)(pass(word|wd|phrase)?|pwd|secret|token|api_?key|credentials?|pin|otp|private_?key|salt)s?($|_|\M)'
$$;
