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
    assert len(rows["sat_row_change"]) == kinds.count("dml") == 7
    assert len(rows["sat_ddl"]) == kinds.count("ddl")
    assert len(rows["sat_operation"]) == kinds.count("operation") == 1
    assert len(rows["sat_script_execution"]) == kinds.count("script") == 3
    assert len(rows["sat_security_event"]) == kinds.count("security") == 1
    assert len(rows["hub_database"]) == 1
