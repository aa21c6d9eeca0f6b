"""Split SQL text into statements, aware of quotes, dollar quotes and comments.

Needed to run a file outside a transaction one statement at a time (CREATE INDEX CONCURRENTLY
cannot share an implicit transaction) and to name the statement an error came from.
"""
from __future__ import annotations

import re

_DOLLAR = re.compile(r"\$([A-Za-z_][A-Za-z_0-9]*)?\$")


def split(sql: str) -> list[tuple[int, str]]:
    """(offset, statement) for every non-empty statement, without its trailing semicolon."""
    out: list[tuple[int, str]] = []
    i, n, start = 0, len(sql), 0
    while i < n:
        c = sql[i]
        if c == "-" and sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
        elif c == "/" and sql.startswith("/*", i):
            i = block_comment_end(sql, i + 2)
        elif c in ("'", '"'):
            i += 1
            while i < n:
                if sql[i] == c:
                    if i + 1 < n and sql[i + 1] == c:  # doubled quote
                        i += 2
                        continue
                    break
                i += 1
            i += 1
        elif c == "$" and (m := _DOLLAR.match(sql, i)):
            end = sql.find(m.group(0), m.end())
            i = n if end < 0 else end + len(m.group(0))
        elif c == ";":
            _add(out, sql, start, i)
            i += 1
            start = i
        else:
            i += 1
    _add(out, sql, start, n)
    return out


def _add(out: list[tuple[int, str]], sql: str, start: int, end: int) -> None:
    text = sql[start:end]
    if _has_code(text):
        lead = len(text) - len(text.lstrip())
        out.append((start + lead, text.strip()))


def _has_code(text: str) -> bool:
    """True when the text holds more than whitespace and comments."""
    stripped = re.sub(r"--[^\n]*|/\*.*?\*/", "", text, flags=re.S)
    return bool(stripped.strip())


def statement_at(sql: str, position: int) -> str | None:
    """The statement containing character `position` (0-based), e.g. from an error's position."""
    found = None
    for offset, statement in split(sql):
        if offset <= position:
            found = statement
        else:
            break
    return found


def block_comment_end(sql: str, pos: int) -> int:
    """Where a block comment opened just before `pos` ends; PostgreSQL's block comments nest."""
    depth = 1
    while depth and pos < len(sql):
        if sql.startswith("/*", pos):
            depth, pos = depth + 1, pos + 2
        elif sql.startswith("*/", pos):
            depth, pos = depth - 1, pos + 2
        else:
            pos += 1
    return pos
