"""What a logged statement is: category, command tag, object type and object, from its text alone.

Only the head of a statement is read (a lazy tokenizer, a bounded number of tokens), so a 1 MiB
statement costs no more than a short one. Command tags follow PostgreSQL's (CREATE OR REPLACE
FUNCTION -> CREATE FUNCTION, CREATE USER -> CREATE ROLE). Objects are given as written, schema-
qualified only when the statement qualified them; unquoted names are folded to lower case and
quoted ones kept quoted unless quoting was not needed, the way PostgreSQL's quote_ident would
print them, so `Accounts` and `"accounts"` name the same object. Nothing here raises: any input
that is not understood is ("other", its first word in upper case, None, None).
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

from pgtrail.sqlsplit import block_comment_end


class Classification(NamedTuple):
    category: str
    command_tag: str | None
    object_type: str | None
    object_identity: str | None


_TOKEN = re.compile(r"""
    (?P<space>\s+|--[^\n]*)
  | (?P<comment>/\*)
  | (?P<qident>"(?:[^"]|"")*")
  | (?P<string>[Ee]'(?:[^'\\]|\\.|'')*'|[BbXxNn]?'(?:[^']|'')*')
  | (?P<dollar>\$(?:[^\W\d]\w*)?\$)
  | (?P<param>\$\d+)
  | (?P<word>[^\W\d][\w$]*)
  | (?P<number>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)
  | (?P<op>.)
""", re.X | re.S)
_BARE = re.compile(r"[a-z_][a-z0-9_$]*")
_MAX_TOKENS = 2000  # how far into a statement we look, whatever its length


_END = ("end", "", "")
_HAS_AS = re.compile(r"\bas\b", re.I)


class _Tokens:
    """Tokens of one statement as (kind, text, upper-cased word or ''), scanned only as far as
    they are looked at; comments and whitespace skipped."""

    def __init__(self, sql: str):
        self.sql, self._pos = sql, 0
        self._toks: list[tuple[str, str, str]] = []
        self._i = 0

    def _fill(self, n: int) -> None:
        sql, toks, pos = self.sql, self._toks, self._pos
        while len(toks) < n:
            if pos >= len(sql) or len(toks) >= _MAX_TOKENS:
                toks.append(_END)
                continue
            m = _TOKEN.match(sql, pos)
            kind, text = m.lastgroup, m.group()
            pos = m.end()
            if kind == "space":
                continue
            if kind == "comment":
                pos = block_comment_end(sql, pos)
                continue
            if kind == "dollar":
                end = sql.find(text, pos)
                pos = len(sql) if end < 0 else end + len(text)
                kind = "string"
            toks.append((kind, text, text.upper() if kind == "word" else ""))
        self._pos = pos

    def peek(self, ahead: int = 0) -> tuple[str, str]:
        i = self._i + ahead
        if i >= len(self._toks):
            self._fill(i + 1)
        tok = self._toks[i]
        return tok[0], tok[1]

    def word(self, ahead: int = 0) -> str:
        i = self._i + ahead
        if i >= len(self._toks):
            self._fill(i + 1)
        return self._toks[i][2]

    def next(self) -> tuple[str, str]:
        tok = self.peek()
        if tok[0] != "end":
            self._i += 1
        return tok

    def accept(self, *words: str) -> bool:
        """Consume the given words if they come next, in order."""
        if all(self.word(i) == w for i, w in enumerate(words)):
            for _ in words:
                self.next()
            return True
        return False

    def accept_any(self, *words: str) -> str | None:
        w = self.word()
        if w in words:
            self.next()
            return w
        return None

    def skip_parens(self) -> None:
        """If an opening parenthesis comes next, consume up to its closing one."""
        if self.peek() != ("op", "("):
            return
        depth = 0
        while True:
            kind, text = self.next()
            if kind == "end":
                return
            if kind == "op" and text == "(":
                depth += 1
            elif kind == "op" and text == ")":
                depth -= 1
                if depth == 0:
                    return

    def find(self, *words: str, limit: int = 400) -> str | None:
        """Consume tokens up to one of `words` at parenthesis depth 0 (consumed too)."""
        for _ in range(limit):
            if self.peek()[0] == "end" or self.peek() == ("op", ";"):
                return None
            if self.peek() == ("op", "("):
                self.skip_parens()
                continue
            w = self.word()
            self.next()
            if w in words:
                return w
        return None


def _ident(kind: str, text: str) -> str | None:
    if kind == "word":
        return text.lower()
    if kind == "qident":
        inner = text[1:-1].replace('""', '"')
        return inner if _BARE.fullmatch(inner) else text
    return None


def _name(t: _Tokens, args: bool = False) -> str | None:
    """A possibly qualified name (a.b.c); with `args`, a function's argument list after it is
    skipped, not kept."""
    part = _ident(*t.peek())
    if part is None:
        return None
    t.next()
    parts = [part]
    while t.peek() == ("op", ".") and _ident(*t.peek(1)) is not None:
        t.next()
        parts.append(_ident(*t.next()))
    if args:
        t.skip_parens()
    return ".".join(parts)


def _names(t: _Tokens) -> str | None:
    """A comma-separated list of names (DROP TABLE a, b), joined with ', '."""
    names = []
    while (name := _name(t, args=True)) is not None:
        names.append(name)
        if t.peek() != ("op", ","):
            break
        t.next()
    return ", ".join(names) or None


# Object types after CREATE/ALTER/DROP, longest first: (words, object_type, tag noun, category)
_TYPES: list[tuple[tuple[str, ...], str, str, str]] = [
    (tuple(w.split()), otype, noun, cat) for w, otype, noun, cat in (
        ("MATERIALIZED VIEW", "materialized view", "MATERIALIZED VIEW", "ddl"),
        ("FOREIGN DATA WRAPPER", "foreign-data wrapper", "FOREIGN DATA WRAPPER", "ddl"),
        ("FOREIGN TABLE", "foreign table", "FOREIGN TABLE", "ddl"),
        ("EVENT TRIGGER", "event trigger", "EVENT TRIGGER", "ddl"),
        ("TEXT SEARCH CONFIGURATION", "text search configuration", "TEXT SEARCH CONFIGURATION", "ddl"),
        ("TEXT SEARCH DICTIONARY", "text search dictionary", "TEXT SEARCH DICTIONARY", "ddl"),
        ("TEXT SEARCH PARSER", "text search parser", "TEXT SEARCH PARSER", "ddl"),
        ("TEXT SEARCH TEMPLATE", "text search template", "TEXT SEARCH TEMPLATE", "ddl"),
        ("OPERATOR CLASS", "operator class", "OPERATOR CLASS", "ddl"),
        ("OPERATOR FAMILY", "operator family", "OPERATOR FAMILY", "ddl"),
        ("USER MAPPING", "user mapping", "USER MAPPING", "ddl"),
        ("ACCESS METHOD", "access method", "ACCESS METHOD", "ddl"),
        ("DEFAULT PRIVILEGES", "default acl", "DEFAULT PRIVILEGES", "ddl"),
        ("LARGE OBJECT", "large object", "LARGE OBJECT", "ddl"),
        ("TABLE", "table", "TABLE", "ddl"), ("VIEW", "view", "VIEW", "ddl"),
        ("INDEX", "index", "INDEX", "ddl"), ("SEQUENCE", "sequence", "SEQUENCE", "ddl"),
        ("SCHEMA", "schema", "SCHEMA", "ddl"), ("FUNCTION", "function", "FUNCTION", "ddl"),
        ("PROCEDURE", "procedure", "PROCEDURE", "ddl"), ("ROUTINE", "routine", "ROUTINE", "ddl"),
        ("AGGREGATE", "aggregate", "AGGREGATE", "ddl"), ("TRIGGER", "trigger", "TRIGGER", "ddl"),
        ("TYPE", "type", "TYPE", "ddl"), ("DOMAIN", "domain", "DOMAIN", "ddl"),
        ("EXTENSION", "extension", "EXTENSION", "ddl"), ("SERVER", "server", "SERVER", "ddl"),
        ("POLICY", "policy", "POLICY", "ddl"), ("RULE", "rule", "RULE", "ddl"),
        ("OPERATOR", "operator", "OPERATOR", "ddl"), ("CAST", "cast", "CAST", "ddl"),
        ("COLLATION", "collation", "COLLATION", "ddl"), ("CONVERSION", "conversion", "CONVERSION", "ddl"),
        ("LANGUAGE", "language", "LANGUAGE", "ddl"), ("PUBLICATION", "publication", "PUBLICATION", "ddl"),
        ("SUBSCRIPTION", "subscription", "SUBSCRIPTION", "ddl"), ("STATISTICS", "statistics object", "STATISTICS", "ddl"),
        ("TRANSFORM", "transform", "TRANSFORM", "ddl"),
        ("ROLE", "role", "ROLE", "role"), ("USER", "role", "ROLE", "role"), ("GROUP", "role", "ROLE", "role"),
        ("DATABASE", "database", "DATABASE", "database"),
        ("TABLESPACE", "tablespace", "TABLESPACE", "system"),
        ("COLUMN", "table column", "COLUMN", "ddl"), ("CONSTRAINT", "table constraint", "CONSTRAINT", "ddl"),
    )
]
_TYPES.sort(key=lambda entry: -len(entry[0]))
_CREATE_MODIFIERS = {"TEMP", "TEMPORARY", "UNLOGGED", "GLOBAL", "LOCAL", "UNIQUE", "TRUSTED", "PROCEDURAL",
                     "DEFAULT", "CONSTRAINT", "RECURSIVE"}
_SIMPLE = {  # first word -> (category, tag)
    "SELECT": ("query", "SELECT"), "VALUES": ("query", "SELECT"), "SHOW": ("query", "SHOW"),
    "BEGIN": ("transaction", "BEGIN"), "COMMIT": ("transaction", "COMMIT"), "END": ("transaction", "COMMIT"),
    "ROLLBACK": ("transaction", "ROLLBACK"), "ABORT": ("transaction", "ROLLBACK"),
    "SAVEPOINT": ("transaction", "SAVEPOINT"), "RELEASE": ("transaction", "RELEASE"),
    "CHECKPOINT": ("utility", "CHECKPOINT"), "SET": ("utility", "SET"), "RESET": ("utility", "RESET"),
    "LISTEN": ("utility", "LISTEN"), "UNLISTEN": ("utility", "UNLISTEN"), "NOTIFY": ("utility", "NOTIFY"),
    "EXECUTE": ("utility", "EXECUTE"), "DEALLOCATE": ("utility", "DEALLOCATE"), "EXPLAIN": ("utility", "EXPLAIN"),
    "DO": ("utility", "DO"), "FETCH": ("utility", "FETCH"), "MOVE": ("utility", "MOVE"),
    "CLOSE": ("utility", "CLOSE CURSOR"), "DECLARE": ("utility", "DECLARE CURSOR"),
    "LOAD": ("system", "LOAD"), "SECURITY": ("ddl", "SECURITY LABEL"), "IMPORT": ("ddl", "IMPORT FOREIGN SCHEMA"),
}
_TABLE_UTILITY = {"VACUUM": "VACUUM", "ANALYZE": "ANALYZE", "ANALYSE": "ANALYZE", "CLUSTER": "CLUSTER",
                  "LOCK": "LOCK TABLE", "CALL": "CALL", "REINDEX": "REINDEX"}
_DML_START = {"INSERT", "UPDATE", "DELETE", "MERGE"}


def classify(sql: str | None) -> Classification:
    """Category, command tag, object type and object of the first statement in `sql`."""
    if not sql:
        return Classification("other", None, None, None)
    if (m := _FAST.match(sql)) is not None and (fast := _fast(m)) is not None:
        return fast  # most of a log: plain SELECT, INSERT, UPDATE, DELETE, cheaper than a cache look-up
    if len(sql) > 4096:
        return _classify(sql)
    return _classify_text(sql)


@lru_cache(maxsize=4096)
def _classify_text(sql: str) -> Classification:
    # The same statement recurs (BEGIN, a job's DDL), and recurs with other numbers and literals
    # (ALTER SYSTEM SET work_mem = '64MB', prepared statements): each shape is classified once.
    found = _parse_shape(_SHAPE.sub(_shape_of, sql))
    return found if found is not None else _unknown(sql)


# A statement's shape: numbers and the digits inside string literals replaced by 0. Quoted
# identifiers, dollar-quoted bodies and comments are matched whole and kept, so that a quote inside
# them is never taken for the start of a literal; a digit after a word character or '$' belongs to
# a name or a parameter and is kept. Token kinds and names stay as they were, so a statement and its
# shape classify the same (tests/unit/test_logimport_sqlclass.py checks it on every case).
_SHAPE = re.compile(r"""(?P<keep>"(?:[^"]|"")*"
                              | (?<![\w$])\$(?P<tag>(?:[^\W\d]\w*)?)\$.*?\$(?P=tag)\$ | --[^\n]* | /\*.*?\*/)
                      | (?P<literal>(?<![\w$])[Ee]'(?:[^'\\]|\\.|'')*'|'(?:[^']|'')*')
                      | (?<![\w$.])\d+""", re.S | re.X)
_DIGITS = re.compile(r"\d+")


def _shape_of(m: re.Match) -> str:
    if m.group("keep") is not None:
        return m.group()
    if m.group("literal") is not None:
        return _DIGITS.sub("0", m.group())
    return "0"


@lru_cache(maxsize=4096)
def _parse_shape(shape: str) -> Classification | None:
    return _parse(shape)


_IDENT = r'(?:"(?:[^"]|"")*"|[^\W\d][\w$]*)'
_FAST = re.compile(r"\s*(?:(?P<select>select)\b|(?P<verb>insert\s+into|update|delete\s+from)\s+(?P<only>only\s+)?"
                   rf"(?P<name>{_IDENT}(?:\s*\.\s*{_IDENT})*))", re.I)
_IDENT_PART = re.compile(_IDENT)


def _fast(m: re.Match) -> Classification | None:
    if m.group("select"):
        return Classification("query", "SELECT", None, None)
    name = m.group("name")
    if name.upper() in ("ONLY", "INTO", "FROM"):
        return None
    verb = m.group("verb").split()[0].upper()
    return Classification("dml", verb, "table", ".".join(_ident("qident" if p[0] == '"' else "word", p)
                                                         for p in _IDENT_PART.findall(name)))


def _classify(sql: str) -> Classification:
    """Uncached: what classify() gives, by parsing `sql` itself."""
    if (m := _FAST.match(sql)) is not None and (fast := _fast(m)) is not None:
        return fast
    found = _parse(sql)
    return found if found is not None else _unknown(sql)


def _parse(sql: str) -> Classification | None:
    """The tokenizer's classification; None when it failed on this input."""
    try:
        t = _Tokens(sql)
        while t.peek() == ("op", "("):  # (SELECT ...) UNION ...
            t.next()
        return _statement(t)
    except Exception:  # a log may hold anything; the classification must never stop an import
        return None


def _unknown(sql: str) -> Classification:
    m = re.search(r"[^\W\d]\w*", sql[:200])
    return Classification("other", m.group().upper() if m else None, None, None)


def _statement(t: _Tokens) -> Classification:
    first = t.word()
    if not first:
        return Classification("other", None, None, None)
    t.next()
    if first in ("CREATE", "ALTER", "DROP"):
        return _ddl(first, t)
    if first == "WITH":
        return _with(t)
    if first in _DML_START:
        return _dml(first, t)
    if first == "TRUNCATE":
        t.accept("TABLE")
        t.accept("ONLY")
        return Classification("dml", "TRUNCATE TABLE", "table", _names(t))
    if first == "COPY":
        return _copy(t)
    if first == "TABLE":
        return Classification("query", "SELECT", "table", _name(t))
    if first in ("GRANT", "REVOKE"):
        return _grant(first, t)
    if first == "COMMENT":
        return _comment(t)
    if first == "START" and t.word() == "TRANSACTION":
        return Classification("transaction", "START TRANSACTION", None, None)
    if first == "PREPARE":
        return (Classification("transaction", "PREPARE TRANSACTION", None, None) if t.word() == "TRANSACTION"
                else Classification("utility", "PREPARE", "prepared statement", _name(t)))
    if first in ("COMMIT", "ROLLBACK") and t.word() == "PREPARED":
        return Classification("transaction", f"{first} PREPARED", None, None)
    if first == "REFRESH" and t.accept("MATERIALIZED", "VIEW"):
        t.accept("CONCURRENTLY")
        return Classification("ddl", "REFRESH MATERIALIZED VIEW", "materialized view", _name(t))
    if first == "REASSIGN" and t.accept("OWNED", "BY"):
        return Classification("role", "REASSIGN OWNED", "role", _names(t))
    if first == "DISCARD":
        return Classification("utility", f"DISCARD {t.word() or 'ALL'}", None, None)
    if first in ("DEALLOCATE", "CLOSE") and (t.word() == "ALL" or t.word(1) == "ALL"):
        return Classification("utility", "DEALLOCATE ALL" if first == "DEALLOCATE" else "CLOSE CURSOR ALL",
                              None, None)
    if first in _TABLE_UTILITY:
        return _table_utility(first, t)
    if first in _SIMPLE:
        return Classification(*_SIMPLE[first], None, None)
    return Classification("other", first, None, None)


def _object_type(t: _Tokens) -> tuple[str, str, str] | None:
    for words, otype, noun, category in _TYPES:
        if t.accept(*words):
            return otype, noun, category
    return None


def _ddl(verb: str, t: _Tokens) -> Classification:
    if verb == "CREATE":
        t.accept("OR", "REPLACE")
        while t.word() in _CREATE_MODIFIERS:
            t.next()
    if verb == "ALTER" and t.accept("SYSTEM"):
        t.accept_any("SET", "RESET")
        param = _name(t)
        return Classification("system", "ALTER SYSTEM", "parameter" if param else None, param)
    if verb == "ALTER" and t.accept("DEFAULT", "PRIVILEGES"):
        return Classification("ddl", "ALTER DEFAULT PRIVILEGES", "default acl", None)
    if verb == "DROP" and t.accept("OWNED"):
        t.accept("BY")
        return Classification("role", "DROP OWNED", "role", _names(t))
    found = _object_type(t)
    if found is None:
        return Classification("ddl", f"{verb} {t.word()}".strip(), None, None)
    otype, noun, category = found
    tag = f"{verb} {noun}"
    if noun == "USER MAPPING":
        return Classification(category, tag, otype, _user_mapping(t))
    t.accept("IF", "NOT", "EXISTS") or t.accept("IF", "EXISTS")
    t.accept("CONCURRENTLY")
    if verb != "CREATE" and t.word() == "ALL" and t.word(1) == "IN":  # ALTER TABLE ALL IN TABLESPACE
        return Classification(category, tag, otype, None)
    t.accept("IF", "NOT", "EXISTS") or t.accept("IF", "EXISTS")
    t.accept("ONLY")
    if noun == "SCHEMA" and t.accept("AUTHORIZATION"):
        return Classification(category, tag, otype, _name(t))
    if noun == "INDEX" and verb == "CREATE" and t.word() == "ON":
        return Classification(category, tag, otype, None)
    if noun in ("TRIGGER", "POLICY", "RULE"):
        name = _name(t)
        table = _name(t) if t.find("TO" if noun == "RULE" and verb == "CREATE" else "ON") else None
        return Classification(category, tag, otype, f"{name} on {table}" if name and table else name)
    ident = _names(t) if verb == "DROP" else _name(t, args=True)
    if verb == "CREATE" and noun == "TABLE" and _HAS_AS.search(t.sql) and t.find("AS") and t.word() in ("SELECT", "WITH", "VALUES", "TABLE",
                                                                                "EXECUTE", ""):
        tag = "CREATE TABLE AS"
    return Classification(category, tag, otype, ident)


def _user_mapping(t: _Tokens) -> str | None:
    t.accept("IF", "NOT", "EXISTS") or t.accept("IF", "EXISTS")
    t.accept("FOR")
    user = _name(t)
    server = _name(t) if t.find("SERVER") else None
    return f"{user} on server {server}" if user and server else user


def _dml(verb: str, t: _Tokens) -> Classification:
    if verb == "INSERT":
        t.accept("INTO")
    elif verb == "DELETE":
        t.accept("FROM")
    elif verb == "MERGE":
        t.accept("INTO")
    t.accept("ONLY")
    return Classification("dml", verb, "table", _name(t))


def _with(t: _Tokens) -> Classification:
    """WITH [RECURSIVE] a AS (...), b AS (...) <main statement>. A data-modifying CTE makes the
    whole statement DML even when the main statement is a SELECT."""
    t.accept("RECURSIVE")
    modifying: Classification | None = None
    for _ in range(100):
        _name(t)  # CTE name and optional column list
        if t.find("AS", limit=20) is None:
            break
        t.accept("NOT")
        t.accept("MATERIALIZED")
        if t.peek() == ("op", "(") and t.word(1) in _DML_START and modifying is None:
            t.next()
            verb = t.word()
            t.next()
            modifying = _dml(verb, t)
            _close_paren(t)
        else:
            t.skip_parens()
        if t.peek() != ("op", ","):
            break
        t.next()
    main = _statement(t)
    if main.category == "query" and modifying is not None:
        return modifying
    return main


def _close_paren(t: _Tokens) -> None:
    depth = 1
    for _ in range(_MAX_TOKENS):
        kind, text = t.next()
        if kind == "end":
            return
        if (kind, text) == ("op", "("):
            depth += 1
        elif (kind, text) == ("op", ")"):
            depth -= 1
            if depth == 0:
                return


def _copy(t: _Tokens) -> Classification:
    if t.peek() == ("op", "("):  # COPY (query) TO ...
        return Classification("utility", "COPY", None, None)
    t.accept("BINARY")
    table = _name(t)
    direction = t.find("FROM", "TO", limit=50)
    if direction == "FROM":
        return Classification("dml", "COPY", "table", table)
    return Classification("utility", "COPY", "table" if table else None, table)


_GRANT_TARGETS = {"TABLE": "table", "SEQUENCE": "sequence", "DATABASE": "database", "DOMAIN": "domain",
                  "FUNCTION": "function", "PROCEDURE": "procedure", "ROUTINE": "routine", "LANGUAGE": "language",
                  "SCHEMA": "schema", "TABLESPACE": "tablespace", "TYPE": "type", "PARAMETER": "parameter"}


def _grant(verb: str, t: _Tokens) -> Classification:
    """GRANT/REVOKE privileges ON object (DDL), or GRANT role TO role (a role command)."""
    if verb == "REVOKE":
        t.accept("GRANT", "OPTION", "FOR") or t.accept("ADMIN", "OPTION", "FOR")
    first_role = _ident(*t.peek())
    where = t.find("ON", "TO", "FROM", limit=200)
    if where != "ON":
        return Classification("role", f"{verb} ROLE", "role", first_role)
    if t.accept("ALL"):  # ALL TABLES IN SCHEMA s
        t.next()
        t.accept("IN", "SCHEMA")
        return Classification("ddl", verb, "schema", _names(t))
    otype = "table"
    if t.accept("FOREIGN", "DATA", "WRAPPER"):
        otype = "foreign-data wrapper"
    elif t.accept("FOREIGN", "SERVER"):
        otype = "foreign server"
    elif t.accept("LARGE", "OBJECT"):
        otype = "large object"
    elif t.word() in _GRANT_TARGETS and t.peek(1)[0] in ("word", "qident"):
        otype = _GRANT_TARGETS[t.word()]
        t.next()
    return Classification("ddl", verb, otype, _names(t))


def _comment(t: _Tokens) -> Classification:
    t.accept("ON")
    found = _object_type(t)
    otype = found[0] if found else (t.word().lower() or None)
    if found is None:
        t.next()
    name = _name(t)
    if found and found[1] in ("TRIGGER", "POLICY", "RULE", "CONSTRAINT") and t.accept("ON"):
        t.accept("DOMAIN")
        name = f"{name} on {_name(t)}"
    return Classification("ddl", "COMMENT", otype, name)


def _table_utility(first: str, t: _Tokens) -> Classification:
    tag = _TABLE_UTILITY[first]
    if first == "REINDEX":
        t.skip_parens()
        kind = t.accept_any("INDEX", "TABLE", "SCHEMA", "DATABASE", "SYSTEM")
        t.accept("CONCURRENTLY")
        return Classification("utility", tag, kind.lower() if kind else None, _name(t))
    if first == "CALL":
        return Classification("utility", tag, "procedure", _name(t))
    t.skip_parens()
    while t.accept_any("FULL", "FREEZE", "VERBOSE", "ANALYZE", "ANALYSE", "TABLE", "ONLY"):
        pass
    t.skip_parens()
    name = _names(t)
    return Classification("utility", tag, "table" if name else None, name)
