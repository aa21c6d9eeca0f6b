"""Statement classification: category, command tag, object type and object, from the text alone."""
from __future__ import annotations

import random

import pytest

from logimport import classify

CASES = [
    # DDL, with PostgreSQL's command tags and the object as written
    ("CREATE TABLE app.accounts (id int)", "ddl", "CREATE TABLE", "table", "app.accounts"),
    ("create or replace function app.bump(n int) returns int as $$ select 1 $$", "ddl", "CREATE FUNCTION", "function",
     "app.bump"),
    ("create unique index concurrently if not exists ix on t(a)", "ddl", "CREATE INDEX", "index", "ix"),
    ("create index on t(a)", "ddl", "CREATE INDEX", "index", None),
    ("DROP TABLE IF EXISTS a, b.c CASCADE", "ddl", "DROP TABLE", "table", "a, b.c"),
    ('ALTER TABLE ONLY "My Table" ADD COLUMN x int', "ddl", "ALTER TABLE", "table", '"My Table"'),
    ('alter table if exists public."t" rename to u', "ddl", "ALTER TABLE", "table", "public.t"),
    ("ALTER TABLE Public.Accounts ADD x int", "ddl", "ALTER TABLE", "table", "public.accounts"),
    ("CREATE TEMP TABLE x AS SELECT 1", "ddl", "CREATE TABLE AS", "table", "x"),
    ("create table t (a, b) as values (1,2)", "ddl", "CREATE TABLE AS", "table", "t"),
    ("create table t (a int generated always as identity)", "ddl", "CREATE TABLE", "table", "t"),
    ('CREATE TABLE "Weird.Name" (x int)', "ddl", "CREATE TABLE", "table", '"Weird.Name"'),
    ("create trigger trg after insert on public.t for each row execute function f()", "ddl", "CREATE TRIGGER",
     "trigger", "trg on public.t"),
    ("create constraint trigger c after insert on t for each row execute function f()", "ddl", "CREATE TRIGGER",
     "trigger", "c on t"),
    ("create rule r as on select to t do instead nothing", "ddl", "CREATE RULE", "rule", "r on t"),
    ("create policy p on t using (true)", "ddl", "CREATE POLICY", "policy", "p on t"),
    ("create or replace view v as select 1", "ddl", "CREATE VIEW", "view", "v"),
    ("create recursive view v(n) as values(1)", "ddl", "CREATE VIEW", "view", "v"),
    ("create materialized view mv as select 1", "ddl", "CREATE MATERIALIZED VIEW", "materialized view", "mv"),
    ("alter materialized view mv rename to m2", "ddl", "ALTER MATERIALIZED VIEW", "materialized view", "mv"),
    ("refresh materialized view concurrently mv", "ddl", "REFRESH MATERIALIZED VIEW", "materialized view", "mv"),
    ("create foreign table f (a int) server s", "ddl", "CREATE FOREIGN TABLE", "foreign table", "f"),
    ("drop function if exists f(int), g(text)", "ddl", "DROP FUNCTION", "function", "f, g"),
    ("create aggregate a(int) (sfunc=f, stype=int)", "ddl", "CREATE AGGREGATE", "aggregate", "a"),
    ("create event trigger et on ddl_command_end execute function f()", "ddl", "CREATE EVENT TRIGGER",
     "event trigger", "et"),
    ("create extension if not exists pgaudit", "ddl", "CREATE EXTENSION", "extension", "pgaudit"),
    ("create schema authorization joe", "ddl", "CREATE SCHEMA", "schema", "joe"),
    ("create schema if not exists s", "ddl", "CREATE SCHEMA", "schema", "s"),
    ("create sequence s.seq start 1", "ddl", "CREATE SEQUENCE", "sequence", "s.seq"),
    ("create type mood as enum ('a')", "ddl", "CREATE TYPE", "type", "mood"),
    ("create domain d as int", "ddl", "CREATE DOMAIN", "domain", "d"),
    ("create user mapping for bob server s", "ddl", "CREATE USER MAPPING", "user mapping", "bob on server s"),
    ("alter default privileges grant select on tables to x", "ddl", "ALTER DEFAULT PRIVILEGES", "default acl", None),
    ("comment on column t.c is 'x'", "ddl", "COMMENT", "table column", "t.c"),
    ("comment on table app.accounts is 'x'", "ddl", "COMMENT", "table", "app.accounts"),
    ("comment on trigger trg on t is 'x'", "ddl", "COMMENT", "trigger", "trg on t"),
    ("security label on table t is 'x'", "ddl", "SECURITY LABEL", None, None),
    ("import foreign schema s from server x into y", "ddl", "IMPORT FOREIGN SCHEMA", None, None),
    ("grant select on app.accounts to public", "ddl", "GRANT", "table", "app.accounts"),
    ("grant all on all tables in schema s to bob", "ddl", "GRANT", "schema", "s"),
    ("revoke grant option for select on table t from bob", "ddl", "REVOKE", "table", "t"),
    ("grant usage on schema s to bob", "ddl", "GRANT", "schema", "s"),
    ("grant connect on database d to bob", "ddl", "GRANT", "database", "d"),
    ("grant execute on function f(int) to bob", "ddl", "GRANT", "function", "f"),
    # role, database and system commands: what event triggers cannot see
    ("grant admin to bob", "role", "GRANT ROLE", "role", "admin"),
    ("revoke admin from bob", "role", "REVOKE ROLE", "role", "admin"),
    ("create user bob password 'x'", "role", "CREATE ROLE", "role", "bob"),
    ("CREATE ROLE app_owner LOGIN", "role", "CREATE ROLE", "role", "app_owner"),
    ("alter user bob set x=1", "role", "ALTER ROLE", "role", "bob"),
    ("alter group g add user u", "role", "ALTER ROLE", "role", "g"),
    ("drop role if exists a, b", "role", "DROP ROLE", "role", "a, b"),
    ("reassign owned by a to b", "role", "REASSIGN OWNED", "role", "a"),
    ("drop owned by a", "role", "DROP OWNED", "role", "a"),
    ("create database d", "database", "CREATE DATABASE", "database", "d"),
    ("alter database d set x = 1", "database", "ALTER DATABASE", "database", "d"),
    ("drop database if exists d with (force)", "database", "DROP DATABASE", "database", "d"),
    ("alter system set work_mem='8MB'", "system", "ALTER SYSTEM", "parameter", "work_mem"),
    ("create tablespace ts location '/x'", "system", "CREATE TABLESPACE", "tablespace", "ts"),
    ("drop tablespace ts", "system", "DROP TABLESPACE", "tablespace", "ts"),
    ("load 'auto_explain'", "system", "LOAD", None, None),
    # DML
    ("insert into t values (1)", "dml", "INSERT", "table", "t"),
    ('insert into "public"."T" values (1)', "dml", "INSERT", "table", 'public."T"'),
    ("INSERT INTO App.Accounts(a) VALUES (1)", "dml", "INSERT", "table", "app.accounts"),
    ("update only t set a=1", "dml", "UPDATE", "table", "t"),
    ("delete from s.t where x", "dml", "DELETE", "table", "s.t"),
    ("merge into t using s on t.id=s.id when matched then do nothing", "dml", "MERGE", "table", "t"),
    ("truncate table only a, b", "dml", "TRUNCATE TABLE", "table", "a, b"),
    ("copy t (a,b) from stdin", "dml", "COPY", "table", "t"),
    ("with d as (delete from t returning *) select * from d", "dml", "DELETE", "table", "t"),
    ("with recursive r(n) as (values(1) union select n+1 from r) insert into t select * from r", "dml", "INSERT",
     "table", "t"),
    # queries
    ("select 1", "query", "SELECT", None, None),
    ("  -- a comment\n/* a /* nested */ one */ SELECT 2", "query", "SELECT", None, None),
    ("with x as (select 1) select * from x", "query", "SELECT", None, None),
    ("(select 1) union (select 2)", "query", "SELECT", None, None),
    ("TABLE t", "query", "SELECT", "table", "t"),
    ("values (1)", "query", "SELECT", None, None),
    ("show work_mem", "query", "SHOW", None, None),
    # utility
    ("copy t to stdout", "utility", "COPY", "table", "t"),
    ("copy (select 1) to stdout", "utility", "COPY", None, None),
    ("vacuum (verbose) t", "utility", "VACUUM", "table", "t"),
    ("vacuum full analyze s.t", "utility", "VACUUM", "table", "s.t"),
    ("analyze", "utility", "ANALYZE", None, None),
    ("analyse t", "utility", "ANALYZE", "table", "t"),
    ("reindex table concurrently t", "utility", "REINDEX", "table", "t"),
    ("cluster t", "utility", "CLUSTER", "table", "t"),
    ("checkpoint", "utility", "CHECKPOINT", None, None),
    ("set search_path = a", "utility", "SET", None, None),
    ("reset all", "utility", "RESET", None, None),
    ("listen x", "utility", "LISTEN", None, None),
    ("notify x", "utility", "NOTIFY", None, None),
    ("prepare p as select 1", "utility", "PREPARE", "prepared statement", "p"),
    ("execute p", "utility", "EXECUTE", None, None),
    ("deallocate all", "utility", "DEALLOCATE ALL", None, None),
    ("explain analyze select 1", "utility", "EXPLAIN", None, None),
    ("lock table t in access exclusive mode", "utility", "LOCK TABLE", "table", "t"),
    ("discard all", "utility", "DISCARD ALL", None, None),
    ("do $$ begin perform 1; end $$", "utility", "DO", None, None),
    ("call p(1)", "utility", "CALL", "procedure", "p"),
    ("declare c cursor for select 1", "utility", "DECLARE CURSOR", None, None),
    # transaction control
    ("begin", "transaction", "BEGIN", None, None),
    ("BEGIN ISOLATION LEVEL SERIALIZABLE", "transaction", "BEGIN", None, None),
    ("start transaction", "transaction", "START TRANSACTION", None, None),
    ("commit", "transaction", "COMMIT", None, None),
    ("end", "transaction", "COMMIT", None, None),
    ("rollback", "transaction", "ROLLBACK", None, None),
    ("abort", "transaction", "ROLLBACK", None, None),
    ("savepoint a", "transaction", "SAVEPOINT", None, None),
    ("release a", "transaction", "RELEASE", None, None),
    ("rollback to savepoint a", "transaction", "ROLLBACK", None, None),
    ("prepare transaction 'x'", "transaction", "PREPARE TRANSACTION", None, None),
    ("commit prepared 'x'", "transaction", "COMMIT PREPARED", None, None),
    ("rollback prepared 'x'", "transaction", "ROLLBACK PREPARED", None, None),
    # what it does not understand
    ("", "other", None, None, None),
    ("   ", "other", None, None, None),
    ("garbage words here", "other", "GARBAGE", None, None),
    ("'unterminated", "other", None, None, None),
    ('"unterminated', "other", None, None, None),
    ("$$ unterminated", "other", None, None, None),
    ("\x00\xff", "other", None, None, None),
]


