"""log_line_prefix compiled to a regular expression (PostgreSQL 15, every escape).

A stderr log line is `<prefix><SEVERITY>:  <message>`. The prefix is printf-like; each escape
becomes a named group. `%q` ends the prefix for processes without a session (checkpointer,
autovacuum, the postmaster), so such a prefix compiles to two patterns: the whole one for
sessions, and the part before %q for everything else. Padding (`%-10u`, `%10p`) pads the value
with spaces to a minimum width; the groups allow those spaces and the values are stripped.
"""
from __future__ import annotations

import re
from typing import NamedTuple

# The value patterns. Free-text values (names, application, backend type, command tag) are lazy
# and bounded so a line that does not match fails fast instead of backtracking over a long
# statement: PostgreSQL truncates names to NAMEDATALEN-1 (63) bytes, bgworker types to 95.
_TZ = r"(?:[A-Za-z]{1,6}|[+-]\d{2}(?::?\d{2})?)"
_VALUE = {
    "a": ("application", r".{0,63}?"),
    "u": ("user", r".{0,63}?"),
    "d": ("database", r".{0,63}?"),
    "r": ("remote", r"[^\s]{0,300}?"),
    "h": ("host", r"[^\s]{0,300}?"),
    "b": ("backend_type", r".{0,95}?"),
    "p": ("pid", r"\d+"),
    "P": ("leader_pid", r"\d*"),
    "t": ("time_s", r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?: " + _TZ + ")?"),
    "m": ("time_ms", r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}(?: " + _TZ + ")?"),
    "n": ("epoch", r"\d+\.\d{3}"),
    "i": ("ps", r".{0,127}?"),
    "e": ("sqlstate", r"[0-9A-Z]{5}"),
    "c": ("session_id", r"[0-9a-f]+\.[0-9a-f]+"),
    "l": ("session_line", r"\d+"),
    "s": ("session_start", r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?: " + _TZ + ")?"),
    "v": ("vxid", r"(?:\d+/\d+)?"),
    "x": ("xid", r"\d+"),
    "Q": ("query_id", r"-?\d+"),
}
ESCAPES = frozenset(_VALUE) | {"q", "%"}

# What error_severity() writes, and the extra lines of one message (errdetail, STATEMENT ...).
SEVERITIES = ("DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "LOG", "FATAL", "PANIC")
SUB_FIELDS = {"DETAIL": "detail", "HINT": "hint", "QUERY": "internal_query", "CONTEXT": "context",
              "LOCATION": "location", "STATEMENT": "statement"}
_SEVERITY = r"(?P<severity>" + "|".join(SEVERITIES + tuple(SUB_FIELDS)) + r"):  (?P<message>.*)"

# Tried in order by auto-detection: PostgreSQL's default, Debian's, the one pgtrail's design
# recommends, and the prefixes pgBadger's documentation asks for.
COMMON_PREFIXES = (
    "%m [%p] ",
    "%m [%p] %q%u@%d ",
    "%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ",
    "%t [%p]: [%l-1] user=%u,db=%d ",
    "%t [%p]: user=%u,db=%d,app=%a,client=%h ",
    "%m [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ",
    "%m [%p] %q%u@%d/%a ",
    "%t [%p]: ",
    "%t [%p] ",
    "%m %u %d [%p] ",
    "%m [%p] %u@%d ",
)

# The empty-by-default values: "[unknown]" is what PostgreSQL writes before authentication.
_UNKNOWN = {"", "[unknown]"}


class PrefixMatch(NamedTuple):  # a tuple: made once per line, so made cheaply
    fields: dict[str, str]
    severity: str
    message: str
    session: bool  # matched the whole prefix, not only the part before %q


class Prefix:
    """One log_line_prefix, compiled. `match(line)` gives the prefix fields, severity and message,
    or None when the line was not written with this prefix."""

    def __init__(self, text: str):
        self.text = text
        session_part, _, _ = text.partition("%q")
        self.escapes = _escapes(text)
        self._session = re.compile(_compile(text.replace("%q", "", 1) if "%q" in text else text) + _SEVERITY)
        self._background = re.compile(_compile(session_part) + _SEVERITY) if "%q" in text else None

    def match(self, line: str) -> PrefixMatch | None:
        m = self._session.match(line)
        session = m is not None
        if m is None and self._background is not None:
            m = self._background.match(line)
        if m is None:
            return None
        groups = m.groupdict()
        severity, message = groups.pop("severity"), groups.pop("message")
        fields = {k: value for k, v in groups.items() if v is not None and (value := v.strip()) not in _UNKNOWN}
        return PrefixMatch(fields, severity, message, session)

    def __repr__(self) -> str:
        return f"Prefix({self.text!r})"


_ESCAPE = re.compile(r"%(-?\d+)?(.)", re.S)


def _escapes(text: str) -> set[str]:
    return {m.group(2) for m in _ESCAPE.finditer(text)}


def _compile(text: str) -> str:
    """The regex source for a prefix (%q already split off or removed by the caller)."""
    out: list[str] = ["^"]
    seen: set[str] = set()
    i = 0
    while i < len(text):
        m = _ESCAPE.match(text, i) if text[i] == "%" else None
        if m is None:
            if text[i] != "%":  # a lone '%' at the very end prints nothing
                out.append(re.escape(text[i]))
            i += 1
            continue
        padding, esc = m.group(1), m.group(2)
        i = m.end()
        if esc == "%":
            out.append("%")
        elif esc in _VALUE:
            name, pattern = _VALUE[esc]
            body = f"(?:{pattern})" if name in seen else f"(?P<{name}>{pattern})"
            seen.add(name)
            # padding: at least |n| wide, spaces on the left (n > 0) or the right (n < 0)
            out.append(f" *{body} *" if padding else body)
        # an unknown escape prints nothing: PostgreSQL ignores it
    return "".join(out)
