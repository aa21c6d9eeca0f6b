"""log_line_prefix compilation: every PostgreSQL 15 escape, padding, %q, and prefix detection."""
from __future__ import annotations

import time

import pytest

from logimport import Prefix, detect_prefix

# (escape, what the server printed for it, the field, the value read back)
ESCAPES = [
    ("%a", "psql", "application", "psql"),
    ("%a", "my app (v2)", "application", "my app (v2)"),
    ("%u", "alice", "user", "alice"),
    ("%d", "sales", "database", "sales"),
    ("%r", "10.1.2.3(51234)", "remote", "10.1.2.3(51234)"),
    ("%r", "[local]", "remote", "[local]"),
    ("%h", "db-client.example.com", "host", "db-client.example.com"),
    ("%b", "client backend", "backend_type", "client backend"),
    ("%b", "autovacuum worker", "backend_type", "autovacuum worker"),
    ("%p", "4242", "pid", "4242"),
    ("%P", "4100", "leader_pid", "4100"),
    ("%t", "2024-05-01 12:00:01 UTC", "time_s", "2024-05-01 12:00:01 UTC"),
    ("%t", "2024-05-01 12:00:01 +03", "time_s", "2024-05-01 12:00:01 +03"),
    ("%m", "2024-05-01 12:00:01.123 CEST", "time_ms", "2024-05-01 12:00:01.123 CEST"),
    ("%n", "1714564801.123", "epoch", "1714564801.123"),
    ("%i", "idle in transaction", "ps", "idle in transaction"),
    ("%i", "CREATE TABLE", "ps", "CREATE TABLE"),
    ("%e", "42P01", "sqlstate", "42P01"),
    ("%c", "6632a1b2.10a2", "session_id", "6632a1b2.10a2"),
    ("%l", "17", "session_line", "17"),
    ("%s", "2024-05-01 11:59:00 UTC", "session_start", "2024-05-01 11:59:00 UTC"),
    ("%v", "3/1042", "vxid", "3/1042"),
    ("%x", "7781", "xid", "7781"),
    ("%Q", "-6680760695349768635", "query_id", "-6680760695349768635"),
]


@pytest.mark.parametrize("escape,printed,field,value", ESCAPES)
def test_every_escape_reads_back(escape, printed, field, value):
    for prefix, line in ((f"{escape} ", f"{printed} "), (f"[{escape}]: ", f"[{printed}]: ")):
        m = Prefix(prefix).match(f"{line}LOG:  statement: select 1")
        assert m is not None, (prefix, line)
        assert m.fields[field] == value
        assert (m.severity, m.message) == ("LOG", "statement: select 1")


def test_values_that_are_empty_or_unknown_are_absent():
    # what a process without a session prints: nothing for %u %d %a %h %r %i %P %v
    m = Prefix("%m [%p] %u|%d|%a|%h|%r|%i|%P|%v ").match("2024-05-01 12:00:01.123 UTC [7] ||||||| LOG:  x")
    assert m.fields == {"time_ms": "2024-05-01 12:00:01.123 UTC", "pid": "7"}
    m = Prefix("%u@%d ").match("[unknown]@[unknown] LOG:  connection received: host=::1 port=5")
    assert m.fields == {}


def test_literal_percent_and_unknown_escapes():
    m = Prefix("%%%z[%p] 100%% ").match("%[12] 100% LOG:  x")  # %z prints nothing
    assert m is not None and m.fields == {"pid": "12"}
    assert Prefix("[%p] %").match("[12] LOG:  x") is not None  # a lone % at the end prints nothing


def test_padding_pads_left_or_right():
    p = Prefix("%-10u|%10d|%5p|%-8a|")
    m = p.match("bob       |     sales| 4242|psql    |LOG:  x")
    assert m.fields == {"user": "bob", "database": "sales", "pid": "4242", "application": "psql"}
    m = p.match("          |          | 4242|        |LOG:  x")  # padded empty values
    assert m.fields == {"pid": "4242"}


def test_percent_q_cuts_the_prefix_for_background_processes():
    p = Prefix("%m [%p] %q%u@%d ")
    session = p.match("2024-05-01 12:00:01.123 UTC [10] alice@sales LOG:  statement: select 1")
    background = p.match("2024-05-01 12:00:01.123 UTC [11] LOG:  checkpoint starting: time")
    assert session.session and session.fields["user"] == "alice"
    assert not background.session and "user" not in background.fields
    assert background.message == "checkpoint starting: time"


def test_sub_fields_and_non_matching_lines():
    p = Prefix("%m [%p] ")
    for severity in ("DETAIL", "HINT", "CONTEXT", "STATEMENT", "QUERY", "LOCATION", "ERROR", "FATAL", "PANIC",
                     "WARNING", "NOTICE", "INFO", "DEBUG"):
        assert p.match(f"2024-05-01 12:00:01.123 UTC [1] {severity}:  x").severity == severity
    assert p.match("2024-05-01 12:00:01.123 UTC [1] LOG: one space") is None
    assert p.match("2024-05-01 12:00:01 UTC [1] LOG:  %t is not %m") is None
    assert p.match("garbage") is None and p.match("") is None


def test_a_long_line_that_does_not_match_fails_fast():
    p = Prefix("%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ")
    line = "2024-05-01 12:00:01 UTC [1]: [1-1] user=" + "a," * 300_000
    started = time.perf_counter()
    assert p.match(line) is None
    assert time.perf_counter() - started < 1.0


def test_detection_picks_the_prefix_that_reads_most_lines():
    debian = ["2024-05-01 12:00:01.123 UTC [10] alice@sales LOG:  statement: select 1",
              "2024-05-01 12:00:01.123 UTC [11] LOG:  checkpoint starting: time",
              "\tcontinued",
              "2024-05-01 12:00:01.123 UTC [10] alice@sales LOG:  duration: 1.0 ms"]
    chosen, matched, tried = detect_prefix(debian)
    assert (chosen.text, matched, tried) == ("%m [%p] %q%u@%d ", 3, 3)
    default = ["2024-05-01 12:00:01.123 UTC [10] LOG:  statement: select 1"]
    assert detect_prefix(default)[0].text == "%m [%p] "  # both read it; the whole-prefix match wins
    design = ["2024-05-01 12:00:01 UTC [10]: [3-1] user=a,db=b,app=psql,client=10.0.0.1 LOG:  statement: select 1"]
    assert detect_prefix(design)[0].text == "%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h "
    assert detect_prefix(["not a log line"]) == (None, 0, 1)
