"""Bad configuration gives one line that says what to fix: never a traceback."""
import os
import subprocess
import sys

from pgtrail.install import install
from tests.conftest import KAFKA, dsn
from tests.integration.conftest import ROOT, free_port


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


def test_wal2json_missing(spare_cluster):
    spare_cluster.start(dynamic_library_path=str(spare_cluster.root))  # a folder without wal2json
    install(spare_cluster.dsn(), "source")  # pgtrail's SQL is checked first, before any slot is made
    rc, lines = run_pgtrail("consume", PGTRAIL_SOURCE_DSN=spare_cluster.dsn())
    assert_one_line_error(rc, lines, "wal2json", "postgresql-15-wal2json")


def test_wal_level_not_logical(spare_cluster):
    spare_cluster.start(wal_level="replica")
    rc, lines = run_pgtrail("consume", PGTRAIL_SOURCE_DSN=spare_cluster.dsn())
    assert_one_line_error(rc, lines, "wal_level", "logical")


def test_a_fleet_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "fleet.toml"
    path.write_bytes(f'[[sources]]\nname = "orders"\ndsn = "{dsn("postgres")}"  # Zürich\n'.encode("latin-1"))
    rc, lines = run_pgtrail("slots", "--config", str(path))
    assert_one_line_error(rc, lines, "is not UTF-8", "line 3")


def test_the_sinks_bad_vault_dsn_names_what_the_sink_reads(tmp_path):
    rc, lines = run_pgtrail("sink", PGTRAIL_VAULT_DSN=f"host=127.0.0.1 port={free_port()} user=postgres dbname=v")
    assert_one_line_error(rc, lines, "cannot connect to the vault database", "check PGTRAIL_VAULT_DSN")
    assert not any("--dsn" in line for line in lines), lines
    path = tmp_path / "fleet.toml"
    path.write_text(f'[[sources]]\nname = "a"\ndsn = "{dsn("postgres")}"\n'
                    f'[sink]\nvault_dsn = "host=127.0.0.1 port={free_port()} user=postgres dbname=v"\n')
    rc, lines = run_pgtrail("sink", "--config", str(path))
    assert_one_line_error(rc, lines, f"check vault_dsn in [sink] of {path}")
