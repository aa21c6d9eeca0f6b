from consumer.decoder import decode
from consumer.normalizer import Normalizer
from sink.loader import object_identity, quote_ident, rows_for


def events(lines):
    n = Normalizer("1", "db", "s")
    out = []
    for line in lines:
        out.extend(n.feed(decode(line)))
    return out


def test_quote_ident_matches_postgres_identities():
    assert quote_ident("accounts") == "accounts"
    assert quote_ident("Accounts") == '"Accounts"'
    assert quote_ident('we"ird') == '"we""ird"'


def test_dml_and_ddl_of_one_table_share_one_object_key(tracked_lines):
    evs = events(tracked_lines)
    idents = {object_identity(e) for e in evs if e.kind in ("dml",)} | \
             {object_identity(e) for e in evs if e.kind == "ddl" and e.payload.command_tag == "CREATE TABLE"}
    assert idents == {"public.accounts"}


def test_rows_cover_every_event_once_even_when_repeated(tracked_lines):
    evs = events(tracked_lines)
    rows = rows_for(evs + evs, "test")
    assert len(rows["hub_event"]) == len(evs)
    assert len(rows["sat_event"]) == len(evs)
    assert len(rows["sat_row_change"]) == 4
    assert len(rows["sat_ddl"]) == 5
    assert len(rows["sat_operation"]) == 2
    assert len(rows["hub_database"]) == 1