@pytest.mark.parametrize("sql,category,tag,object_type,identity", CASES)
def test_classification(sql, category, tag, object_type, identity):
    assert tuple(classify(sql)) == (category, tag, object_type, identity)


def test_none_is_other():
    assert tuple(classify(None)) == ("other", None, None, None)


def test_only_the_head_of_a_huge_statement_is_read():
    sql = "insert into big_t values " + ", ".join(f"({i}, 'x')" for i in range(200_000))
    assert tuple(classify(sql)) == ("dml", "INSERT", "table", "big_t")
    sql = "/* x */ create table big_t (" + ", ".join(f"c{i} int" for i in range(50_000)) + ")"
    assert tuple(classify(sql))[:2] == ("ddl", "CREATE TABLE")


def test_never_raises_on_any_input():
    rng = random.Random(5)
    alphabet = "abcdefghijklmnopqrstuvwxyz ()'\"$;,.-/*\n\t\\0123456789éß" + "\x00\ufffd"
    words = ["create", "alter", "drop", "table", "with", "as", "(", ")", "on", "grant", "to", "copy", "from",
             "insert", "into", "$$", "'", '"', "/*", "--", "if", "exists", "comment", "trigger", "rule", "all"]
    for _ in range(3000):
        if rng.random() < 0.5:
            sql = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        else:
            sql = " ".join(rng.choice(words) for _ in range(rng.randint(0, 15)))
        c = classify(sql)
        assert c.category in ("ddl", "dml", "query", "utility", "transaction", "role", "database", "system", "other")


