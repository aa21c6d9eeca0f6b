-- pgtrail source side, part 8: server logs as history, from SQL. Idempotent.
--
-- script_tracking.import_postgres_logs(log_content) hands a log to the consumer in one signed
-- message; the consumer parses it with the same parser as `pgtrail import-logs` (one parser, two
-- entry points) and publishes one log_import event per entry, plus an operation event named
-- 'import_postgres_logs' that carries the parse report (lines, entries, lines not parsed and why).
-- The message travels through WAL, so the limit below keeps one import from holding up the
-- replication stream: bigger logs go through `pgtrail import-logs FILE`, which streams.

create or replace function script_tracking.import_postgres_logs(log_content text, log_format text default null,
                                                                log_line_prefix text default null)
returns uuid
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    id uuid := gen_random_uuid();
begin
    -- an import writes history in other people's names: only those who choose what is tracked
    if not script_tracking._is_admin() then
        raise exception 'pgtrail: only pgtrail_admin members may import logs' using errcode = '42501';
    end if;
    if log_content is null or btrim(log_content) = '' then
        raise exception 'import_postgres_logs: the log is empty' using errcode = '22023';
    end if;
    if log_format is not null and log_format not in ('stderr', 'csvlog', 'jsonlog') then
        raise exception 'import_postgres_logs: log_format must be stderr, csvlog or jsonlog, not %', log_format
            using errcode = '22023';
    end if;
    if octet_length(log_content) > 32 * 1024 * 1024 then
        raise exception 'import_postgres_logs: % MB is more than the 32 MB one call may carry',
                        octet_length(log_content) / (1024 * 1024)
            using errcode = '54000', hint = 'use `pgtrail import-logs FILE`, which streams files of any size';
    end if;
    perform script_tracking._emit('log_import', jsonb_build_object(
        'import_id', id, 'origin', 'sql:import_postgres_logs', 'content', log_content,
        'log_format', log_format, 'log_line_prefix', log_line_prefix, 'simulated', false,
        'actor', script_tracking.actor()));
    return id;
end
$$;
revoke all on function script_tracking.import_postgres_logs(text, text, text) from public;
grant execute on function script_tracking.import_postgres_logs(text, text, text) to pgtrail_admin;

-- A made-up but realistic server log (stderr, the prefix below): sessions of several users and
-- applications over the `days` days before now (never later), with DDL (one multi-line), DML,
-- queries, role, database and system commands, failed statements with their SQLSTATE, durations, connections.
create or replace function script_tracking._simulated_log(days integer, out content text, out prefix text)
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    users text[] := array['alice', 'bob', 'carol', 'deploy_bot', 'etl_service'];
    apps text[] := array['psql', 'flyway', 'billing-service', 'airflow', 'pgadmin'];
    dbs text[] := array['shop', 'billing', 'analytics'];
    stmts text[] := array[
        E'CREATE TABLE orders_archive (\n\t    id bigint primary key,\n\t    created_at timestamptz not null\n\t)',
        'ALTER TABLE orders ADD COLUMN discount numeric(5,2)',
        'CREATE INDEX CONCURRENTLY orders_created_idx ON public.orders (created_at)',
        'DROP TABLE IF EXISTS tmp_import',
        'INSERT INTO orders (customer_id, total) VALUES (42, 99.90)',
        'UPDATE orders SET status = ''shipped'' WHERE id = 1017',
        'DELETE FROM sessions WHERE expires_at < now()',
        'SELECT count(*) FROM orders WHERE created_at > now() - interval ''1 day''',
        'COPY invoices FROM STDIN',
        'VACUUM ANALYZE orders',
        'CREATE ROLE reporting NOLOGIN',
        'GRANT SELECT ON ALL TABLES IN SCHEMA public TO reporting',
        'ALTER ROLE etl_service PASSWORD ''simulated-secret''',
        'CREATE DATABASE scratch',
        'ALTER SYSTEM SET work_mem = ''64MB''',
        'TRUNCATE staging_events'];
    errors text[] := array['42P01|relation "order_items_old" does not exist|SELECT * FROM order_items_old',
                           '23505|duplicate key value violates unique constraint "orders_pkey"|INSERT INTO orders (id) VALUES (1)',
                           '42501|permission denied for table payroll|SELECT * FROM payroll'];
    out text[] := '{}';
    t timestamptz;
    day_start timestamptz;
    pid integer;
    sess text;
    u text; app text; db text; client text; head text; stmt text; err text[];
    line integer;
