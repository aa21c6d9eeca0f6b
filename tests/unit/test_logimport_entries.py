"""Which server messages make one entry: multi-line statements, errors with their STATEMENT,
durations, pgaudit lines, connections; and the ids of entries."""
from __future__ import annotations

import io

from logimport import EntryBuilder, ParseReport, Record, read_log

T = "2024-05-01 12:00:01.123 UTC"


def read(text: str, prefix: str | None = "%m [%p] ", **kw):
    report = ParseReport()
    events = list(read_log(io.BytesIO(text.encode()), origin="test.log", prefix=prefix, server="srv",
                           report=report, **kw))
    return events, report


def lines(*rows: str) -> str:
    return "".join(row + "\n" for row in rows)


def test_a_statement_over_several_lines_is_one_entry():
    events, report = read(lines(
        f"{T} [10] LOG:  statement: CREATE TABLE t (",
        "\t    id int,",
        "\t    name text",
        "\t)",
        f"{T} [10] LOG:  statement: select 1"))
    assert [e.payload.statement for e in events] == ["CREATE TABLE t (\n    id int,\n    name text\n)", "select 1"]
    assert [e.payload.line for e in events] == [1, 5]
    assert events[0].payload.command_tag == "CREATE TABLE" and report.unparsed == 0


def test_error_with_statement_marks_the_logged_statement_failed():
    events, report = read(lines(
        f"{T} [10] 42P01 LOG:  statement: select * from nope",
        f"{T} [10] 42P01 ERROR:  relation \"nope\" does not exist at character 15",
        f"{T} [10] 42P01 STATEMENT:  select * from nope"), prefix="%m [%p] %e ")
    [e] = events
    assert (e.payload.status, e.payload.error_state, e.payload.severity) == ("failed", "42P01", "ERROR")
    assert e.payload.error == 'relation "nope" does not exist at character 15'
    assert e.payload.line == 1 and report.merged == 1


def test_error_with_a_statement_that_was_not_logged_is_its_own_failed_entry():
    events, _ = read(lines(
        f"{T} [10] ERROR:  null value in column \"a\" violates not-null constraint",
        f"{T} [10] DETAIL:  Failing row contains (null).",
        f"{T} [10] HINT:  Give it a value.",
        f"{T} [10] STATEMENT:  insert into t",
        "\tvalues (null)"))
    [e] = events
    assert (e.payload.category, e.payload.command_tag, e.payload.object_identity) == ("dml", "INSERT", "t")
    assert e.payload.statement == "insert into t\nvalues (null)" and e.payload.status == "failed"


def test_error_without_a_statement_is_an_error_entry():
    events, _ = read(lines(f'{T} [10] FATAL:  password authentication failed for user "bob"',
                           f'{T} [10] DETAIL:  Connection matched pg_hba.conf line 99: "host all all 0/0 md5"'))
    [e] = events
    assert (e.payload.category, e.payload.status, e.payload.severity) == ("error", "failed", "FATAL")
    assert e.payload.statement is None and "bob" in e.payload.error


def test_duration_after_the_statement_is_merged_per_process():
    events, report = read(lines(
        f"{T} [10] LOG:  statement: update t set a = 1",
        f"{T} [20] LOG:  statement: delete from u",
        f"{T} [20] LOG:  duration: 2.500 ms",
        f"{T} [10] LOG:  duration: 12.345 ms"))
    assert {e.payload.statement: e.payload.duration_ms for e in events} == {"update t set a = 1": 12.345,
                                                                             "delete from u": 2.5}
    assert report.merged == 2 and report.entries == 2


def test_duration_with_the_same_statement_is_not_a_second_entry():
    events, _ = read(lines(
        f"{T} [10] LOG:  statement: select pg_sleep(1)",
        f"{T} [10] LOG:  duration: 1001.2 ms  statement: select pg_sleep(1)",
        f"{T} [10] LOG:  duration: 3.0 ms  statement: select 2"))
    assert [(e.payload.statement, e.payload.duration_ms) for e in events] == [("select pg_sleep(1)", 1001.2),
                                                                              ("select 2", 3.0)]


