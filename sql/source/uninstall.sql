-- Remove pgtrail's source side. Idempotent. Removes the event triggers first, so that nothing of
-- the removal is tracked half-way; then the tracking triggers of every table, then the schema.
drop event trigger if exists pgtrail_ddl_command_end;
drop event trigger if exists pgtrail_sql_drop;
drop event trigger if exists pgtrail_table_rewrite;
drop event trigger if exists pgtrail_ddl_command_start;
do $$
declare
    rel regclass;
begin
    for rel in select tgrelid::regclass from pg_trigger where tgname = 'pgtrail_context' loop
        execute format('drop trigger if exists pgtrail_context on %s', rel);
    end loop;
    for rel in select tgrelid::regclass from pg_trigger where tgname = 'zz_pgtrail_special_numbers' loop
        execute format('drop trigger if exists zz_pgtrail_special_numbers on %s', rel);
    end loop;
end
$$;
-- wrappers live in the users' schemas and call script_tracking; they go with it
do $$
declare
    f regprocedure;
begin
    for f in select p.oid::regprocedure from pg_proc p join pg_description d on d.objoid = p.oid
              where d.classoid = 'pg_proc'::regclass and d.description like 'pgtrail tracking wrapper of %' loop
        execute format('drop function if exists %s', f);
    end loop;
end
$$;
drop function if exists public.track_operation(text, text);
drop schema if exists script_tracking cascade;
