"""The original SQL API, wrappers, tenants and hostile input, read back through the real slot."""
import psycopg
import pytest

from schemas import DdlEvent, DmlEvent, OperationEvent, ScriptEvent

INJECTIONS = ["'); drop table victim; --", "$$; drop table victim; $$", "\"; drop table victim; --",
              "Robert'); DROP TABLE victim;--", "\\x00\\' or 1=1", "ünï¢ødé «»", "a" * 10000]


def of(events, cls):
    return [e for e in events if isinstance(e, cls)]


def test_track_operation_and_tenant(src, capture):
    op1 = src.execute("select track_operation('Reindex', 'MAINTENANCE')").fetchone()[0]
    src.execute("set pgtrail.tenant_id = 'acme'")
    op2 = src.execute("select script_tracking.track_operation('Purge', 'CLEANUP')").fetchone()[0]
    sid = src.execute("select script_tracking.track_script_execution('x.sql', tenant_id => 'globex')").fetchone()[0]
    events = capture.read()
    ops = of(events, OperationEvent)
    assert [(str(o.payload.operation_id), o.payload.name, o.payload.operation_type, o.actor.tenant_id) for o in ops] \
        == [(str(op1), "Reindex", "MAINTENANCE", None), (str(op2), "Purge", "CLEANUP", "acme")]
    (script,) = of(events, ScriptEvent)
    assert script.payload.execution_id == sid and script.actor.tenant_id == "globex"  # explicit argument wins


def test_script_lifecycle_and_a_failure_that_survives_its_rollback(src, capture):
    src.execute("create table ledger (id int primary key)")
    ok = src.execute("select script_tracking.run_tracked_script('fill.sql', "
                     "'insert into ledger select generate_series(1, 5)', 'MIGRATION', 'DML', '/srv/fill.sql', "
                     "'1.2', null, 'quarterly close', 'FIN-7')").fetchone()[0]
    with pytest.raises(psycopg.errors.UndefinedTable):
        with src.transaction():
            src.execute("select script_tracking.run_tracked_script('broken.sql', "
                        "'insert into ledger values (100); insert into no_such_table values (1)')")
    assert src.execute("select count(*) from ledger where id = 100").fetchone()[0] == 0  # rolled back
    events = capture.read()
    scripts = of(events, ScriptEvent)
    by_exec = {}
    for s in scripts:
        by_exec.setdefault(s.payload.execution_id, []).append(s)
    assert [s.payload.status for s in by_exec[ok]] == ["started", "completed"]
    started, done = by_exec[ok]
    assert (started.payload.script_name, started.payload.version, started.payload.ticket_number,
            started.payload.business_justification, started.payload.file_path) == \
        ("fill.sql", "1.2", "FIN-7", "quarterly close", "/srv/fill.sql")
    assert done.payload.rows_affected == 5 and done.payload.duration_ms is not None
    (failed_id,) = [k for k in by_exec if k != ok]
    assert [s.payload.status for s in by_exec[failed_id]] == ["started", "failed"]
    failed = by_exec[failed_id][1]
    assert failed.payload.error_state == "42P01" and "no_such_table" in failed.payload.error
    assert failed.source.commit_lsn is None  # non-transactional: its transaction is gone, the record is not


def test_audit_hook_is_called_as_well(src, capture):
    src.execute("create schema util")
    src.execute("create table util.audit_log (kind text, body jsonb)")
    src.execute("create function util.log_audit_event(kind text, body jsonb) returns void language sql "
                "as $$ insert into util.audit_log values (kind, body) $$")
    src.execute("select script_tracking.set_audit_hook('util.log_audit_event(text, jsonb)')")
    src.execute("select track_operation('Hooked', 'TESTING')")
    kinds = src.execute("select kind, body->>'name' from util.audit_log").fetchall()
    assert ("operation", "Hooked") in kinds
    src.execute("select script_tracking.set_audit_hook(null)")
    assert of(capture.read(), OperationEvent)[0].payload.name == "Hooked"


