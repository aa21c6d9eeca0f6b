-- pgtrail vault, part 6: entries imported from PostgreSQL server logs (`pgtrail import-logs`,
-- script_tracking.import_postgres_logs) — history from before tracking existed, and the role,
-- database and system commands event triggers cannot see. Idempotent.

create table if not exists vault.sat_log_entry (
    hk_event        bytea       primary key,
    load_ts         timestamptz not null default clock_timestamp(),
    log_format      text        not null,
    origin          text        not null,
    line            bigint      not null,
    category        text        not null,
    command_tag     text,
    object_type     text,
    object_identity text,
    statement       text,
    status          text        not null,
    error           text,
    error_state     text,
    duration_ms     double precision,
    severity        text,
    session_id      text,
    session_line    bigint,
    virtual_xid     text,
    xid             bigint,
    query_id        bigint,
    backend_type    text,
    audit           jsonb,
    simulated       boolean     not null default false,
    record_source   text        not null
);
create index if not exists sat_log_entry_category on vault.sat_log_entry (category, command_tag);

alter table vault.sat_log_entry enable row level security;
drop policy if exists tenant_reader on vault.sat_log_entry;
create policy tenant_reader on vault.sat_log_entry for select to pgtrail_vault_reader
    using (exists (select 1 from vault.sat_event s where s.hk_event = sat_log_entry.hk_event
                   and s.tenant_id = vault.reader_tenant()));
grant select on vault.sat_log_entry to pgtrail_vault_reader;

-- The history view, with log entries: their command, statement, outcome, and whether they were
-- made up for a demo (`simulated`, never to be read as real history).
create or replace view vault.event_history with (security_invoker = true) as
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
                'SCRIPT ' || upper(sc.status), le.command_tag, upper(le.category), 'SECURITY') as action,
       coalesce(ddl.statement, sc.failed_statement, le.statement) as statement,
       rc.primary_key,
       rc.new_values,
       rc.old_values,
       coalesce(op.name, sc.script_name, xs.script_name) as operation_name,
       coalesce(op.status, sc.status, le.status) as status,
       coalesce(op.error, sc.error, sec.reason, le.error) as error,
       coalesce(sc.ticket_number, xs.ticket_number) as ticket_number,
       coalesce(ddl.execution_id, sc.execution_id) as execution_id,
       ddl.untracked,
       s.tags,
       coalesce(le.simulated, false) as simulated,
       le.duration_ms as log_duration_ms
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
  left join vault.sat_log_entry le using (hk_event)
  left join lateral (select x.script_name, x.ticket_number from vault.sat_script_execution x
                      where x.execution_id = ddl.execution_id and x.status = 'started' limit 1) xs on true;
grant select on vault.event_history to pgtrail_vault_reader;

select vault.ensure_insert_only();
