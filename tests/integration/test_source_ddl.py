"""DDL capture on the real server: one event per affected object, with its definition."""
from schemas import DdlEvent, DmlEvent


def ddl(events):
    return [(e.payload.command_tag, e.payload.object_type, e.payload.object_identity)
            for e in events if isinstance(e, DdlEvent)]


def by_identity(events, identity):
    return [e for e in events if isinstance(e, DdlEvent) and e.payload.object_identity == identity]


def test_one_event_per_affected_object(src, capture):
    src.execute("create table t1 (id serial primary key, a int, note text)")
    src.execute("create extension if not exists pg_trgm")
    src.execute("grant select on t1 to public")
    src.execute("revoke select on t1 from public")
    src.execute("comment on table t1 is 'customers'")
    src.execute("comment on column t1.note is 'pgtrail:PHI'")
    src.execute("alter table t1 drop column a")
    src.execute("create view v1 as select id from t1")
    src.execute("drop table t1 cascade")
    events = capture.read()
    got = ddl(events)
    assert got == [
        ("CREATE SEQUENCE", "sequence", "public.t1_id_seq"),  # reported twice by PostgreSQL, once here
        ("CREATE TABLE", "table", "public.t1"),
        ("CREATE INDEX", "index", "public.t1_pkey"),
        ("CREATE EXTENSION", "extension", "pg_trgm"),  # its ~40 internal objects are not events of their own
        ("GRANT", "TABLE", None),
        ("REVOKE", "TABLE", None),
        ("COMMENT", "table", "public.t1"),
        ("COMMENT", "table column", "public.t1.note"),
        ("ALTER TABLE", "table", "public.t1"),  # DROP COLUMN fires two triggers; one event
        ("CREATE VIEW", "view", "public.v1"),
        ("DROP TABLE", "table", "public.t1"),
        ("DROP TABLE", "sequence", "public.t1_id_seq"),
        ("DROP TABLE", "index", "public.t1_pkey"),
        ("DROP TABLE", "view", "public.v1"),  # taken by CASCADE
    ], got
    drops = [e for e in events if isinstance(e, DdlEvent) and e.payload.command_tag == "DROP TABLE"]
    assert [e.payload.cascade for e in drops] == [False, True, True, True]
    grant = [e for e in events if isinstance(e, DdlEvent) and e.payload.command_tag == "GRANT"][0]
    assert grant.payload.statement == "grant select on t1 to public"
    note_comment = by_identity(events, "public.t1.note")[0]
    cols = {c["name"]: c for c in note_comment.payload.definition["columns"]}
    assert cols["note"]["classification"] == ["PHI"] and "PHI" in note_comment.tags


def test_definitions_after_the_change(src, capture):
    src.execute("create table items (id bigint generated always as identity primary key, "
                "price numeric(10,2) not null default 0 check (price >= 0), label text)")
    src.execute("create index items_label on items (lower(label))")
    src.execute("create function add_one(x int) returns int language sql immutable as $$ select x + 1 $$")
    src.execute("create view cheap as select id from items where label < 'm'")
    src.execute("create type mood as enum ('sad', 'ok')")
    src.execute("alter type mood add value 'happy'")
    src.execute("alter table items add column qty integer")  # no rewrite
    src.execute("alter table items alter column qty type bigint")  # rewrites the table
    events = capture.read()
    table = by_identity(events, "public.items")
    create = table[0].payload.definition
    cols = {c["name"]: c for c in create["columns"]}
    assert cols["id"]["identity"] == "a" and cols["price"]["default"] == "0" and cols["price"]["not_null"]
    assert {c["type"] for c in create["constraints"]} == {"p", "c"}
    assert any("CHECK ((price >= (0)::numeric))" in c["definition"] for c in create["constraints"])
    index = by_identity(events, "public.items_label")[0].payload.definition
    assert index["definition"] == "CREATE INDEX items_label ON public.items USING btree (lower(label))"
    fn = by_identity(events, "public.add_one(integer)")[0].payload.definition
    assert "SELECT x + 1" in fn["definition"] or "select x + 1" in fn["definition"]
    view = by_identity(events, "public.cheap")[0].payload.definition
    assert "label < 'm'" in view["definition"]
    mood = by_identity(events, "public.mood")
    assert mood[-1].payload.definition["labels"] == ["sad", "ok", "happy"]
    alters = [e for e in table if e.payload.command_tag == "ALTER TABLE"]
    assert [a.payload.rewrite for a in alters] == [False, True]
    final = {c["name"]: c["type"] for c in alters[-1].payload.definition["columns"]}
    assert final == {"id": "bigint", "price": "numeric(10,2)", "label": "text", "qty": "bigint"}


def test_create_table_as_rows_come_after_the_table(src, capture):
    src.execute("create schema shop")
    src.execute("select script_tracking.track_schema('shop')")
    src.execute("create table shop.orders as select g as id, 'c' || g || '@example.com' as email "
                "from generate_series(1, 25000) g")  # more than stay in memory: spills to disk
    src.execute("select 1 as x into shop.tiny")
    src.execute("create table public.not_tracked as select 1 as y")
    src.execute("create materialized view shop.mv as select 1 as z")
    events = capture.read(timeout=120)
    seq = [(e.kind, getattr(e.payload, "object_identity", None) or getattr(e.payload, "table", None))
           for e in events if e.kind in ("ddl", "dml") and "pgtrail_context" not in
           (getattr(e.payload, "object_identity", "") or "")]
    orders = [s for s in seq if s[1] in ("shop.orders", "orders")]
    assert orders[0] == ("ddl", "shop.orders") and len(orders) == 25001
    assert all(kind == "dml" for kind, _ in orders[1:])
    ids = [e.payload.new["id"] for e in events if isinstance(e, DmlEvent) and e.payload.table == "orders"]
    assert ids == list(range(1, 25001))
    tiny = [s for s in seq if s[1] in ("shop.tiny", "tiny")]
    assert tiny == [("ddl", "shop.tiny"), ("dml", "tiny")]
    assert ("dml", "not_tracked") not in seq and ("dml", "mv") not in seq  # untracked: not published
    assert capture.untracked == 2
