from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def tracked_lines() -> list[str]:
    """Real wal2json v2 output (pg_recvlogical, the consumer's options) of a tracked workload."""
    return (FIXTURES / "wal2json_v2_tracked.jsonl").read_text().splitlines()


@pytest.fixture
def basic_lines() -> list[str]:
    return (FIXTURES / "wal2json_v2_basic.jsonl").read_text().splitlines()
