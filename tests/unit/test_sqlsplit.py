from pgtrail.sqlsplit import split, statement_at


def test_split_respects_quotes_comments_and_dollar_quotes():
    sql = """-- header; with a semicolon
create table a (x text default ';');
/* block; comment */ insert into a values ('it''s; fine');
create function f() returns int language plpgsql as $body$ begin return 1; end $body$;
select $$;$$, "odd;name" from a
"""
    parts = [s for _, s in split(sql)]
    assert parts == [
        "-- header; with a semicolon\ncreate table a (x text default ';')",
        "/* block; comment */ insert into a values ('it''s; fine')",
        "create function f() returns int language plpgsql as $body$ begin return 1; end $body$",
        'select $$;$$, "odd;name" from a',
    ]


def test_only_comments_is_nothing():
    assert split("-- nothing\n/* at all */\n;;\n") == []


def test_statement_at_a_position():
    sql = "create table a (x int);\ninsert into a values (1/0);\n"
    assert statement_at(sql, sql.index("1/0")) == "insert into a values (1/0)"
    assert statement_at(sql, 0) == "create table a (x int)"