def test_extended_protocol_phases_fold_into_the_execute_entry():
    events, report = read(lines(
        f"{T} [10] LOG:  duration: 0.1 ms  parse <unnamed>: select $1",
        f"{T} [10] LOG:  duration: 0.2 ms  bind <unnamed>: select $1",
        f"{T} [10] DETAIL:  parameters: $1 = '1'",
        f"{T} [10] LOG:  duration: 0.3 ms  execute <unnamed>: select $1",
        f"{T} [10] DETAIL:  parameters: $1 = '1'",
        f"{T} [10] LOG:  execute S_1: insert into t values ($1)",
        f"{T} [10] DETAIL:  parameters: $1 = '2'",
        f"{T} [10] LOG:  duration: 0.4 ms"))
    assert [(e.payload.statement, e.payload.duration_ms) for e in events] == [
        ("select $1", 0.3), ("insert into t values ($1)", 0.4)]
    assert report.merged == 3


def test_a_duration_whose_statement_was_not_logged_is_counted_as_skipped():
    events, report = read(lines(f"{T} [10] LOG:  duration: 0.1 ms",
                                f"{T} [10] LOG:  checkpoint starting: time",
                                f"{T} [10] LOG:  statement: select 1"))
    assert len(events) == 1 and report.skipped == 2
    assert report.skipped_reasons["duration without its statement (the statement was not logged)"] == 1


def test_pgaudit_lines():
    events, report = read(lines(
        f"{T} [10] u@db LOG:  statement: create table t(a int)",
        f'{T} [10] u@db LOG:  AUDIT: SESSION,1,1,DDL,CREATE TABLE,TABLE,public.t,create table t(a int),<not logged>',
        f'{T} [10] u@db LOG:  AUDIT: OBJECT,2,1,READ,SELECT,TABLE,public.accounts,"select a, b from accounts",'
        "<not logged>",
        f"{T} [10] u@db LOG:  AUDIT: SESSION,3,1,ROLE,GRANT,,,grant admin to bob,<not logged>",
        f"{T} [10] u@db LOG:  AUDIT: SESSION,4,1,WRITE,INSERT,,,insert into t values (1),<not logged>",
        f"{T} [10] u@db LOG:  AUDIT: SESSION,4,2,FUNCTION,EXECUTE,FUNCTION,public.f,<previously logged>,<not logged>",
        f"{T} [10] u@db LOG:  duration: 1.5 ms"), prefix="%m [%p] %q%u@%d ")
    ddl, read_, grant, insert, function = sorted(events, key=lambda e: e.payload.line)
    assert ddl.payload.statement == "create table t(a int)" and ddl.payload.audit["class"] == "DDL"
    assert (ddl.payload.object_type, ddl.payload.object_identity) == ("table", "public.t")
    assert (read_.payload.category, read_.payload.object_identity) == ("query", "public.accounts")
    assert read_.payload.audit == {"audit_type": "OBJECT", "statement_id": "2", "substatement_id": "1",
                                   "class": "READ", "command": "SELECT", "object_type": "TABLE",
                                   "object_name": "public.accounts", "statement": "select a, b from accounts",
                                   "parameter": "<not logged>"}
    assert (grant.payload.category, grant.payload.command_tag) == ("role", "GRANT")
    assert (insert.payload.category, insert.payload.duration_ms) == ("dml", 1.5)  # the duration is the statement's
    assert (function.payload.object_identity, function.payload.statement) == ("public.f", None)
    assert report.merged == 2 and report.unparsed == 0


