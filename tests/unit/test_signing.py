import hashlib
import hmac

import pytest

from consumer.signing import Forged, verify

KEY = {3: b"k" * 32}


def sign(body: str, kid: int = 3, key: bytes = b"k" * 32) -> str:
    return f"v1 {kid} {hmac.new(key, body.encode(), hashlib.sha256).hexdigest()} {body}"


def test_genuine():
    assert verify(sign('{"kind":"ddl","x":"a b c"}'), KEY) == '{"kind":"ddl","x":"a b c"}'


def test_unicode_body():
    body = '{"statement":"créer «table» 表"}'
    assert verify(sign(body), KEY) == body


@pytest.mark.parametrize("content,reason", [
    ('{"kind":"ddl"}', "unsigned"),
    ("v1 3 deadbeef {}", "bad signature"),
    ("v1 x deadbeef {}", "malformed key id"),
    ("v2 3 ab {}", "unsigned"),
    ("", "unsigned"),
])
def test_forgeries(content, reason):
    with pytest.raises(Forged, match=reason):
        verify(content, KEY)


def test_unknown_key_and_tampered_body():
    with pytest.raises(Forged, match="unknown signing key 4"):
        verify(sign("{}", kid=4), KEY)
    good = sign('{"name":"a"}')
    with pytest.raises(Forged, match="bad signature"):
        verify(good.replace('"a"', '"b"'), KEY)
    with pytest.raises(Forged, match="bad signature"):
        verify(sign('{"name":"a"}', key=b"x" * 32), KEY)