def test_tracking_wrappers(src, capture):
    src.execute("create schema auth")
    src.execute("create table auth.users (id int primary key, email text)")
    src.execute("insert into auth.users values (1, 'a@b.c'), (2, 'd@e.f')")
    src.execute("create function auth.login_user(email text, password text, tenant text default 't0') "
                "returns table (ok boolean, who text) language sql as $$ select true, email $$")
    src.execute("create function auth.split(x int, out half int, inout rest int) language plpgsql "
                "as $$ begin half := x / 2; rest := rest + x % 2; end $$")
    src.execute("create function auth.all_users() returns setof auth.users language sql "
                "as $$ select * from auth.users order by id $$")
    src.execute("create function auth.fail(x int) returns int language plpgsql as $$ begin "
                "insert into auth.users values (99, 'x'); raise exception 'no %', x using errcode = '22023'; end $$")
    src.execute('create schema "Odd Schema"')
    src.execute('create function "Odd Schema"."naïve ""fn"""(x int) returns int language sql as $$ select x * 3 $$')
    original = src.execute("select oid, prosrc from pg_proc where proname = 'login_user'").fetchone()
    for sig in ("auth.login_user(text, text, text)", "auth.split(int, int)", "auth.all_users()", "auth.fail(int)",
                '"Odd Schema"."naïve ""fn"""(int)'):
        src.execute("select script_tracking.create_tracking_wrapper(%s)", (sig,))
    assert src.execute("select * from auth.login_user_tracking('a@b.c', 'hunter2')").fetchall() == [(True, "a@b.c")]
    assert src.execute("select * from auth.split_tracking(7, 10)").fetchone() == (3, 11)
    assert src.execute("select id from auth.all_users_tracking()").fetchall() == [(1,), (2,)]
    assert src.execute('select "Odd Schema"."naïve ""fn""_tracking"(5)').fetchone() == (15,)
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        src.execute("select auth.fail_tracking(4)")
    assert src.execute("select count(*) from auth.users where id = 99").fetchone()[0] == 0
    # the original is untouched and still works
    assert src.execute("select oid, prosrc from pg_proc where proname = 'login_user'").fetchone() == original
    assert src.execute("select * from auth.login_user('z', 'y')").fetchone() == (True, "z")
    calls = [o for o in of(capture.read(), OperationEvent) if o.payload.operation_type == "FUNCTION_CALL"]
    by_name = {o.payload.name: o for o in calls}
    login = by_name["auth.login_user(text,text,text)"]
    # an argument is classified as a column of its name would be: email is PII, hashed; the secret never left
    args = login.payload.details["arguments"]
    assert args["password"] == "***redacted***" and args["tenant"] == "t0"
    assert args["email"].startswith("hmac-sha256:") and login.payload.details["redacted"] == {"email": "hash"}
    assert login.tags == ["PII", "GDPR"] and login.actor.tenant_id == "t0"  # the tenant argument, found by name
    assert "hunter2" not in login.model_dump_json() and "a@b.c" not in login.model_dump_json()
    assert login.payload.status == "completed" and login.payload.duration_ms >= 0
    assert by_name["auth.split(integer,integer)"].payload.details["arguments"] == {"x": 7, "rest": 10}
    fail = by_name["auth.fail(integer)"]
    assert (fail.payload.status, fail.payload.error, fail.payload.error_state) == ("failed", "no 4", "22023")
    assert fail.source.commit_lsn is None  # recorded although its transaction rolled back
    assert '"Odd Schema"."naïve ""fn"""(integer)' in by_name


def test_wrapper_refuses_what_it_cannot_wrap(src):
    for bad, state in [("no_such.fn(int)", "42883"), ("'; drop table x; --", "42883"),
                       ("pg_catalog.count(*)", "42883"), ("pg_catalog.array_length(anyarray, int)", "0A000")]:
        with pytest.raises(psycopg.Error) as err:
            src.execute("select script_tracking.create_tracking_wrapper(%s)", (bad,))
        assert err.value.sqlstate == state, (bad, err.value)
    src.execute("create procedure do_it() language sql as $$ select 1 $$")
    with pytest.raises(psycopg.errors.WrongObjectType):
        src.execute("select script_tracking.create_tracking_wrapper('do_it()')")


def test_injection_strings_in_every_text_argument(src, capture):
    src.execute("create table victim (id int)")
    for text in INJECTIONS:
        src.execute("select track_operation(%s, %s)", (text, text))
        eid = src.execute("select script_tracking.track_script_execution(%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                          (text,) * 9).fetchone()[0]
        src.execute("select script_tracking.complete_script_execution(%s, 1)", (eid,))
        src.execute("select script_tracking.fail_script_execution(%s, %s, %s, %s)", (eid, text, text, text))
        for fn in ("track_table", "untrack_table"):
            with pytest.raises(psycopg.Error):
                src.execute(f"select script_tracking.{fn}(%s)", (text,))
        with pytest.raises(psycopg.Error):
            src.execute("select script_tracking.track_schema(%s)", (text,))
    assert src.execute("select to_regclass('victim')").fetchone()[0] == "victim"  # nothing was executed
    events = capture.read()
    names = [o.payload.name for o in of(events, OperationEvent)]
    assert names == INJECTIONS  # stored verbatim, as data
    scripts = [s for s in of(events, ScriptEvent) if s.payload.status == "started"]
    assert [(s.payload.script_name, s.payload.ticket_number) for s in scripts] == [(t, t) for t in INJECTIONS]
    failed = [s for s in of(events, ScriptEvent) if s.payload.status == "failed"]
    assert [s.payload.error for s in failed] == INJECTIONS
    for blank in ("", "   ", None):
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            src.execute("select track_operation(%s, 'X')", (blank,))


def test_untrackable_tables_are_reported(src, capture):
    src.execute("create table no_key (a int)")
    src.execute("create table keyed (id int primary key)")
    notices = []
    src.add_notice_handler(lambda d: notices.append(d.message_primary))
    src.execute("select script_tracking.track_table('no_key')")
    src.execute("select script_tracking.track_table('keyed')")
    assert any("no_key has no replica identity" in n for n in notices)
    rows = src.execute("select * from script_tracking.untrackable_tables()").fetchall()
    assert rows == [("public.no_key", "default", "no primary key and REPLICA IDENTITY DEFAULT")]
    src.execute("alter table no_key replica identity full")
    assert src.execute("select * from script_tracking.untrackable_tables()").fetchall() == []
    src.execute("insert into no_key values (1)")
    src.execute("update no_key set a = 2")
    dml = of(capture.read(), DmlEvent)
    assert [d.payload.operation for d in dml] == ["insert", "update"]
    assert dml[1].payload.old == {"a": 1} and dml[1].payload.changed_columns == ["a"]


def test_a_one_megabyte_statement(src, capture):
    big = "x" * (1024 * 1024)
    src.execute(f"create table big_comment (id int); comment on table big_comment is '{big}'")
    events = [e for e in of(capture.read(), DdlEvent) if e.payload.command_tag == "COMMENT"]
    assert len(events[0].payload.statement) > 1024 * 1024
    assert events[0].payload.definition["comment"] == big
