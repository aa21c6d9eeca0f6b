"""Bad input never stops an import: it is counted with line numbers and reasons. Only an input
that is not a server log at all raises LogFormatError, and the report still holds the counts."""
from __future__ import annotations

import gzip
import io
import os
import tracemalloc

import pytest

from logimport import LogFormatError, ParseReport, read_log
from logimport.formats import MAX_ENTRY_CHARS

T = "2024-05-01 12:00:01.123 UTC"
GOOD = f"{T} [10] LOG:  statement: select 1\n"


def read(data, **kw):
    report = ParseReport()
    events = list(read_log(io.BytesIO(data) if isinstance(data, bytes) else data, origin="t", report=report, **kw))
    return events, report


def test_a_wrong_prefix_is_obvious_in_the_report():
    data = (GOOD * 5).encode()
    with pytest.raises(LogFormatError) as caught:
        read(data, prefix="%t [%p]: [%l-1] user=%u,db=%d ")
    message = str(caught.value)
    assert "5 lines not parsed: does not match log_line_prefix '%t [%p]: [%l-1] user=%u,db=%d '" in message
    assert "they look like log_line_prefix '%m [%p] '" in message
    assert "line 1: does not match" in message


def test_mostly_wrong_prefix_still_reads_what_matches():
    data = (GOOD + f"{T} [10] alice@db LOG:  statement: select 2\n" * 3).encode()
    events, report = read(data, prefix="%m [%p] ")
    assert len(events) == 1 and report.unparsed == 3
    assert [line for line, _, _ in report.samples] == [2, 3, 4]
    assert "only 1 of the first 4 lines match" in report.notes[0]


def test_binary_garbage_in_the_middle_is_counted_and_skipped():
    data = GOOD.encode() + b"\xff\xfe\x00garbage\x9c\n" + os.urandom(200).replace(b"\n", b"") + b"\n" + GOOD.encode()
    events, report = read(data)
    assert len(events) == 2 and report.unparsed == 2 and report.invalid_utf8 >= 1
    assert [line for line, _, _ in report.samples] == [2, 3]


def test_binary_garbage_from_the_start_is_a_format_error_with_counts():
    data = b"".join(os.urandom(100).replace(b"\n", b"") + b"\n" for _ in range(300))
    report = ParseReport()
    with pytest.raises(LogFormatError, match="binary data"):
        list(read_log(io.BytesIO(data), origin="t", report=report))
    assert report.lines == 200 and report.unparsed == 200


def test_an_empty_input_is_no_entries_and_no_error():
    assert read(b"")[0] == [] and read(b"\n\n")[1].blank == 2


def test_truncated_lines():
    events, report = read((GOOD + f"{T} [10] LOG:  statement: select 2\n" + f"{T} [1").encode())
    assert len(events) == 2 and report.unparsed == 1 and report.samples[0][0] == 3
    # a csvlog record cut in the middle of a quoted field, then whole records again
    row = ('2024-05-01 12:00:01.123 UTC,"u","d",10,"127.0.0.1:5",6632a1b2.a,{n},"idle",2024-05-01 12:00:00 UTC,'
           '3/1,0,LOG,00000,"statement: select {n}",,,,,,,,,"app","client backend",,0\n')
    cut = row.format(n=2)[:120] + "\n"
    events, report = read((row.format(n=1) + cut + row.format(n=3)).encode())
    assert [e.payload.statement for e in events] == ["select 1", "select 3"]
    assert report.unparsed == 1 and "cut short" in report.samples[0][1] and report.samples[0][0] == 2
    # a jsonlog line cut short
    json_row = '{"timestamp":"2024-05-01 12:00:01.123 UTC","pid":10,"session_id":"a.b","line_num":%d,' \
               '"error_severity":"LOG","message":"statement: select %d"}\n'
    events, report = read((json_row % (1, 1) + (json_row % (2, 2))[:50] + "\n" + json_row % (3, 3)).encode())
    assert len(events) == 2 and report.unparsed == 1
    assert report.samples[0][0] == 2 and report.samples[0][1].startswith("not a JSON object")


def test_an_entry_longer_than_the_limit_is_cut_and_counted():
    long_sql = "select '" + "x" * (MAX_ENTRY_CHARS + 1000) + "'"
    events, report = read((f"{T} [10] LOG:  statement: {long_sql}\n" + GOOD).encode())
    assert len(events) == 2 and report.truncated == 1
    assert len(events[0].payload.statement) <= MAX_ENTRY_CHARS and events[0].payload.command_tag == "SELECT"


def test_a_cut_gzip_file_gives_what_it_holds_and_says_where_it_ended():
    packed = gzip.compress((GOOD * 2000).encode())
    events, report = read(packed[: len(packed) // 2])
    assert 0 < len(events) < 2000 and report.compressed
    assert any("input ends early" in note for note in report.notes)


def test_the_format_is_what_most_lines_are_in():
    # after a reload from jsonlog to stderr, the new file starts with a line of the old format
    json_line = '{"timestamp":"2024-05-01 12:00:01.123 UTC","pid":9,"error_severity":"LOG","message":"duration: 1 ms"}'
    events, report = read((json_line + "\n" + GOOD * 3).encode())
    assert report.log_format == "stderr" and len(events) == 3
    assert report.unparsed == 1 and report.samples[0][0] == 1


def test_unknown_format_is_refused():
    with pytest.raises(LogFormatError, match="unknown log format"):
        read(GOOD.encode(), log_format="syslog")


def test_explicit_format_wins_over_detection():
    with pytest.raises(LogFormatError):
        read(GOOD.encode(), log_format="jsonlog")


class _Generated(io.RawIOBase):
    """A large log produced on the fly, never held whole."""

    def __init__(self, sessions: int, statements: int):
        self._rows = self._make(sessions, statements)
        self._buf = b""

    @staticmethod
    def _make(sessions, statements):
        for s in range(statements):
            pid = 1000 + s % sessions
            sql = f"update accounts set balance = balance + {s % 1000}\n\t where id = {s % 1000}"
            yield (f"{T} [{pid}] 6632a1b2.{pid:x} {s} LOG:  statement: {sql}\n"
                   f"{T} [{pid}] 6632a1b2.{pid:x} {s} LOG:  duration: 0.{s % 900 + 100} ms\n").encode()

    def readable(self):
        return True

    def readinto(self, buffer):
        while len(self._buf) < len(buffer):
            chunk = next(self._rows, b"")
            if not chunk:
                break
            self._buf += chunk
        n = min(len(buffer), len(self._buf))
        buffer[:n], self._buf = self._buf[:n], self._buf[n:]
        return n


def test_memory_stays_flat_on_a_long_log():
    def held(statements: int) -> int:
        """Memory the reader holds on to near the end of the log (not transient peaks)."""
        report = ParseReport()
        tracemalloc.start()
        try:
            events = read_log(io.BufferedReader(_Generated(200, statements)), origin="big",
                              prefix="%m [%p] %c %l ", report=report)
            for count, _ in enumerate(events, 1):
                if count == statements - 300:
                    current = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        assert count == statements and report.merged == statements
        return current

    # four times the log holds no more memory
    small, large = held(2_000), held(8_000)
    assert large < small + (256 << 10), (small, large)
