"""pgtrail.dsn reads a DSN through whichever PostgreSQL driver the process has loaded: both must
read it alike, and no description of it may show the password."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict
from psycopg2.extensions import parse_dsn

from pgtrail.dsn import describe_dsn

DSNS = ["host=db.example port=6432 dbname=app user=alice password=s3cret sslmode=require",
        "postgresql://alice:s3cret@db.example:6432/app?sslmode=require&application_name=x",
        "postgresql:///app?host=/run/postgresql", "dbname=x", "host='a b' password='it\\'s'", "user=u"]


@pytest.mark.parametrize("dsn", DSNS)
def test_both_drivers_read_a_dsn_alike(dsn):
    assert parse_dsn(dsn) == {k: str(v) for k, v in conninfo_to_dict(dsn).items()}


@pytest.mark.parametrize("dsn", DSNS)
def test_a_description_never_shows_the_password(dsn):
    text = describe_dsn(dsn)
    assert "s3cret" not in text and "it's" not in text and text != "<unparsable DSN>"


def test_an_unparsable_dsn_is_described_safely():
    assert describe_dsn("host=h password='unterminated") == "<unparsable DSN>"


def test_the_consumer_loads_one_postgresql_driver():
    """The capture path (stream, session, normalizer, publisher) runs on psycopg2 alone."""
    code = ("import sys; import consumer.service, consumer.source, consumer.stream, consumer.settings, publisher, "
            "publisher.librdkafka, publisher.topics; from pgtrail.dsn import describe_dsn; "
            "describe_dsn('host=h dbname=d'); print('psycopg' in sys.modules, 'psycopg2' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2]).stdout.split()
    assert out == ["False", "True"]
