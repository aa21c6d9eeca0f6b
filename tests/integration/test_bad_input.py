"""Bad configuration gives one line that says what to fix: never a traceback."""
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import KAFKA, dsn
from tests.integration.conftest import ROOT, free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def run_pgtrail(*args, timeout=90, **env):
    full = {**os.environ, "PGTRAIL_CONSUMER_METRICS_PORT": "0", "PGTRAIL_SINK_METRICS_PORT": "0",
            "PGTRAIL_KAFKA_BOOTSTRAP": KAFKA, **env}
    proc = subprocess.run([sys.executable, "-m", "pgtrail.cli", *args], env=full, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stderr.strip().splitlines()


def assert_one_line_error(rc, lines, *needles):
    assert rc == 2, lines
    errors = [line for line in lines if line.startswith("pgtrail: error:")]
    assert len(errors) == 1, lines
    assert not any("Traceback" in line for line in lines), lines
    for needle in needles:
        assert needle in errors[0], errors[0]


def test_wrong_source_dsn(source_db):
    rc, lines = run_pgtrail("consume", PGTRAIL_SOURCE_DSN=f"host=127.0.0.1 port={free_port()} user=postgres dbname=x")
    assert_one_line_error(rc, lines, "cannot connect to the source database", "PGTRAIL_SOURCE_DSN")


def test_wrong_password_is_never_echoed(source_db):
    rc, lines = run_pgtrail("consume", PGTRAIL_SOURCE_DSN=dsn(source_db, "nobody_here", "s3cret-pw"))
    assert_one_line_error(rc, lines, "cannot connect")
    assert not any("s3cret-pw" in line for line in lines)


def test_unknown_database(source_db):
    rc, lines = run_pgtrail("install", "source", "--dsn", dsn("no_such_database_x"))
    assert_one_line_error(rc, lines, "no_such_database_x", "PGTRAIL_SOURCE_DSN")


def test_unreachable_broker(source_db):
    rc, lines = run_pgtrail("consume", PGTRAIL_SOURCE_DSN=dsn(source_db),
                            PGTRAIL_KAFKA_BOOTSTRAP=f"127.0.0.1:{free_port()}")
    assert_one_line_error(rc, lines, "cannot reach Kafka", "PGTRAIL_KAFKA_BOOTSTRAP")
    rc, lines = run_pgtrail("sink", PGTRAIL_KAFKA_BOOTSTRAP=f"127.0.0.1:{free_port()}")
    assert_one_line_error(rc, lines, "cannot reach Kafka")


def test_invalid_setting():
    rc, lines = run_pgtrail("consume", PGTRAIL_SLOT="Not A Slot!")
    assert_one_line_error(rc, lines, "slot")


@pytest.fixture(scope="module")
def odd_cluster():
    """A second, throw-away cluster whose library path lacks wal2json."""
    root = Path(tempfile.mkdtemp(prefix="pgtrail-odd-"))
    data, empty = root / "data", root / "emptylib"
    empty.mkdir()
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(empty, "postgres", "postgres")
    port = free_port()
    subprocess.run([*as_pg, str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"],
                   check=True, capture_output=True)
    opts = f"-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={root} " \
           f"-c dynamic_library_path={empty}"

    def start(wal_level):
        subprocess.run([*as_pg, str(PG_BIN / "pg_ctl"), "-D", str(data), "-w", "-l", str(root / "log"),
                        "-o", f"{opts} -c wal_level={wal_level}", "restart"], check=True, capture_output=True)

    yield port, start
    subprocess.run([*as_pg, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
    shutil.rmtree(root, ignore_errors=True)


def test_wal2json_missing(odd_cluster):
    port, start = odd_cluster
    start("logical")
    rc, lines = run_pgtrail("consume", PGTRAIL_SOURCE_DSN=f"host=127.0.0.1 port={port} user=postgres dbname=postgres")
    assert_one_line_error(rc, lines, "wal2json", "postgresql-15-wal2json")


def test_wal_level_not_logical(odd_cluster):
    port, start = odd_cluster
    start("replica")
    rc, lines = run_pgtrail("consume", PGTRAIL_SOURCE_DSN=f"host=127.0.0.1 port={port} user=postgres dbname=postgres")
    assert_one_line_error(rc, lines, "wal_level", "logical")
