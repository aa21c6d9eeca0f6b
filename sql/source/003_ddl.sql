-- pgtrail source side, part 3: DDL capture. Idempotent.
--
-- ddl_command_end: one signed, transactional message per affected object, carrying the command
-- tag, object type and identity, the statement, who ran it, and the object's definition after
-- the change, so that its history can be rebuilt. Internal objects of CREATE EXTENSION are not
-- reported on their own (the extension is); an object reported twice by one command (the
-- sequence of a serial column) is reported once.
-- sql_drop: DROP commands report their objects only here (ALTER ... DROP COLUMN is reported by
-- ddl_command_end as a change of its table).
-- table_rewrite: flags the ALTER that rewrote a table (no event of its own).
-- ddl_command_start, for CREATE TABLE AS / SELECT INTO / CREATE MATERIALIZED VIEW only: a marker,
-- because their rows reach the WAL before the DDL message; the consumer holds those rows back and
-- emits them after the table's creation.

-- Columns with an explicit classification or a 'pgtrail:' tag in their comment; the consumer's
-- classifier applies these before its name rules.
create or replace function script_tracking.column_overrides(rel oid)
returns jsonb
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select coalesce(jsonb_object_agg(a.attname, jsonb_strip_nulls(jsonb_build_object(
               'comment', d.description, 'classification', cc.classification, 'policy', cc.policy))), '{}')
      from pg_attribute a
      join pg_class c on c.oid = a.attrelid
      join pg_namespace n on n.oid = c.relnamespace
      left join pg_description d on d.objoid = a.attrelid and d.classoid = 'pg_class'::regclass
                                and d.objsubid = a.attnum
      left join script_tracking.column_classification cc
             on cc.schema_name = n.nspname and cc.table_name = c.relname and cc.column_name = a.attname
     where a.attrelid = rel and a.attnum > 0 and not a.attisdropped
       and (cc.classification is not null or d.description ilike '%pgtrail:%')
$$;

-- The definition of an object after a change: enough to rebuild its history and diff it.
create or replace function script_tracking.object_definition(class_id oid, obj_id oid)
returns jsonb
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
    rel record;
    result jsonb;
begin
    if class_id = 'pg_class'::regclass then
        select c.oid, c.relkind, c.relreplident, n.nspname, c.relname into rel
          from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.oid = obj_id;
        if not found then
            return null;
        end if;
        if rel.relkind = 'i' or rel.relkind = 'I' then
            return jsonb_build_object('kind', 'index', 'definition', pg_get_indexdef(obj_id));
        end if;
        if rel.relkind = 'S' then
            return (select jsonb_build_object('kind', 'sequence', 'type', format_type(s.seqtypid, null),
                                              'start', s.seqstart, 'increment', s.seqincrement,
                                              'min', s.seqmin, 'max', s.seqmax, 'cycle', s.seqcycle)
                      from pg_sequence s where s.seqrelid = obj_id);
        end if;
        result := jsonb_build_object(
            'kind', case rel.relkind when 'v' then 'view' when 'm' then 'materialized view'
                                     when 'f' then 'foreign table' when 'p' then 'partitioned table'
                                     else 'table' end,
            'schema', rel.nspname,
            'name', rel.relname,
            'comment', obj_description(obj_id, 'pg_class'),
            'columns', (select coalesce(jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
                                   'name', a.attname,
                                   'type', format_type(a.atttypid, a.atttypmod),
                                   'not_null', a.attnotnull,
                                   'default', pg_get_expr(ad.adbin, ad.adrelid),
                                   'identity', nullif(a.attidentity, ''),
                                   'generated', nullif(a.attgenerated, ''),
                                   'comment', col_description(obj_id, a.attnum))) order by a.attnum), '[]')
                          from pg_attribute a
                          left join pg_attrdef ad on ad.adrelid = a.attrelid and ad.adnum = a.attnum
                         where a.attrelid = obj_id and a.attnum > 0 and not a.attisdropped),
            'overrides', script_tracking.column_overrides(obj_id));
        if rel.relkind in ('v', 'm') then
            result := result || jsonb_build_object('definition', pg_get_viewdef(obj_id, true));
        else
            result := result || jsonb_build_object(
                'constraints', (select coalesce(jsonb_agg(jsonb_build_object(
                                       'name', conname, 'type', contype,
                                       'definition', pg_get_constraintdef(oid)) order by conname), '[]')
                                  from pg_constraint where conrelid = obj_id),
                'indexes', (select coalesce(jsonb_agg(pg_get_indexdef(indexrelid) order by indexrelid::regclass::text), '[]')
                              from pg_index where indrelid = obj_id),
                'replica_identity', rel.relreplident,
                'tracked', exists (select 1 from pg_trigger where tgrelid = obj_id and tgname = 'pgtrail_context'));
        end if;
        return result;
    elsif class_id = 'pg_proc'::regclass then
        return (select jsonb_build_object('kind', case prokind when 'p' then 'procedure' when 'a' then 'aggregate'
                                                                when 'w' then 'window function' else 'function' end,
                                          'definition', case when prokind in ('f', 'p', 'w') then pg_get_functiondef(oid) end,
                                          'arguments', pg_get_function_identity_arguments(oid),
                                          'result', pg_get_function_result(oid))
                  from pg_proc where oid = obj_id);
    elsif class_id = 'pg_trigger'::regclass then
        return (select jsonb_build_object('kind', 'trigger', 'definition', pg_get_triggerdef(oid),
                                          'enabled', tgenabled)
                  from pg_trigger where oid = obj_id);
    elsif class_id = 'pg_constraint'::regclass then
        return (select jsonb_build_object('kind', 'constraint', 'definition', pg_get_constraintdef(oid))
                  from pg_constraint where oid = obj_id);
    elsif class_id = 'pg_type'::regclass then
        return (select jsonb_build_object(
                           'kind', case typtype when 'e' then 'enum' when 'd' then 'domain'
                                               when 'c' then 'composite' when 'r' then 'range' else 'type' end,
                           'labels', (select jsonb_agg(enumlabel order by enumsortorder) from pg_enum
                                       where enumtypid = t.oid),
                           'base_type', case when typtype = 'd' then format_type(typbasetype, typtypmod) end,
                           'constraints', (select jsonb_agg(pg_get_constraintdef(c.oid)) from pg_constraint c
                                            where c.contypid = t.oid))
                  from pg_type t where oid = obj_id);
    elsif class_id = 'pg_namespace'::regclass then
        return (select jsonb_build_object('kind', 'schema', 'owner', nspowner::regrole::text)
                  from pg_namespace where oid = obj_id);
    end if;
    return null;
