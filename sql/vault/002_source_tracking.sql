-- pgtrail vault, part 2: what source-side tracking adds (definitions, redaction, scripts,
-- security events). Idempotent.

alter table vault.sat_ddl add column if not exists definition jsonb;
alter table vault.sat_ddl add column if not exists rewrite boolean not null default false;
alter table vault.sat_ddl add column if not exists cascade_drop boolean not null default false;
alter table vault.sat_row_change add column if not exists redacted jsonb not null default '{}';
alter table vault.sat_operation add column if not exists status text not null default 'completed';
alter table vault.sat_operation add column if not exists duration_ms double precision;
alter table vault.sat_operation add column if not exists details jsonb;
alter table vault.sat_operation add column if not exists error text;
alter table vault.sat_operation add column if not exists error_state text;

-- One row per step (started, completed, failed) of a script execution.
create table if not exists vault.sat_script_execution (
    hk_event               bytea       primary key references vault.hub_event,
    load_ts                timestamptz not null default clock_timestamp(),
    execution_id           uuid        not null,
    status                 text        not null,
    script_name            text,
    script_type            text,
    category               text,
    file_path              text,
    version                text,
    checksum               text,
    size_bytes             bigint,
    business_justification text,
    ticket_number          text,
    rows_affected          bigint,
    duration_ms            double precision,
    error                  text,
    error_state            text,
    failed_statement       text,
    step_at                timestamptz,
    record_source          text        not null
);
create index if not exists sat_script_execution_id on vault.sat_script_execution (execution_id);

create table if not exists vault.sat_security_event (
    hk_event      bytea       primary key references vault.hub_event,
    load_ts       timestamptz not null default clock_timestamp(),
    reason        text        not null,
    prefix        text        not null,
    transactional boolean     not null,
    claimed_kind  text,
    content       text        not null,
    content_bytes integer     not null,
    record_source text        not null
);

do $$
declare
    t text;
begin
    foreach t in array array['sat_script_execution', 'sat_security_event'] loop
        if not exists (select 1 from pg_trigger
                        where tgrelid = format('vault.%I', t)::regclass and tgname = 'insert_only') then
            execute format('create trigger insert_only before update or delete or truncate on vault.%I '
                           'for each statement execute function vault.forbid_change()', t);
        end if;
    end loop;
end
$$;

-- Every event with what it touched: the source of `pgtrail history`. Dropped and created again
-- (inside the installer's single transaction) so that later versions may change its columns.
drop view if exists vault.event_history;
create view vault.event_history as
select e.event_id,
       s.kind,
       coalesce(s.commit_time, sc.step_at) as commit_time,
       s.commit_lsn,
       s.position,
       d.database_name,
       o.object_identity,
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
       coalesce(op.name, sc.script_name) as operation_name,
       coalesce(op.status, sc.status) as status,
       coalesce(op.error, sc.error, sec.reason) as error,
       sc.ticket_number,
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
  left join vault.sat_security_event sec using (hk_event);
