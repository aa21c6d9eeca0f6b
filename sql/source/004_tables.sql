-- pgtrail source side, part 4: which tables are tracked, and who changed their rows. Idempotent.
--
-- A tracked table has a statement trigger, pgtrail_context, that emits one signed 'context'
-- message per transaction and table (again if the actor changes within the transaction) before
-- the statement's first row reaches the WAL. The consumer publishes row changes only of tables
-- with a context in their transaction, and attributes them to the context's actor; this is what
-- lets pgtrail say who made a row change, which plain CDC tools cannot.

-- Column names, so that every event of a table carries the table's compliance tags, not only
-- those of the columns a row happens to contain.
create or replace function script_tracking.column_names(rel oid)
returns jsonb
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select coalesce(jsonb_agg(attname order by attnum), '[]') from pg_attribute
     where attrelid = rel and attnum > 0 and not attisdropped
$$;

-- A table whose UPDATE and DELETE wal2json cannot emit: no replica identity (NOTHING, or DEFAULT
-- without a primary key). The one rule for track_table's warning, untrackable_tables() and the
-- context trigger's per-statement report.
create or replace function script_tracking._uncapturable(rel oid)
returns boolean
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select c.relreplident = 'n'
        or (c.relreplident = 'd' and not exists (select 1 from pg_index i where i.indrelid = c.oid and i.indisprimary))
      from pg_class c where c.oid = rel
$$;

create or replace function script_tracking.emit_context()
returns trigger
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    who jsonb := script_tracking.actor();
    actor_key text := md5(who::text);
    state text := coalesce(current_setting('pgtrail.context', true), '');
begin
    if split_part(state, ':', 1) is distinct from actor_key then
        state := actor_key || ':,';
    end if;
    -- wal2json sends nothing for an UPDATE or DELETE of a table with no replica identity: say so,
    -- once per statement, so the consumer counts and logs what cannot be captured
    if tg_op in ('UPDATE', 'DELETE') and script_tracking._uncapturable(tg_relid) then
        perform script_tracking._emit('uncapturable', jsonb_build_object(
            'schema_name', tg_table_schema, 'table', tg_table_name, 'operation', lower(tg_op)));
    end if;
    if position(',' || tg_relid || ',' in state) = 0 then
        perform script_tracking._emit('context', jsonb_build_object(
            'actor', who,
            'schema_name', tg_table_schema,
            'table', tg_table_name,
            'columns', script_tracking.column_names(tg_relid),
            'overrides', script_tracking.column_overrides(tg_relid)));
        perform set_config('pgtrail.context', state || tg_relid || ',', true);
    end if;
    return null;
end
$$;

-- wal2json 2.5 writes NaN, Infinity and -Infinity of numeric, double precision and real columns
-- as JSON null, the same as NULL. A tracked table with such columns gets a row trigger whose WHEN
-- clause (evaluated without calling any function) lets only rows holding one of those values
-- through; for them a function made for the table emits the exact values just before the row
-- reaches the WAL, and the consumer puts them back into the row's event. The function names each
-- column in its code: reading NEW as a whole (to_jsonb(new), EXECUTE ... USING new) would detoast
-- the row and make every unchanged TOASTed value look changed. Named to fire after the table's
-- own BEFORE triggers (alphabetical order), so it sees the row as written.
create or replace function script_tracking._drop_special_numbers(rel oid)
returns void
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
begin
    execute format('drop trigger if exists zz_pgtrail_special_numbers on %s', rel::regclass);
    execute format('drop function if exists script_tracking.%I()', 'special_numbers_' || rel);
end
$$;
revoke all on function script_tracking._drop_special_numbers(oid) from public;

create or replace function script_tracking._track_special_numbers(rel oid)
returns void
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    cols text[];
    fn text := 'special_numbers_' || rel;
    body text;
begin
    select array_agg(attname::text order by attnum) into cols
      from pg_attribute
     where attrelid = rel and attnum > 0 and not attisdropped
       and atttypid in ('numeric'::regtype, 'double precision'::regtype, 'real'::regtype);
    if cols is null then
        perform script_tracking._drop_special_numbers(rel);
        return;
    end if;
    body := 'declare v jsonb := ''{}''; begin '
            || (select string_agg(format('if new.%1$I in (''NaN'', ''Infinity'', ''-Infinity'') then '
                                         'v := v || jsonb_build_object(%2$L, new.%1$I::text); end if; ', c, c), '')
                  from unnest(cols) c)
            || 'perform script_tracking._emit(''special_numbers'', jsonb_build_object(''schema_name'', '
            || 'tg_table_schema, ''table'', tg_table_name, ''values'', v)); return new; end';
    if exists (select 1 from pg_proc where proname = fn and pronamespace = 'script_tracking'::regnamespace
                                        and prosrc = body)
       and exists (select 1 from pg_trigger where tgrelid = rel and tgname = 'zz_pgtrail_special_numbers') then
        return;  -- the same columns: nothing to do
    end if;
    execute format('create or replace function script_tracking.%I() returns trigger language plpgsql '
                   'security definer set search_path = pg_catalog, pg_temp as %L', fn, body);
    execute format('revoke all on function script_tracking.%I() from public', fn);
    execute format('drop trigger if exists zz_pgtrail_special_numbers on %s', rel::regclass);
    execute format('create trigger zz_pgtrail_special_numbers before insert or update on %s for each row '
                   'when (%s) execute function script_tracking.%I()',
                   rel::regclass,
                   (select string_agg(format('new.%I in (''NaN'', ''Infinity'', ''-Infinity'')', c), ' or ')
                      from unnest(cols) c),
                   fn);
