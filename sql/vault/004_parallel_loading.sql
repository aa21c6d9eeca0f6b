-- pgtrail vault, part 4: no foreign keys between hubs, links and satellites. Idempotent.
--
-- Data Vault 2.0 loads hubs, links and satellites in parallel from hash keys computed at the
-- source; enforcing the references row by row cost most of the load time. Integrity comes from
-- the loader instead: every batch writes an event's hubs, links and satellites in one
-- transaction (sink/loader.py), so no satellite row exists without its hub row.
do $$
declare
    c record;
begin
    for c in select conrelid::regclass as tbl, conname from pg_constraint
              where contype = 'f' and connamespace = 'vault'::regnamespace loop
        execute format('alter table %s drop constraint %I', c.tbl, c.conname);
    end loop;
end
$$;

-- `pgtrail history` without an object reads the latest events first.
select vault.index_if_table('sat_event', 'create index if not exists sat_event_recent on vault.sat_event (commit_time desc nulls last, commit_lsn desc, position desc)');
