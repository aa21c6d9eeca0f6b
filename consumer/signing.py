"""Verification of pgtrail's signed messages.

Content format, written by script_tracking._emit(): 'v1 <kid> <hex hmac-sha256> <json body>',
the HMAC over the body's UTF-8 bytes, keyed by a secret only the tracking functions and the
consumer's role can read. Anything else with the 'pgtrail' prefix was written by someone else.
"""
from __future__ import annotations

import hashlib
import hmac


class Forged(Exception):
    """The message did not come from the tracking functions; the text says why."""


def verify(content: str, keys: dict[int, bytes]) -> str:
    """Return the signed JSON body, or raise Forged."""
    parts = content.split(" ", 3)
    if len(parts) != 4 or parts[0] != "v1":
        raise Forged("unsigned message (not in the 'v1 <kid> <hmac> <body>' format)")
    _, kid_text, signature, body = parts
    try:
        kid = int(kid_text)
    except ValueError:
        raise Forged(f"malformed key id {kid_text[:20]!r}") from None
    key = keys.get(kid)
    if key is None:
        raise Forged(f"unknown signing key {kid}")
    expected = hmac.new(key, body.encode("utf-8"), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise Forged("bad signature")
    return body
