"""Secrets typed into statements never leave the log import."""
import io

import pytest

from logimport import ParseReport, read_log
from logimport.redact import redact_secrets


@pytest.mark.parametrize("sql, expected", [
    ("ALTER ROLE x PASSWORD 'se''cret' VALID UNTIL 'infinity'", "ALTER ROLE x PASSWORD '********' VALID UNTIL 'infinity'"),
    ("create user y with encrypted password E'abc'", "create user y with encrypted password '********'"),
    ("alter role z password $q$p@ss$q$ login", "alter role z password '********' login"),
    ("ALTER ROLE a PASSWORD 'SCRAM-SHA-256$4096:abc$def:ghi'", "ALTER ROLE a PASSWORD '********'"),
    ("CREATE SUBSCRIPTION s CONNECTION 'host=a password=hunter2 dbname=b' PUBLICATION p",
     "CREATE SUBSCRIPTION s CONNECTION 'host=a password=******** dbname=b' PUBLICATION p"),
    ("select dblink_connect('dbname=x password = h2')", "select dblink_connect('dbname=x password = ********')"),
    ("CREATE USER MAPPING FOR bob SERVER s OPTIONS (user 'bob', password 'pw')",
     "CREATE USER MAPPING FOR bob SERVER s OPTIONS (user 'bob', password '********')"),
    ("alter role x password 'cut off by the size limit", "alter role x password '********'"),
])
def test_secret_values_are_replaced(sql, expected):
    assert redact_secrets(sql) == (expected, True)


@pytest.mark.parametrize("sql", ["select 1", "ALTER ROLE x PASSWORD NULL", "select * from passwords", None, ""])
def test_nothing_else_changes(sql):
    assert redact_secrets(sql) == (sql, False)


def test_an_imported_role_command_keeps_who_and_what_but_not_the_password():
    log = ("2026-11-25 10:00:00.000 UTC [42] alice@shop LOG:  statement: ALTER ROLE etl PASSWORD 'hunter2'\n"
           "2026-11-25 10:00:01.000 UTC [42] alice@shop ERROR:  role \"nobody\" does not exist\n"
           "2026-11-25 10:00:01.000 UTC [42] alice@shop STATEMENT:  ALTER ROLE nobody PASSWORD 'hunter3'\n")
    events = list(read_log(io.BytesIO(log.encode()), origin="t", prefix="%m [%p] %q%u@%d ", report=ParseReport()))
    assert [e.payload.command_tag for e in events] == ["ALTER ROLE", "ALTER ROLE"]
    assert events[0].actor.session_user == "alice" and events[0].payload.object_identity == "etl"
    dump = "".join(e.model_dump_json() for e in events)
    assert "hunter" not in dump and dump.count("PASSWORD '********'") == 2
