-- pgtrail source side, part 7: the migration history of `pgtrail migrate`. Idempotent.
--
-- One row per applied versioned migration, written in the migration's own transaction (so a
-- migration and its record commit or roll back together), and per applied checksum of a
-- repeatable one. Failures are not rows here: they are script events (non-transactional), in
-- the vault.

create table if not exists script_tracking.migration_history (
    id           bigserial   primary key,
    version      text        not null,  -- '001' for V001__x.sql; the file name for R__x.sql
    description  text        not null,
    file_name    text        not null,
    repeatable   boolean     not null default false,
    checksum     text        not null,  -- script_tracking.script_checksum(): line endings normalised
    execution_id uuid        not null,
    applied_at   timestamptz not null default now(),
    applied_by   text        not null default session_user,
    duration_ms  double precision
);
-- a versioned migration is recorded once, whatever runs it: the database refuses a second time
create unique index if not exists migration_history_once on script_tracking.migration_history (version)
    where not repeatable;
revoke all on script_tracking.migration_history from public;
grant select on script_tracking.migration_history to public;
grant insert on script_tracking.migration_history to pgtrail_admin;
grant usage on sequence script_tracking.migration_history_id_seq to pgtrail_admin;
