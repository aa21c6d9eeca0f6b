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

-- Roles, databases, tablespaces and ALTER SYSTEM settings fire no event trigger. Their state is
-- snapshotted here (never a password) and compared at every heartbeat; a change becomes a DDL
-- event 'GLOBAL OBJECTS CHANGED' carrying the new snapshot, so the vault's history can diff it.
-- Who made such a change cannot be known here: see docs/source-tracking.md for the log import.
create or replace function script_tracking.globals_snapshot()
returns jsonb
language sql stable security definer
set search_path = pg_catalog, pg_temp
as $$
    select jsonb_build_object(
        'roles', (select coalesce(jsonb_agg(jsonb_build_object(
                      'name', r.rolname, 'superuser', r.rolsuper, 'create_role', r.rolcreaterole,
                      'create_db', r.rolcreatedb, 'login', r.rolcanlogin, 'replication', r.rolreplication,
                      'bypass_rls', r.rolbypassrls, 'connection_limit', r.rolconnlimit,
                      'valid_until', r.rolvaliduntil,
                      'member_of', (select coalesce(jsonb_agg(g.rolname order by g.rolname), '[]')
                                      from pg_auth_members m join pg_roles g on g.oid = m.roleid
                                     where m.member = r.oid)) order by r.rolname), '[]')
                    from pg_roles r where r.rolname !~ '^pg_'),
        'databases', (select coalesce(jsonb_agg(jsonb_build_object(
                          'name', d.datname, 'owner', pg_get_userbyid(d.datdba),
                          'encoding', pg_encoding_to_char(d.encoding), 'allow_connections', d.datallowconn,
                          'connection_limit', d.datconnlimit) order by d.datname), '[]')
                        from pg_database d where not d.datistemplate),
        'tablespaces', (select coalesce(jsonb_agg(jsonb_build_object(
                            'name', t.spcname, 'owner', pg_get_userbyid(t.spcowner),
                            'location', pg_tablespace_location(t.oid)) order by t.spcname), '[]')
                          from pg_tablespace t),
        'alter_system', (select coalesce(jsonb_object_agg(f.name, f.setting order by f.name), '{}')
                           from pg_file_settings f where f.sourcefile like '%postgresql.auto.conf' and f.applied))
$$;
revoke all on function script_tracking.globals_snapshot() from public;

-- Heartbeat: a quiet database still produces a transaction, so its slot advances; the consumer
-- measures the round trip from sent_at to the moment it reads the message.
create or replace function script_tracking.heartbeat()
returns pg_lsn
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    snap jsonb := script_tracking.globals_snapshot();
    digest text := md5(snap::text);
begin
    if digest is distinct from (select value from script_tracking.config where key = 'globals_digest') then
        perform script_tracking._emit('ddl', jsonb_build_object(
            'command_tag', 'GLOBAL OBJECTS CHANGED',
            'object_type', 'cluster',
            'object_identity', 'cluster globals',
            'definition', snap,
            'detected_by', 'heartbeat'));
        insert into script_tracking.config (key, value) values ('globals_digest', digest)
            on conflict (key) do update set value = excluded.value;
    end if;
    return script_tracking._emit('heartbeat', jsonb_build_object(
        'sent_at', extract(epoch from clock_timestamp())::numeric(20, 6),
        'actor', script_tracking.actor()));
end
$$;
revoke all on function script_tracking.heartbeat() from public;
grant execute on function script_tracking.heartbeat() to pgtrail_consumer;
