"""The framing between pgtrail and its kafka-python process: frames split anywhere across reads
come out whole and in order; a partial frame waits for the rest."""
from publisher.kafka_python_process import _frame, _Frames


def test_frames_split_at_every_byte_come_out_whole_and_in_order():
    messages = [("send", 7, [("t", b"k", b"v" * 300, [("ce_id", b"x")])]), ("acks", [1, 2, 3], []), ("flushed",)]
    stream = b"".join(_frame(m) for m in messages)
    for cut in range(len(stream) + 1):
        frames = _Frames()
        out = frames.feed(stream[:cut]) + frames.feed(stream[cut:])
        assert [tuple(_as_tuple(x) for x in m) for m in out] == [tuple(_as_tuple(x) for x in m) for m in messages]


def test_a_partial_frame_waits_for_the_rest():
    frames = _Frames()
    data = _frame(("acks", [5], []))
    assert frames.feed(data[:3]) == [] and frames.feed(data[3:-1]) == []
    assert frames.feed(data[-1:]) == [["acks", [5], []]]


def _as_tuple(x):
    """msgpack gives lists where tuples went in."""
    if isinstance(x, (list, tuple)):
        return tuple(_as_tuple(i) for i in x)
    return x
