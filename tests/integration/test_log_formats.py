"""The log parser on logs a real PostgreSQL 15 writes during the test: one throw-away cluster
(logging_collector on from the start), reconfigured by ALTER SYSTEM and a reload for each format
and prefix, the same workload each time (tests/unit/fixtures/logs/make_fixtures.py), and every
statement found once with its user, database, application, duration, failure and SQLSTATE."""
from __future__ import annotations

import gzip

import pytest

from logimport import COMMON_PREFIXES, ParseReport, read_log
from tests.unit.fixtures.logs.make_fixtures import NO_SUCH_DB, RUNS, LogCluster, assert_entries, workload

pytestmark = pytest.mark.integration

# the committed fixtures' settings, and one more prefix: %q with the application and client
LIVE_RUNS = {**RUNS, "stderr_q_app": {**RUNS["stderr_debian"], "log_line_prefix": "%m [%p] %q%u@%d/%a/%h ",
                                      "log_statement": "all", "log_min_duration_statement": "0"}}


@pytest.fixture(scope="module")
def cluster():
    c = LogCluster()
    try:
        c.start()
        yield c
    finally:
        c.stop()


@pytest.mark.parametrize("run", list(LIVE_RUNS))
def test_statements_found_in_a_live_log(cluster, run, tmp_path):
    settings = LIVE_RUNS[run]
    tag = f"it{list(LIVE_RUNS).index(run)}"
    path = cluster.configure(f"it_{run}", settings)
    workload(cluster, tag)
    cluster.flush(path, f"integration-end-{run}")
    # The server keeps writing this file (the flushing session's disconnection, a checkpoint): every
    # read below is of one copy taken now, so the plain and the gzipped read see the same bytes.
    snapshot = tmp_path / path.name
    snapshot.write_bytes(path.read_bytes())
    path = snapshot

    report = ParseReport()
    prefix = settings.get("log_line_prefix")
    if prefix in COMMON_PREFIXES:
        prefix = None  # detected
    events = list(read_log(path, origin=path.name, prefix=prefix, server="it", report=report))
    # The session that ran pg_reload_conf() writes its last lines (duration, disconnection) with
    # the settings before, into the new file: a real log starts that way after such a reload.
    # Those, and only those, are lines the parser cannot read.
    assert report.unparsed <= 3 and all(line <= 5 for line, _, _ in report.samples), report.summary()
    assert report.log_format == settings["log_destination"]
    if settings["log_destination"] == "stderr":
        assert report.prefix == settings["log_line_prefix"]
    assert assert_entries(events, settings, tag) >= 8
    fatal = [e for e in events if e.payload.category == "error" and NO_SUCH_DB in (e.payload.error or "")]
    assert len(fatal) == 1 and fatal[0].payload.severity == "FATAL"

    # the rotated copy, gzipped, read again: nothing new
    packed = tmp_path / f"{path.name}.gz"
    packed.write_bytes(gzip.compress(path.read_bytes()))
    again = list(read_log(packed, origin=packed.name, prefix=prefix, server="it", report=ParseReport()))
    assert {e.event_id for e in again} == {e.event_id for e in events}