end
$$;

-- pgtrail's own DDL: the tracking trigger that track_table/untrack_table create and drop, and
-- what `pgtrail install` runs (it sets pgtrail.installing in its transaction; honoured only for an
-- admin, so nobody else can pass their DDL off as pgtrail's). Such DDL is attributed to pgtrail,
-- never reported as untracked or as drift. obj_id is null for a dropped object.
create or replace function script_tracking._managed_by(class_id oid, obj_id oid, identity text)
returns text
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
begin
    -- the tracking trigger and the special-numbers trigger: named by pgtrail, running a function of its schema
    if class_id = 'pg_trigger'::regclass
       and (identity like 'pgtrail\_context on %' or identity like 'zz\_pgtrail\_special\_numbers on %')
       and (obj_id is null or exists (select 1 from pg_trigger t join pg_proc p on p.oid = t.tgfoid
                                       where t.oid = obj_id and p.pronamespace = 'script_tracking'::regnamespace)) then
        return 'pgtrail tracking';
    end if;
    if coalesce(current_setting('pgtrail.installing', true), '') <> '' and script_tracking._is_admin() then
        return 'pgtrail install';
    end if;
    return null;
end
$$;

-- The table a trigger, table constraint, policy or rule belongs to: its events are keyed with
-- the table's, so they stay in the table's Kafka partition, in order with its row changes.
create or replace function script_tracking._table_of(class_id oid, obj_id oid)
returns text
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select (pg_identify_object('pg_class'::regclass, rel, 0)).identity
      from (select case class_id
                     when 'pg_trigger'::regclass then (select tgrelid from pg_trigger where oid = obj_id)
                     when 'pg_constraint'::regclass then (select nullif(conrelid, 0) from pg_constraint where oid = obj_id)
                     when 'pg_policy'::regclass then (select polrelid from pg_policy where oid = obj_id)
                     when 'pg_rewrite'::regclass then (select ev_class from pg_rewrite where oid = obj_id)
                   end as rel) r
     where rel is not null
$$;

create or replace function script_tracking.on_ddl_command_start()
returns event_trigger
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
begin
    perform script_tracking._emit('ddl_start', jsonb_build_object('command_tag', tg_tag));
end
$$;

create or replace function script_tracking.on_table_rewrite()
returns event_trigger
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
begin
    perform set_config('pgtrail.rewrite',
        coalesce(current_setting('pgtrail.rewrite', true), '') || pg_event_trigger_table_rewrite_oid() || ',', true);
end
$$;

create or replace function script_tracking.on_ddl_command_end()
returns event_trigger
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    r record;
    who jsonb := script_tracking.actor();
    seen text[] := '{}';
    key text;
    rewritten text := ',' || coalesce(current_setting('pgtrail.rewrite', true), '');
begin
    for r in select * from pg_event_trigger_ddl_commands() loop
        continue when r.in_extension;
        continue when r.schema_name = 'script_tracking' or r.schema_name like 'pg\_temp%';
        -- a foreign key's internal triggers belong to its constraint, which the table's definition holds
        continue when r.classid = 'pg_trigger'::regclass
                  and exists (select 1 from pg_trigger where oid = r.objid and tgisinternal);
        key := r.classid || '/' || r.objid || '/' || r.objsubid;
        continue when key = any(seen);
        seen := seen || key;

        -- A table's owner may not switch its tracking off behind the admins' back.
        if r.classid = 'pg_class'::regclass and r.command_tag = 'ALTER TABLE'
           and exists (select 1 from pg_trigger where tgrelid = r.objid and tgname = 'pgtrail_context'
                        and tgenabled not in ('O', 'A'))
           and not script_tracking._is_admin() then
            raise exception 'pgtrail: the tracking trigger of % may only be disabled by pgtrail_admin', r.object_identity
                using errcode = '42501';
        end if;

        perform script_tracking._emit('ddl', jsonb_build_object(
            'command_tag', r.command_tag,
            'object_type', r.object_type,
            'schema_name', r.schema_name,
            'object_identity', r.object_identity,
            -- a column's comment or default belongs to its table's history
            'parent_identity', case when r.objsubid <> 0 then (pg_identify_object(r.classid, r.objid, 0)).identity end,
            'statement', current_query(),
            'definition', script_tracking.object_definition(r.classid, r.objid),
            'rewrite', position(',' || r.objid || ',' in rewritten) > 0,
            'managed_by', script_tracking._managed_by(r.classid, r.objid, r.object_identity),
            'table_identity', script_tracking._table_of(r.classid, r.objid),
            'actor', who));

        -- A tracked table's numeric columns changed: its special-numbers trigger follows.
        if r.classid = 'pg_class'::regclass and r.command_tag = 'ALTER TABLE' and r.objsubid = 0
           and exists (select 1 from pg_trigger where tgrelid = r.objid and tgname = 'pgtrail_context') then
            perform script_tracking._track_special_numbers(r.objid);
        end if;

        -- New tables in a tracked schema are tracked from their creation on.
        if r.classid = 'pg_class'::regclass and r.object_type in ('table', 'partitioned table')
           and r.command_tag in ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO')
           and exists (select 1 from script_tracking.tracked_schemas where schema_name = r.schema_name) then
            perform script_tracking._track(r.objid);
        end if;
    end loop;
    perform set_config('pgtrail.rewrite', '', true);
end
$$;

create or replace function script_tracking.on_sql_drop()
returns event_trigger
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    r record;
    who jsonb := script_tracking.actor();
begin
    if tg_tag = 'DROP TRIGGER' and not script_tracking._is_admin()
       and exists (select 1 from pg_event_trigger_dropped_objects()
                    where object_type = 'trigger' and object_identity like 'pgtrail\_context on %') then
        raise exception 'pgtrail: the tracking trigger may only be dropped by pgtrail_admin (script_tracking.untrack_table)'
            using errcode = '42501';
    end if;
    if tg_tag not like 'DROP %' then
        return;  -- ALTER ... DROP ... is reported by ddl_command_end as a change of its object
    end if;
    -- the named objects, what CASCADE took with them, and the sequences, indexes and triggers that
    -- go with a table (they had CREATE events of their own); not row types, defaults or rules
    for r in select * from pg_event_trigger_dropped_objects()
              where original
                 or (normal and object_type not in ('default value', 'rule'))
                 or object_type in ('sequence', 'index', 'trigger') loop
        continue when r.schema_name in ('script_tracking', 'pg_toast') or r.is_temporary;
        -- a foreign key's internal triggers go with their constraint (not reported when created either)
        continue when r.object_type = 'trigger' and r.object_identity like '"RI\_ConstraintTrigger\_%';
        perform script_tracking._emit('ddl', jsonb_build_object(
            'command_tag', tg_tag,
            'object_type', r.object_type,
            'schema_name', r.schema_name,
            'object_identity', r.object_identity,
            'statement', current_query(),
            'cascade', not r.original,
            'managed_by', script_tracking._managed_by(r.classid, null, r.object_identity),
            -- gone from the catalogs: its address names the table (schema, table, name)
            'table_identity', case when r.object_type in ('trigger', 'table constraint', 'policy', 'rule')
                                        and cardinality(r.address_names) = 3
                                   then quote_ident(r.address_names[1]) || '.' || quote_ident(r.address_names[2]) end,
            'actor', who));
    end loop;
end
$$;

do $$
begin
    if not exists (select 1 from pg_event_trigger where evtname = 'pgtrail_ddl_command_end') then
        create event trigger pgtrail_ddl_command_end on ddl_command_end
            execute function script_tracking.on_ddl_command_end();
    end if;
    if not exists (select 1 from pg_event_trigger where evtname = 'pgtrail_sql_drop') then
        create event trigger pgtrail_sql_drop on sql_drop
            execute function script_tracking.on_sql_drop();
    end if;
    if not exists (select 1 from pg_event_trigger where evtname = 'pgtrail_table_rewrite') then
        create event trigger pgtrail_table_rewrite on table_rewrite
            execute function script_tracking.on_table_rewrite();
    end if;
    if not exists (select 1 from pg_event_trigger where evtname = 'pgtrail_ddl_command_start') then
        create event trigger pgtrail_ddl_command_start on ddl_command_start
            when tag in ('CREATE TABLE AS', 'SELECT INTO', 'CREATE MATERIALIZED VIEW')
            execute function script_tracking.on_ddl_command_start();
    end if;
end
$$;
