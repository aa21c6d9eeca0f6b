"""Secrets in logged statements never become events.

A server log holds statements as they were typed: `ALTER ROLE ... PASSWORD '...'`, a
subscription's or dblink's connection string with `password=...`, a user mapping's
`OPTIONS (password '...')`. Their values are replaced by REDACTED before an entry becomes an
event; the rest of the statement is kept, so the history still says who changed which role.
(A password hashed by the client, `PASSWORD 'SCRAM-SHA-256$...'`, is redacted as well: a
verifier is still a secret worth not spreading.)
"""
from __future__ import annotations

import re

REDACTED = "'********'"

# PASSWORD 'x' | PASSWORD E'x' | PASSWORD $tag$x$tag$  (roles, user mappings' OPTIONS (password 'x'))
_KEYWORD = re.compile(r"""(?i)\b(password\s+)(?:E?'(?:[^']|'')*'?|\$([A-Za-z_0-9]*)\$.*?(?:\$\2\$|$))""", re.S)
# password=x inside a connection string (CREATE SUBSCRIPTION CONNECTION, dblink, postgres_fdw)
_CONNINFO = re.compile(r"""(?i)\b(password\s*=\s*)(?:'(?:[^'\\]|\\.)*'?|[^\s'";)]+)""")


def redact_secrets(text: str | None) -> tuple[str | None, bool]:
    """(text with secret values replaced, whether anything was)."""
    if not text or "assword" not in text and "ASSWORD" not in text:
        return text, False
    out = _KEYWORD.sub(lambda m: m.group(1) + REDACTED, text)
    out = _CONNINFO.sub(lambda m: m.group(1) + "********", out)
    return out, out != text