def test_connection_lines_and_who_a_process_is():
    events, _ = read(lines(
        f"{T} [10] LOG:  connection received: host=10.0.0.7 port=5100",
        f"{T} [10] LOG:  connection authorized: user=alice database=sales application_name=billing SSL enabled "
        "(protocol=TLSv1.3, cipher=TLS_AES_256_GCM_SHA384, bits=256)",
        f"{T} [10] LOG:  statement: drop table t",
        f"{T} [10] LOG:  disconnection: session time: 1:02:03.500 user=alice database=sales host=10.0.0.7 port=5100",
        f"{T} [10] LOG:  statement: select 1"))
    received, authorized, drop, gone, after = events
    assert (received.payload.category, received.actor.client_addr) == ("connection", "10.0.0.7")
    assert (authorized.actor.session_user, authorized.actor.application_name) == ("alice", "billing")
    assert authorized.source.database == "sales"
    assert (drop.actor.session_user, drop.actor.application_name, drop.actor.client_addr, drop.source.database) == (
        "alice", "billing", "10.0.0.7", "sales")  # the prefix '%m [%p] ' has none of them
    assert (gone.payload.category, gone.payload.duration_ms) == ("disconnection", 3723500.0)
    assert after.actor.session_user is None and after.source.database == "unknown"  # the pid's session ended


def test_ids_come_from_the_session_and_its_line_number():
    row = "6632a1b2.10a2 {} [10] LOG:  statement: select 1"
    events, _ = read(lines(row.format(3), row.format(4)), prefix="%c %l [%p] ")
    again, _ = read(lines("# a different file", row.format(4)), prefix="%c %l [%p] ")
    assert events[1].event_id == again[0].event_id != events[0].event_id
    assert (events[0].payload.session_id, events[0].payload.session_line) == ("6632a1b2.10a2", 3)


def test_ids_without_session_numbers_come_from_the_content():
    text = lines(f"{T} [10] LOG:  statement: select 1", f"{T} [10] LOG:  statement: select 1")
    first, _ = read(text)
    second, _ = read("\n\n" + text)  # other line numbers, same content
    assert len({e.event_id for e in first}) == 2  # exact duplicates differ by their occurrence
    assert [e.event_id for e in first] == [e.event_id for e in second]
    other_server, _ = read(text.replace("[10]", "[11]"))
    assert not {e.event_id for e in other_server} & {e.event_id for e in first}


def test_payload_details():
    events, _ = read(lines(f"{T} [10] 0 0 LOG:  statement: select 1",
                           f"{T} [10] 0 0 LOG:  statement: delete from t"), prefix="%m [%p] %x %Q ",
                     simulated=True)
    p = events[0].payload
    assert (p.xid, p.query_id, p.simulated, p.log_format, p.origin) == (None, None, True, "stderr", "test.log")
    assert events[0].source.system_id == "srv" and events[0].source.commit_time.isoformat() == \
        "2024-05-01T12:00:01.123000+00:00"


def test_pending_statements_are_bounded():
    report = ParseReport()
    builder = EntryBuilder(log_format="stderr", origin="x", server="s", simulated=False, report=report,
                           max_pending=3, max_seen=5)
    out = []
    for i in range(50):
        out += builder.feed(Record(line=i + 1, raw=f"r{i}", severity="LOG", message=f"statement: select {i}",
                                   pid=1000 + i, time_text=T))
        assert len(builder._pending) <= 3 and len(builder._seen) <= 5
    out += builder.finish()
    assert sorted(e.payload.statement for e in out) == sorted(f"select {i}" for i in range(50))


def test_entry_ids_are_schemas_log_entry_ids():
    from logimport.entries import EntryIds
    from schemas.ids import log_entry_id
    for server in ("fixture", "7712193764098600281", "ü/x"):
        ids = EntryIds(server)
        for key in ("abc.1/7", "sha256:" + "0" * 64 + "/3", "é"):
            assert ids.id(key) == log_entry_id(server, key)
            assert ids.text(key) == str(log_entry_id(server, key))