begin
    prefix := '%m [%p] %q%u@%d app=%a client=%h session=%c line=%l sqlstate=%e ';
    -- Day d is the 24 hours ending d days ago: the whole history lies in the `days` days before
    -- now, strictly in the past. A session starts at most 84,000 s into its day and lasts at most a
    -- few minutes (8 statements 30 s apart), so it ends before its day does.
    for d in 0 .. greatest(days, 1) - 1 loop
        day_start := now() - make_interval(days => d + 1);
        for s in 1 .. 6 + floor(random() * 6)::int loop
            t := day_start + make_interval(secs => floor(random() * 84000));
            pid := 1000 + floor(random() * 60000)::int;
            sess := to_hex(extract(epoch from t)::bigint) || '.' || to_hex(pid);
            u := users[1 + floor(random() * array_length(users, 1))::int];
            app := apps[1 + floor(random() * array_length(apps, 1))::int];
            db := dbs[1 + floor(random() * array_length(dbs, 1))::int];
            client := '10.0.' || floor(random() * 4)::int || '.' || (10 + floor(random() * 40)::int);
            line := 1;
            head := to_char(t at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS') || ' UTC [' || pid || '] ' || u || '@' || db
                    || ' app=' || app || ' client=' || client || ' session=' || sess || ' line=';
            out := out || (head || line || ' sqlstate=00000 LOG:  connection authorized: user=' || u
                           || ' database=' || db || ' application_name=' || app);
            for k in 1 .. 2 + floor(random() * 6)::int loop
                line := line + 1;
                t := t + make_interval(secs => random() * 30);
                head := to_char(t at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS') || ' UTC [' || pid || '] ' || u || '@'
                        || db || ' app=' || app || ' client=' || client || ' session=' || sess || ' line=';
                if random() < 0.1 then
                    err := string_to_array(errors[1 + floor(random() * array_length(errors, 1))::int], '|');
                    out := out || (head || line || ' sqlstate=' || err[1] || ' ERROR:  ' || err[2]);
                    line := line + 1;
                    out := out || (head || line || ' sqlstate=' || err[1] || ' STATEMENT:  ' || err[3]);
                else
                    stmt := stmts[1 + floor(random() * array_length(stmts, 1))::int];
                    out := out || (head || line || ' sqlstate=00000 LOG:  duration: '
                                   || to_char(random() * 900 + 0.05, 'FM99990.000') || ' ms  statement: ' || stmt);
                end if;
            end loop;
            line := line + 1;
            out := out || (head || line || ' sqlstate=00000 LOG:  disconnection: session time: 0:00:'
                           || lpad(floor(random() * 59)::int::text, 2, '0') || '.123 user=' || u || ' database=' || db
                           || ' host=' || client || ' port=' || (40000 + floor(random() * 20000)::int));
        end loop;
        out := out || (to_char(day_start at time zone 'UTC',
                               'YYYY-MM-DD HH24:MI:SS.MS') || ' UTC [77] LOG:  checkpoint starting: time');
    end loop;
    content := array_to_string(out, E'\n') || E'\n';
end
$$;
revoke all on function script_tracking._simulated_log(integer) from public;

-- simulate = true: a simulated history of `days` days for demos and tests, marked as simulated in
-- every event, in the vault and in every report. simulate = false: the server's own log files of
-- the last `days` days (log_directory; needs logging_collector and a superuser).
create or replace function script_tracking.import_historical_operations(days integer default 30,
                                                                        simulate boolean default true)
returns uuid
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    id uuid := gen_random_uuid();
    sim record;
    f record;
    fmt text;
    n integer := 0;
begin
    if not script_tracking._is_admin() then
        raise exception 'pgtrail: only pgtrail_admin members may import history' using errcode = '42501';
    end if;
    if days is null or days < 1 or days > 3650 then
        raise exception 'import_historical_operations: days must be between 1 and 3650' using errcode = '22023';
    end if;
    if simulate then
        sim := script_tracking._simulated_log(days);
        perform script_tracking._emit('log_import', jsonb_build_object(
            'import_id', id, 'origin', 'simulated:import_historical_operations', 'content', sim.content,
            'log_format', 'stderr', 'log_line_prefix', sim.prefix, 'simulated', true,
            'actor', script_tracking.actor()));
        return id;
    end if;
    -- reading the server's files is a superuser's right: never lent to pgtrail_admin
    if not (select rolsuper from pg_roles where rolname = script_tracking._acting_role()) then
        raise exception 'import_historical_operations(simulate => false) reads the server''s log files: superusers only'
            using errcode = '42501';
    end if;
    if current_setting('logging_collector') <> 'on' then
        raise exception 'logging_collector is off: this server''s log is not in log_directory'
            using errcode = '55000',
                  hint = 'import the file the server writes to with `pgtrail import-logs FILE`';
    end if;
    for f in select name, size from pg_ls_logdir()
              where modification >= now() - make_interval(days => days) order by modification loop
        if f.size > 32 * 1024 * 1024 then
            raise notice 'pgtrail: % is % MB, more than one call carries: import it with `pgtrail import-logs`',
                         f.name, f.size / (1024 * 1024);
            continue;
        end if;
        fmt := case when f.name like '%.json' then 'jsonlog' when f.name like '%.csv' then 'csvlog' else 'stderr' end;
        perform script_tracking._emit('log_import', jsonb_build_object(
            'import_id', id, 'origin', 'server:' || f.name,
            'content', pg_read_file(current_setting('log_directory') || '/' || f.name),
            'log_format', fmt, 'log_line_prefix', current_setting('log_line_prefix'), 'simulated', false,
            'actor', script_tracking.actor()));
        n := n + 1;
    end loop;
    if n = 0 then
        raise notice 'pgtrail: no log file of the last % days in %', days, current_setting('log_directory');
    end if;
    return id;
end
$$;
revoke all on function script_tracking.import_historical_operations(integer, boolean) from public;
grant execute on function script_tracking.import_historical_operations(integer, boolean) to pgtrail_admin;
