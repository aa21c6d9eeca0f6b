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

-- row-level security for tenant readers: part 7, with the other satellites
grant select on vault.sat_log_entry to pgtrail_vault_reader;

-- The history view shows log entries too (part 7): their command, statement, outcome, and whether
-- they were made up for a demo (`simulated`, never to be read as real history).

select vault.ensure_insert_only();
