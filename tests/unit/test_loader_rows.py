import json

from sink.loader import object_identity, quote_ident, rows_for
from tests.unit.conftest import normalize


def events(lines):
    return normalize(lines)[0]


def test_quote_ident_matches_postgres_identities():
    assert quote_ident("accounts") == "accounts"
    assert quote_ident("Accounts") == '"Accounts"'
    assert quote_ident('we"ird') == '"we""ird"'


def test_dml_and_ddl_of_one_table_share_one_object_key(tracked_lines):
    evs = events(tracked_lines)
    dml = {object_identity(e) for e in evs if e.kind == "dml"}
    ddl = {object_identity(e) for e in evs if e.kind == "ddl" and e.payload.command_tag.startswith("CREATE TABLE")}
    assert dml == {"public.accounts", "fx.copied"}
    assert dml <= ddl


def test_rows_cover_every_event_once_even_when_repeated(tracked_lines):
    evs = events(tracked_lines)
    rows = rows_for(evs + evs, "test")
    assert len(rows["link_event"]) == len(evs)  # one row per event: the non-historized link
    kinds = [e.kind for e in evs]
    # a row change's payload is in its link row (columns after record_source), no satellite of its own
    assert "sat_row_change" not in rows
    with_payload = [r for r in rows["link_event"] if r[21] is not None]
    assert len(with_payload) == kinds.count("dml") == 7 and {r[6] for r in with_payload} == {"dml"}
    by_id = {r[1]: r for r in rows["link_event"]}
    for e in evs:
        if e.kind == "dml":
            op, schema, table, pk, new, old, changed, redacted, toast = by_id[e.event_id][21:]
            assert (op, schema, table) == (e.payload.operation, e.payload.schema_name, e.payload.table)
            assert json.loads(pk) == e.payload.primary_key and changed == e.payload.changed_columns
            assert (json.loads(new) if new else None) == e.payload.new and json.loads(redacted) == e.payload.redacted
            assert (json.loads(old) if old else None) == e.payload.old and toast == e.payload.unchanged_toast
        else:
            assert by_id[e.event_id][21:] == (None,) * 9
    assert len(rows["sat_ddl"]) == kinds.count("ddl")
    assert len(rows["sat_operation"]) == kinds.count("operation") == 1
    assert len(rows["sat_script_execution"]) == kinds.count("script") == 3
    assert len(rows["sat_security_event"]) == kinds.count("security") == 1
    assert len(rows["hub_database"]) == 1
