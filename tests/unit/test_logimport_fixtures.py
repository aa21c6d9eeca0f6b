"""The log parser on logs written by a real PostgreSQL 15 (tests/unit/fixtures/logs, make_fixtures.py):
every statement of the workload found once, with its facts, in every format and prefix."""
from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pytest

from logimport import LogFormatError, ParseReport, read_log
from schemas.events import LogImportEvent, parse_event
from tests.unit.fixtures.logs.make_fixtures import NO_SUCH_DB, assert_entries

LOGS = Path(__file__).parent / "fixtures" / "logs"
MANIFEST: dict[str, dict[str, str]] = json.loads((LOGS / "manifest.json").read_text())


def read(source, name: str, detect: bool = False, **kw) -> tuple[list[LogImportEvent], ParseReport]:
    report = ParseReport()
    prefix = None if detect else MANIFEST[name].get("log_line_prefix")
    events = list(read_log(source, origin=name, server="fixture", prefix=prefix, report=report, **kw))
    return events, report


def error_states_logged(name: str) -> bool:
    settings = MANIFEST[name]
    return settings["format"] != "stderr" or "%e" in settings["log_line_prefix"]


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_each_statement_is_one_entry_with_its_facts(name):
    settings = MANIFEST[name]
    events, report = read(LOGS / name, name)
    assert report.unparsed == 0, report.summary()
    assert report.log_format == settings["format"]
    assert assert_entries(events, settings, settings["tag"]) >= 8


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_connections_and_the_failed_login(name):
    events, _ = read(LOGS / name, name)
    categories = {e.payload.category for e in events}
    assert {"connection", "disconnection", "error"} <= categories
    [fatal] = [e for e in events if e.payload.category == "error"]
    assert fatal.payload.severity == "FATAL" and fatal.payload.status == "failed"
    assert NO_SUCH_DB in fatal.payload.error and fatal.source.database == NO_SUCH_DB
    if error_states_logged(name):
        assert fatal.payload.error_state == "3D000"
    authorized = [e for e in events if e.payload.command_tag == "CONNECTION AUTHORIZED"]
    assert any(e.actor.application_name == "fixture-admin" for e in authorized)


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_every_event_is_valid_and_ids_unique(name):
    events, report = read(LOGS / name, name)
    assert len({e.event_id for e in events}) == len(events) == report.entries
    for event in events:
        assert parse_event(event.model_dump_json()) == event
        assert event.payload.origin == name and event.source.slot == "log-import"
        assert 1 <= event.payload.line <= report.lines


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_format_and_common_prefixes_detected(name):
    settings = MANIFEST[name]
    if name == "stderr_escapes.log":  # no common prefix reads it: a clear error, with the counts
        report = ParseReport()
        with pytest.raises(LogFormatError, match="no entry found") as caught:
            list(read_log(LOGS / name, origin=name, report=report))
        assert report.unparsed == report.lines - report.blank > 100
        assert "give the server's log_line_prefix" in str(caught.value)
        assert report.samples[0][0] == 1 and "does not match log_line_prefix" in report.samples[0][1]
        return
    events, report = read(LOGS / name, name, detect=True)
    assert report.log_format == settings["format"]
    assert report.unparsed == 0
    if settings["format"] == "stderr":
        assert report.prefix == settings["log_line_prefix"]
    assert [e.event_id for e in events] == [e.event_id for e in read(LOGS / name, name)[0]]


def test_a_log_line_prefix_with_every_escape_fills_every_field():
    events, _ = read(LOGS / "stderr_escapes.log", "stderr_escapes.log")
    failed = next(e for e in events if e.payload.statement == "select * from app.missing_table")
    p = failed.payload
    assert p.session_id and p.session_line and p.virtual_xid and p.backend_type == "client backend"
    assert p.error_state == "42P01"
    assert failed.source.commit_time.utcoffset().total_seconds() in (-5 * 3600, -4 * 3600)  # America/New_York
    assert any(e.payload.query_id for e in events)
    assert any(e.payload.xid for e in events)  # the DELETE inside BEGIN ... ROLLBACK had one


def test_the_same_file_twice_gives_the_same_ids():
    for name in MANIFEST:
        first, _ = read(LOGS / name, name)
        second, _ = read(LOGS / name, name)
        assert [e.event_id for e in first] == [e.event_id for e in second]


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_overlapping_files_add_nothing_new(name, tmp_path):
    """A rotated file that repeats the end of the previous one: the entries of the overlap have
    the ids they had in the first file, and together the two give exactly the whole log's ids."""
    lines = (LOGS / name).read_bytes().split(b"\n")
    starts = [i for i, line in enumerate(lines) if b"connection received" in line]
    cut_a, cut_b = starts[len(starts) * 2 // 3], starts[len(starts) // 3]  # B starts before A ends
    (tmp_path / "a").write_bytes(b"\n".join(lines[:cut_a]) + b"\n")
    (tmp_path / "b").write_bytes(b"\n".join(lines[cut_b:]))
    whole = {e.event_id for e in read(LOGS / name, name)[0]}
    a = {e.event_id for e in read(tmp_path / "a", name)[0]}
    b = {e.event_id for e in read(tmp_path / "b", name)[0]}
    assert a | b == whole
    assert len(a & b) >= 10


def test_gzip_and_in_memory_input_give_the_same_events(tmp_path):
    name = "csvlog.csv"
    plain, plain_report = read(LOGS / name, name)
    packed = gzip.compress((LOGS / name).read_bytes())
    (tmp_path / "log.gz").write_bytes(packed)
    zipped, zipped_report = read(tmp_path / "log.gz", name)
    assert zipped == plain
    assert zipped_report.compressed and zipped_report.source_bytes_read == len(packed)
    assert zipped_report.bytes_read == plain_report.bytes_read
    text = (LOGS / name).read_text()
    assert read(io.BytesIO(text.encode()), name)[0] == plain  # the SQL entry point's way in
    assert read(io.StringIO(text), name)[0] == plain