end
$$;
revoke all on function script_tracking._track_special_numbers(oid) from public;

-- Track one table (internal: no privilege check). Emits a context for the table at once, so rows
-- written earlier in the same transaction (CREATE TABLE AS in a tracked schema) are kept.
create or replace function script_tracking._track(rel oid)
returns text
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    c record;
begin
    select c2.oid, c2.relkind, n.nspname, c2.relname into c
      from pg_class c2 join pg_namespace n on n.oid = c2.relnamespace where c2.oid = rel;
    if not found or c.relkind not in ('r', 'p') then
        raise exception 'pgtrail: % is not a table', rel::regclass using errcode = '42809';
    end if;
    if not exists (select 1 from pg_trigger where tgrelid = rel and tgname = 'pgtrail_context') then
        execute format('create trigger pgtrail_context before insert or update or delete or truncate on %s '
                       'for each statement execute function script_tracking.emit_context()', rel::regclass);
    end if;
    perform script_tracking._track_special_numbers(rel);
    perform script_tracking._emit('context', jsonb_build_object(
        'actor', script_tracking.actor(), 'schema_name', c.nspname, 'table', c.relname,
        'columns', script_tracking.column_names(rel), 'overrides', script_tracking.column_overrides(rel)));
    if script_tracking._uncapturable(rel) then
        raise warning 'pgtrail: % has no replica identity: its UPDATE and DELETE cannot be captured; add a primary key or run ALTER TABLE % REPLICA IDENTITY FULL',
            rel::regclass, rel::regclass;
        return format('%s tracked; UPDATE and DELETE not capturable (no replica identity)', rel::regclass);
    end if;
    return format('%s tracked', rel::regclass);
end
$$;
revoke all on function script_tracking._track(oid) from public;

create or replace function script_tracking._require_admin(what text)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
    if not script_tracking._is_admin() then
        raise exception 'pgtrail: % needs membership in pgtrail_admin', what using errcode = '42501';
    end if;
end
$$;

create or replace function script_tracking.track_table(tbl regclass)
returns text
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
begin
    perform script_tracking._require_admin('track_table');
    return script_tracking._track(tbl);
end
$$;

create or replace function script_tracking.untrack_table(tbl regclass)
returns text
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
begin
    perform script_tracking._require_admin('untrack_table');
    execute format('drop trigger if exists pgtrail_context on %s', tbl);
    perform script_tracking._drop_special_numbers(tbl);
    return format('%s untracked', tbl);
end
$$;

-- Track every table of a schema, including the ones created later.
create or replace function script_tracking.track_schema(schema_name text)
returns setof text
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    rel oid;
begin
    perform script_tracking._require_admin('track_schema');
    if not exists (select 1 from pg_namespace where nspname = schema_name) then
        raise exception 'pgtrail: schema % does not exist', quote_ident(schema_name) using errcode = '3F000';
    end if;
    insert into script_tracking.tracked_schemas (schema_name) values (track_schema.schema_name)
        on conflict do nothing;
    for rel in select c.oid from pg_class c join pg_namespace n on n.oid = c.relnamespace
                where n.nspname = track_schema.schema_name and c.relkind in ('r', 'p') and not c.relispartition
                order by c.relname loop
        return next script_tracking._track(rel);
    end loop;
end
$$;

create or replace function script_tracking.untrack_schema(schema_name text)
returns setof text
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    rel regclass;
begin
    perform script_tracking._require_admin('untrack_schema');
    delete from script_tracking.tracked_schemas t where t.schema_name = untrack_schema.schema_name;
    for rel in select t.tgrelid::regclass from pg_trigger t join pg_class c on c.oid = t.tgrelid
                 join pg_namespace n on n.oid = c.relnamespace
                where t.tgname = 'pgtrail_context' and n.nspname = untrack_schema.schema_name loop
        return next script_tracking.untrack_table(rel);
    end loop;
end
$$;

-- Tracked tables whose UPDATE and DELETE wal2json cannot emit (no replica identity).
create or replace function script_tracking.untrackable_tables()
returns table (table_name text, replica_identity text, reason text)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select c.oid::regclass::text,
           case c.relreplident when 'n' then 'nothing' when 'd' then 'default' when 'f' then 'full' else 'index' end,
           case when c.relreplident = 'n' then 'REPLICA IDENTITY NOTHING'
                else 'no primary key and REPLICA IDENTITY DEFAULT' end
      from pg_trigger t join pg_class c on c.oid = t.tgrelid
     where t.tgname = 'pgtrail_context' and script_tracking._uncapturable(c.oid)
     order by 1
$$;

create or replace function script_tracking.tracked_tables()
returns table (table_name text, enabled boolean)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select t.tgrelid::regclass::text, t.tgenabled in ('O', 'A')
      from pg_trigger t where t.tgname = 'pgtrail_context' order by 1
$$;

revoke all on function script_tracking.track_table(regclass), script_tracking.untrack_table(regclass),
                       script_tracking.track_schema(text), script_tracking.untrack_schema(text) from public;
grant execute on function script_tracking.track_table(regclass), script_tracking.untrack_table(regclass),
                          script_tracking.track_schema(text), script_tracking.untrack_schema(text) to pgtrail_admin;