def test_a_statement_classifies_as_its_shape_does():
    """classify() remembers one result per shape (numbers and digits in literals as 0): for any
    statement that must be what parsing the statement itself gives, names with digits included."""
    from logimport.sqlclass import _classify
    rng = random.Random(11)
    names = ['t1', '"Table 2"', 'app_3.x4', '"a""5"', 's.t', '"x y"']
    heads = ["create table {n} (id int default 7, v text default 'v 8')", "alter table {n} add column c{d} int",
             "drop table if exists {n}, other_{d}", "comment on table {n} is 'version {d}'",
             "grant select on {n} to role_{d}", "create index ix_{d} on {n} (a) where b > {d}",
             "alter system set work_mem = '{d}MB'", "vacuum analyze {n}", "create role r{d} password 'p{d}'",
             "do $f{d}$ begin perform {d}; end $f{d}$", "select '\"' , {d} from {n}", "/* {d} */ truncate {n}",
             "-- it's {d}\ncreate view {n} as select {d}", "copy {n} from stdin", "lock {n}",
             "create table {n} as select E'\\'' as \"q {d}\"", "with a as (delete from {n} returning {d}) select 1"]
    sqls = [sql for sql, *_ in CASES]
    for _ in range(3000):
        sqls.append(rng.choice(heads).format(n=rng.choice(names), d=rng.randint(0, 10 ** rng.randint(1, 7))))
    for sql in sqls:
        assert classify(sql) == _classify(sql), sql
