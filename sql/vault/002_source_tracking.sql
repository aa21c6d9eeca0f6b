-- pgtrail vault, part 2: what source-side tracking adds (definitions, redaction, scripts,
-- security events). Idempotent.

alter table vault.sat_ddl add column if not exists definition jsonb;
alter table vault.sat_ddl add column if not exists rewrite boolean not null default false;
alter table vault.sat_ddl add column if not exists cascade_drop boolean not null default false;
select vault.index_if_table('sat_row_change', 'alter table vault.sat_row_change add column if not exists redacted jsonb not null default ''{}''');
alter table vault.sat_operation add column if not exists status text not null default 'completed';
alter table vault.sat_operation add column if not exists duration_ms double precision;
alter table vault.sat_operation add column if not exists details jsonb;
alter table vault.sat_operation add column if not exists error text;
alter table vault.sat_operation add column if not exists error_state text;

-- One row per step (started, completed, failed) of a script execution.
create table if not exists vault.sat_script_execution (
    hk_event               bytea       primary key,
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
    hk_event      bytea       primary key,
    load_ts       timestamptz not null default clock_timestamp(),
    reason        text        not null,
    prefix        text        not null,
    transactional boolean     not null,
    claimed_kind  text,
    content       text        not null,
    content_bytes integer     not null,
    record_source text        not null
);

select vault.ensure_insert_only();
