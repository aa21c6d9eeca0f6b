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

-- Executions started in the current transaction and not finished in it yet. A row lives only
-- until its transaction ends (unlogged: nothing of it is in the WAL, so nothing of it is captured).
create unlogged table if not exists script_tracking.pending_execution (
    execution_id uuid        primary key,
    statement_at timestamptz not null
);
revoke all on script_tracking.pending_execution from public;

-- At commit, an execution its transaction started and did not finish is completed by that commit:
-- the design's one call, `begin; select script_tracking.track_script_execution(...); <the script>;
-- commit;`, is a complete record. Not when the call was the only statement of its transaction
-- (autocommit, as `pgtrail migrate` starts one): the script runs later, in other transactions, and
-- complete_/fail_script_execution finishes it (or the reports show it abandoned).
create or replace function script_tracking._complete_at_commit()
returns trigger
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
begin
    delete from script_tracking.pending_execution where execution_id = new.execution_id;
    if found and statement_timestamp() > new.statement_at then
        perform script_tracking._finish_execution(new.execution_id, 'completed',
                                                  jsonb_build_object('completed_by', 'commit'), true);
    end if;
    return null;
end
$$;
revoke all on function script_tracking._complete_at_commit() from public;

drop trigger if exists complete_at_commit on script_tracking.pending_execution;
create constraint trigger complete_at_commit after insert on script_tracking.pending_execution
    deferrable initially deferred for each row execute function script_tracking._complete_at_commit();

-- Start of a script execution; returns the execution id to pass to complete_/fail_script_execution
-- (or completed by its transaction's commit: _complete_at_commit). Non-transactional: the attempt
-- is on record even if its transaction rolls back.
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
    perform set_config(script_tracking._execution_setting('started', id),
                       extract(epoch from clock_timestamp())::text, false);
    perform set_config(script_tracking._execution_setting('tenant', id), coalesce(tenant_id, ''), false);
    perform set_config(script_tracking._execution_setting('name', id), script_name, false);
    if current_setting('transaction_read_only') = 'off' then  -- (a read-only transaction commits no script)
        insert into script_tracking.pending_execution (execution_id, statement_at) values (id, statement_timestamp());
    end if;
    return id;
end
$$;

-- What track_script_execution remembers of an execution, in this session: its start time,
-- script name and tenant, so that its completion or failure carries them too.
create or replace function script_tracking._execution_setting(what text, execution_id uuid)
returns text
language sql immutable
set search_path = pg_catalog, pg_temp
as $$ select 'pgtrail.exec_' || what || '_' || replace(execution_id::text, '-', '') $$;

-- The end of an execution: its status and details, with what the session remembers of its start.
create or replace function script_tracking._finish_execution(execution_id uuid, status text, detail jsonb,
                                                             transactional boolean)
returns uuid
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    started numeric := nullif(current_setting(script_tracking._execution_setting('started', execution_id), true), '');
begin
    delete from script_tracking.pending_execution p where p.execution_id = _finish_execution.execution_id;
    perform script_tracking._emit('script', jsonb_build_object(
        'execution_id', execution_id,
        'status', status,
        'script_name', nullif(current_setting(script_tracking._execution_setting('name', execution_id), true), ''),
        'duration_ms', round((extract(epoch from clock_timestamp()) - started) * 1000, 3),
        'actor', script_tracking.actor(
            nullif(current_setting(script_tracking._execution_setting('tenant', execution_id), true), '')))
        || detail, transactional);
    return execution_id;
end
$$;
revoke all on function script_tracking._finish_execution(uuid, text, jsonb, boolean) from public;
drop function if exists script_tracking._execution_elapsed_ms(uuid);

create or replace function script_tracking.complete_script_execution(execution_id uuid, rows_affected bigint default null)
returns uuid
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
begin
    if execution_id is null then
        raise exception 'complete_script_execution: execution id must not be null' using errcode = '22004';
    end if;
    return script_tracking._finish_execution(execution_id, 'completed',
                                             jsonb_build_object('rows_affected', rows_affected), true);
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
    return script_tracking._finish_execution(execution_id, 'failed', jsonb_build_object(
        'error', error_message, 'error_state', error_state, 'failed_statement', failed_statement), false);
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

-- The design's call, run: the same nine arguments in the same order as track_script_execution
-- (replace track_ with run_), and the script content is run and its execution completed (or
-- failed, recorded although the failure rolls the script back, and the error raised again).
-- track_script_execution alone only records the start: complete_script_execution or
-- fail_script_execution finish it; left unfinished, the reports show it abandoned after the
-- vault's pgtrail.abandoned_after.
create or replace function script_tracking.run_script_execution(
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
language plpgsql
-- no pinned search_path: SECURITY INVOKER, and the script runs as if the caller ran it
as $$
begin
    if script_content is null or btrim(script_content) = '' then
        raise exception 'run_script_execution: no script content to run (track_script_execution records one run elsewhere)'
            using errcode = '22023';
    end if;
    return script_tracking.run_tracked_script(script_name, script_content, script_type, category, file_path, version,
                                              tenant_id, business_justification, ticket_number);
end
$$;

-- Explicit classification of a function's arguments (every overload of schema.function), as
-- column_classification is for columns.
create table if not exists script_tracking.argument_classification (
    schema_name    text not null,
    function_name  text not null,
    argument_name  text not null,
    classification text not null check (classification in ('PII', 'PHI', 'FINANCIAL', 'NONE')),
    policy         text check (policy in ('mask', 'hash', 'drop', 'keep')),
    primary key (schema_name, function_name, argument_name)
);
revoke all on script_tracking.argument_classification from public;
grant select on script_tracking.argument_classification to public;
grant insert, update, delete on script_tracking.argument_classification to pgtrail_admin;

-- How the arguments of a wrapped function are classified beyond their names (the consumer applies
-- the name rules and the redaction policy, exactly as to columns): an entry in
-- script_tracking.argument_classification wins, then a tag in the function's comment,
-- `pgtrail:<argument>=PII|PHI|FINANCIAL|NONE` and `pgtrail:<argument>.policy=mask|hash|drop|keep`.
-- The answer has the form of a table's column overrides: {"arg": {"classification": .., "policy": ..}}.
create or replace function script_tracking.argument_overrides(fn regprocedure)
returns jsonb
language sql stable security definer
set search_path = pg_catalog, pg_temp
as $$
    with f as (
        select n.nspname, p.proname, coalesce(obj_description(p.oid, 'pg_proc'), '') as comment
          from pg_proc p join pg_namespace n on n.oid = p.pronamespace where p.oid = fn
    ),
    tagged as (
        select lower(m[1]) as argument_name, upper(m[2]) as classification, null::text as policy
          from f, regexp_matches(f.comment, 'pgtrail:\s*([A-Za-z_][A-Za-z0-9_$]*)\s*=\s*(PII|PHI|FINANCIAL|NONE)\M', 'gi') m
        union all
        select lower(m[1]), null, lower(m[2])
          from f, regexp_matches(f.comment, 'pgtrail:\s*([A-Za-z_][A-Za-z0-9_$]*)\.policy\s*=\s*(mask|hash|drop|keep)\M', 'gi') m
    ),
    declared as (
        select c.argument_name, c.classification, c.policy, 1 as rank
          from f join script_tracking.argument_classification c
            on c.schema_name = f.nspname and c.function_name = f.proname
        union all
        select argument_name, max(classification), max(policy), 2 from tagged group by argument_name
    ),
    chosen as (select distinct on (argument_name) * from declared order by argument_name, rank)
    select coalesce(jsonb_object_agg(argument_name, jsonb_strip_nulls(jsonb_build_object(
               'classification', classification, 'policy', policy))), '{}')
      from chosen
$$;

-- One tracked call of a wrapped function (see create_tracking_wrapper). The arguments go to the
-- consumer with their declared classification, and are redacted there before they leave it (as a
-- row's values are); secrets never leave the wrapper. tenant_id: the value of the argument the
-- wrapper takes the tenant from; the session's pgtrail.tenant_id otherwise.
drop function if exists script_tracking.track_call(regprocedure, jsonb, timestamptz, boolean, text, text);
create or replace function script_tracking.track_call(fn regprocedure, arguments jsonb, started_at timestamptz,
                                                      succeeded boolean, error_message text default null,
                                                      error_state text default null, tenant_id text default null)
returns void
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    overrides jsonb := script_tracking.argument_overrides(fn);
begin
    perform script_tracking._emit('operation', jsonb_build_object(
        'operation_id', gen_random_uuid(),
        'name', fn::text,
        'operation_type', 'FUNCTION_CALL',
        'status', case when succeeded then 'completed' else 'failed' end,
        'duration_ms', round(extract(epoch from clock_timestamp() - started_at)::numeric * 1000, 3),
        'details', jsonb_build_object('arguments', arguments)
                   || case when overrides <> '{}' then jsonb_build_object('argument_overrides', overrides)
                           else '{}' end,
        'error', error_message,
        'error_state', error_state,
        'actor', script_tracking.actor(tenant_id)), succeeded);
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
