-- pgtrail source side, part 2: who is acting, and the one signed way out (pg_logical_emit_message).
-- Idempotent.

-- Upgrade from the first (unsigned) install: its emit() was callable by every role, and its
-- zero-argument actor() and two-argument track_operation() would make calls ambiguous.
drop function if exists script_tracking.emit(text, jsonb, boolean);
drop function if exists script_tracking.actor();
drop function if exists script_tracking.track_operation(text, text);

-- The role acting for the session. Inside a SECURITY DEFINER function current_user is the
-- function's owner, but the 'role' setting still holds what the session chose with SET ROLE.
create or replace function script_tracking._acting_role()
returns text
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select case when current_setting('role') = 'none' then session_user::text else current_setting('role') end
$$;

-- Who is acting: the same answer whoever owns the calling function.
create or replace function script_tracking.actor(tenant_override text default null)
returns jsonb
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select jsonb_build_object(
        'session_user', session_user::text,
        'current_user', script_tracking._acting_role(),
        'application_name', nullif(current_setting('application_name', true), ''),
        'client_addr', host(inet_client_addr()),
        'backend_pid', pg_backend_pid(),
        'tenant_id', coalesce(nullif(tenant_override, ''), nullif(current_setting('pgtrail.tenant_id', true), '')))
$$;

create or replace function script_tracking._is_admin()
returns boolean
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select pg_has_role(script_tracking._acting_role(), 'pgtrail_admin', 'member')
        or script_tracking._acting_role() = (select nspowner::regrole::text from pg_namespace
                                             where nspname = 'script_tracking')
        or (select rolsuper from pg_roles where rolname = script_tracking._acting_role())
$$;

-- Sign and emit. Format of the message content: 'v1 <kid> <hex hmac-sha256> <json body>', the
-- HMAC taken over the body's UTF-8 bytes. A transactional message's body carries its own xid,
-- so a genuine body copied into another transaction is detected too.
create or replace function script_tracking._emit(kind text, body jsonb, transactional boolean default true)
returns pg_lsn
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    k record;
    payload text;
    hook text;
begin
    select kid, ipad, opad into k from script_tracking.signing_key order by kid desc limit 1;
    if not found then
        raise exception 'pgtrail: no signing key; run pgtrail install' using errcode = '55000';
    end if;
    body := jsonb_build_object('v', 1, 'kind', kind,
                               'at', to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                               'xid', case when transactional then (pg_current_xact_id()::text::bigint % 4294967296) end)
            || body;
    payload := body::text;
    hook := (select value from script_tracking.config where key = 'audit_hook');
    if hook is not null then
        execute format('select %s($1, $2)', hook::regprocedure::regproc) using kind, body;
    end if;
    return pg_logical_emit_message(transactional, 'pgtrail',
        'v1 ' || k.kid || ' '
        || encode(sha256(k.opad || sha256(k.ipad || convert_to(payload, 'UTF8'))), 'hex')
        || ' ' || payload);
end
$$;
revoke all on function script_tracking._emit(text, jsonb, boolean) from public;

-- Where a database already has its own audit function (e.g. util.log_audit_event(text, jsonb)),
-- every tracked event is passed to it as well: (kind text, body jsonb).
create or replace function script_tracking.set_audit_hook(fn regprocedure)
returns text
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
begin
    if not script_tracking._is_admin() then
        raise exception 'pgtrail: only pgtrail_admin members may set the audit hook' using errcode = '42501';
    end if;
    if fn is null then
        delete from script_tracking.config where key = 'audit_hook';
        return 'audit hook removed';
    end if;
    insert into script_tracking.config (key, value) values ('audit_hook', fn::text)
        on conflict (key) do update set value = excluded.value;
    return format('audit hook: %s', fn);
end
$$;
revoke all on function script_tracking.set_audit_hook(regprocedure) from public;
grant execute on function script_tracking.set_audit_hook(regprocedure) to pgtrail_admin;

-- For the consumer: the keys that verify messages.
create or replace function script_tracking.signing_keys()
returns table (kid integer, key bytea)
language sql stable security definer
set search_path = pg_catalog, pg_temp
as $$ select kid, key from script_tracking.signing_key order by kid $$;
revoke all on function script_tracking.signing_keys() from public;
grant execute on function script_tracking.signing_keys() to pgtrail_consumer;

-- Heartbeat: a quiet database still produces a transaction, so its slot advances; the consumer
-- measures the round trip from sent_at to the moment it reads the message.
create or replace function script_tracking.heartbeat()
returns pg_lsn
language sql security definer
set search_path = pg_catalog, pg_temp
as $$
    select script_tracking._emit('heartbeat', jsonb_build_object(
        'sent_at', extract(epoch from clock_timestamp())::numeric(20, 6),
        'actor', script_tracking.actor()))
$$;
revoke all on function script_tracking.heartbeat() from public;
grant execute on function script_tracking.heartbeat() to pgtrail_consumer;
