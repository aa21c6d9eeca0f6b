
import pytest

from consumer.decoder import Begin, Commit, Message, RowChange, decode
from pgtrail.errors import Poison


def test_every_fixture_line_decodes(tracked_lines, basic_lines):
    kinds = [type(decode(line)).__name__ for line in tracked_lines + basic_lines]
    assert {"Begin", "Commit", "RowChange", "Message"} <= set(kinds)


def test_begin_and_commit_carry_commit_and_end_lsn(basic_lines):
    b, c = decode(basic_lines[2]), decode(basic_lines[8])
    assert isinstance(b, Begin) and isinstance(c, Commit)
    assert b.xid == c.xid == 737
    assert b.commit_lsn == c.commit_lsn == "0/19713A0"
    assert b.end_lsn == c.end_lsn == "0/19713D0"


def test_numeric_keeps_its_precision(basic_lines):
    row = decode(basic_lines[5])
    assert isinstance(row, RowChange)
    assert row.columns["amount"] == "12345678901234567890.123456789"  # the exact text, never a float


def test_nan_arrives_as_null_and_bytea_as_hex(basic_lines):
    row = decode(basic_lines[4])
    assert row.columns["f"] is None
    assert row.columns["b"] == "0102"


def test_delete_has_identity_and_pk(basic_lines):
    row = decode(basic_lines[7])
    assert row.action == "D" and row.identity == {"id": 2} and row.pk == ["id"] and row.columns == {}


def test_truncate(basic_lines):
    row = decode(basic_lines[11])
    assert row.action == "T" and row.table == "t"


def test_non_transactional_message(basic_lines):
    msg = decode(basic_lines[9])
    assert isinstance(msg, Message) and not msg.transactional and msg.xid is None and msg.prefix == "pgtrail"


@pytest.mark.parametrize("line", [
    b"", b"not json", b"\xff\xfe\x00garbage", b'{"action":"X"}', b'{"action":"I"}', b"[1,2]",
    b'{"action":"B","xid":1}',
])
def test_bad_lines_are_poison_with_a_reason(line):
    with pytest.raises(Poison) as err:
        decode(line)
    assert str(err.value)
