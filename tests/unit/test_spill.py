from consumer.decoder import RowChange
from consumer.spill import SpillBuffer


def row(i):
    return RowChange("I", 1, f"0/{i:X}", "s", "t", {"id": i, "v": "x" * 10})


def test_order_and_bound():
    buf = SpillBuffer(max_in_memory=10)
    for i in range(1000):
        buf.append(row(i))
    assert len(buf) == 1000
    assert len(buf._rows) == 10  # the rest is on disk
    assert [r.columns["id"] for r in buf] == list(range(1000))
    buf.close()
    assert len(buf) == 0


def test_small_stays_in_memory():
    buf = SpillBuffer()
    buf.append(row(1))
    assert buf._file is None and [r.lsn for r in buf] == ["0/1"]
