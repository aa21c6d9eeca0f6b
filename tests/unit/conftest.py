from pathlib import Path

import pytest

from consumer.classify import Redactor
from consumer.decoder import decode
from consumer.normalizer import Normalizer

FIXTURES = Path(__file__).parent / "fixtures"


def fixture_keys() -> dict[int, bytes]:
    """The signing key of the throw-away database the fixture was captured from (capture.sh)."""
    keys = {}
    for line in (FIXTURES / "signing_keys.txt").read_text().split("\n"):
        if line.strip():
            kid, hexkey = line.split()
            keys[int(kid)] = bytes.fromhex(hexkey)
    return keys


def normalize(lines, system_id="7712193764098600281", database="fixture_capture", keys=None, redactor=None,
              reference=False):
    """The events the normalizer makes of `lines`, as pydantic models (parsed back from the bytes
    it would send)."""
    n = Normalizer(system_id, database, "slot", fixture_keys() if keys is None else keys,
                   redactor or Redactor(b"test-key"), reference=reference)
    events = []
    for line in lines:
        events.extend(enc.event for enc in n.feed(decode(line)))
    return events, n


@pytest.fixture
def tracked_lines() -> list[str]:
    """Real wal2json v2 output of a tracked workload (pg_recvlogical, fixtures/capture.sh). Made
    before the consumer asked for include-types=0: its column entries carry a "type" the decoder
    ignores, so these tests also show a stream with type names still decodes."""
    return (FIXTURES / "wal2json_v2_tracked.jsonl").read_text().splitlines()


@pytest.fixture
def basic_lines() -> list[str]:
    return (FIXTURES / "wal2json_v2_basic.jsonl").read_text().splitlines()
