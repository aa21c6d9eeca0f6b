-- pgtrail source side, part 6: tracking wrappers. Idempotent.
--
-- script_tracking.create_tracking_wrapper('auth.login_user(text, text, text)') creates
-- auth.login_user_tracking with the same arguments (names, modes, defaults) and result type.
-- It calls the original, and tracks every call: who, how long, success or failure, the tenant,
-- and the arguments. Arguments get the same compliance treatment as columns: those whose names say
-- they hold a secret (password, token, ...) never leave the wrapper; the others are classified
-- PII / PHI / FINANCIAL by name, by script_tracking.argument_classification or by a tag in the
-- function's comment, and redacted per policy by the consumer before the event leaves it.
-- The tenant of a call is the value of its tenant argument: the one named by tenant_argument, or,
-- when that is null, the one input argument whose name has the word tenant (tenant, p_tenant_id);
-- tenant_argument => '' means none. Without one, the session's pgtrail.tenant_id.
-- The original is untouched, so existing callers keep working. The wrapper is SECURITY INVOKER:
-- it can do nothing the caller could not do by calling the original.

drop function if exists script_tracking.create_tracking_wrapper(text);

create or replace function script_tracking.create_tracking_wrapper(signature text, tenant_argument text default null)
returns text
language plpgsql
-- No pinned search_path: the signature is resolved as the caller would resolve it. While the
-- wrapper is generated the path is narrowed to pg_catalog, so every other type and default is
-- printed schema-qualified.
as $create$
declare
    caller_path text := current_setting('search_path');
    fn regprocedure;
    p record;
    modes "char"[];
    names text[];
    n integer;
    call_args text[] := '{}';
    out_targets text[] := '{}';
    arg_json text[] := '{}';
    wrapper_name text;
    result_type text;
    call_expr text;
    body text;
    ddl text;
    tenant_expr text := 'null';
    candidates integer[];
begin
    begin
        fn := signature::regprocedure;
    exception when others then
        raise exception 'create_tracking_wrapper: % is not a function signature such as schema.fn(integer, text): %',
            quote_literal(signature), sqlerrm using errcode = '42883';
    end;
    perform set_config('search_path', 'pg_catalog, pg_temp', true);
    select pr.*, ns.nspname into p from pg_proc pr join pg_namespace ns on ns.oid = pr.pronamespace where pr.oid = fn;
    if p.prokind <> 'f' then
        raise exception 'create_tracking_wrapper: % is not a plain function (procedures and aggregates are not wrapped)', fn
            using errcode = '42809';
    end if;
    if octet_length(p.proname || '_tracking') > 63 then
        raise exception 'create_tracking_wrapper: % is too long a name for a _tracking wrapper', quote_ident(p.proname)
            using errcode = '42622';
    end if;
    if exists (select 1 from unnest(coalesce(p.proallargtypes, p.proargtypes::oid[]) || p.prorettype) t
                where t in ('anyelement'::regtype, 'anyarray'::regtype, 'anynonarray'::regtype, 'anyenum'::regtype,
                            'anyrange'::regtype, 'anycompatible'::regtype, 'anycompatiblearray'::regtype,
                            'anymultirange'::regtype, 'anycompatiblenonarray'::regtype, 'anycompatiblerange'::regtype,
                            'anycompatiblemultirange'::regtype, 'internal'::regtype)) then
        raise exception 'create_tracking_wrapper: % has polymorphic arguments or result; wrap a concrete function', fn
            using errcode = '0A000';
    end if;

    n := coalesce(array_length(p.proallargtypes, 1), p.pronargs);
    modes := coalesce(p.proargmodes, array_fill('i'::"char", array[n]));
    names := coalesce(p.proargnames, array_fill(''::text, array[n]));
    for i in 1..n loop
        if modes[i] in ('i', 'b') then
            call_args := call_args || ('$' || i);
        elsif modes[i] = 'v' then
            call_args := call_args || ('variadic $' || i);
        end if;
        if modes[i] in ('o', 'b') then
            out_targets := out_targets || ('$' || i);
        end if;
        if modes[i] in ('i', 'b', 'v') then
            arg_json := arg_json || format('%L, %s', coalesce(nullif(names[i], ''), '$' || i),
                case when script_tracking.is_secret_name(names[i]) then quote_literal('***redacted***') || '::text'
                     else 'to_jsonb($' || i || ')' end);
        end if;
    end loop;

    if tenant_argument is not null and tenant_argument <> '' then
        candidates := array(select i from generate_subscripts(names, 1) i
                             where names[i] = tenant_argument and modes[i] in ('i', 'b'));
        if cardinality(candidates) = 0 then
            raise exception 'create_tracking_wrapper: % has no input argument named %', fn, quote_ident(tenant_argument)
                using errcode = '42703';
        end if;
    elsif tenant_argument is null then
        candidates := array(select i from generate_subscripts(names, 1) i
                             where lower(names[i]) ~ '(^|_)tenant(_|$)' and modes[i] in ('i', 'b'));
    end if;
    if cardinality(candidates) = 1 then
        tenant_expr := format('$%s::text', candidates[1]);
    end if;

    wrapper_name := format('%I.%I', p.nspname, p.proname || '_tracking');
    result_type := pg_get_function_result(fn);
    call_expr := format('%s.%s(%s)', quote_ident(p.nspname), quote_ident(p.proname), array_to_string(call_args, ', '));

    if p.proretset then
        body := format('return query select * from %s;', call_expr);
    elsif array_length(out_targets, 1) > 0 then
        body := format('select * into %s from %s;', array_to_string(out_targets, ', '), call_expr);
    elsif p.prorettype = 'void'::regtype then
        body := format('perform %s;', call_expr);
    else
        body := format('__result := %s;', call_expr);
    end if;

    ddl := format($f$create or replace function %s(%s) returns %s
language plpgsql volatile security invoker
set search_path = pg_catalog, pg_temp
as $wrapper$
declare
    __started timestamptz := clock_timestamp();
    __args jsonb := jsonb_build_object(%s);
    __msg text;
    __state text;%s
begin
    %s
    perform script_tracking.track_call(%L::regprocedure, __args, __started, true, null, null, %s);
    %s
exception when others then
    get stacked diagnostics __msg = message_text, __state = returned_sqlstate;
    perform script_tracking.track_call(%L::regprocedure, __args, __started, false, __msg, __state, %s);
    raise;
end
$wrapper$$f$,
        wrapper_name, pg_get_function_arguments(fn), result_type,
        array_to_string(arg_json, ', '),
        case when not p.proretset and array_length(out_targets, 1) is null and p.prorettype <> 'void'::regtype
             then format(E'\n    __result %s;', format_type(p.prorettype, null)) else '' end,
        body, fn::text, tenant_expr,
        case when not p.proretset and array_length(out_targets, 1) is null and p.prorettype <> 'void'::regtype
             then 'return __result;' else 'return;' end,
        fn::text, tenant_expr);
    execute ddl;
    execute format('comment on function %s(%s) is %L', wrapper_name, pg_get_function_identity_arguments(fn),
                   'pgtrail tracking wrapper of ' || fn::text);
    ddl := format('%s(%s)', wrapper_name, pg_get_function_identity_arguments(fn));
    perform set_config('search_path', caller_path, true);
    return ddl;
end
$create$;
