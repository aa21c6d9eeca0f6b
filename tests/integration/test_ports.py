"""One setting per local service moves it, and everything that talks to it follows; every port a
service binds is checked before it starts (a second checkout never talks to the first one's)."""
import os
import socket
import subprocess

import pytest

from consumer.settings import ConsumerSettings
from publisher.settings import KafkaSettings
from sink.settings import SinkSettings
from tests.integration.conftest import ROOT


def test_the_port_settings_move_every_default(monkeypatch):
    for var in ("PGTRAIL_SOURCE_DSN", "PGTRAIL_VAULT_DSN", "PGTRAIL_SINK_VAULT_DSN", "PGTRAIL_KAFKA_BOOTSTRAP",
                "PGTRAIL_KAFKA_SASL_PORT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PGTRAIL_PG_PORT", "55432")
    monkeypatch.setenv("PGTRAIL_KAFKA_PORT", "29092")
    from pgtrail import local
    assert "port=55432" in ConsumerSettings().source_dsn.get_secret_value()
    assert "port=55432" in SinkSettings().vault_dsn.get_secret_value()
    assert KafkaSettings().bootstrap == "127.0.0.1:29092"
    assert local.kafka_sasl_port() == 29094


def _listening():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s


def _free_port_below(port: int) -> int:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port - 1))
        except OSError:
            pytest.fail(f"port {port - 1} is in use; rerun")
    return port - 1


@pytest.mark.parametrize("service, variable", [("start-pg", "PGTRAIL_PG_PORT"),
                                               ("start-kafka", "PGTRAIL_KAFKA_CONTROLLER_PORT")])
def test_services_refuse_a_taken_port(tmp_path, service, variable):
    taken = _listening()
    try:
        port = taken.getsockname()[1]
        env = {**os.environ, "PGTRAIL_HOME": str(tmp_path)}
        if variable == "PGTRAIL_PG_PORT":
            env["PGTRAIL_PG_PORT"] = str(port)
        else:  # the controller listener follows the Kafka port: PGTRAIL_KAFKA_PORT + 1
            env.pop("PGTRAIL_KAFKA_CONTROLLER_PORT", None)
            env["PGTRAIL_KAFKA_PORT"] = str(_free_port_below(port))
        proc = subprocess.run([str(ROOT / "scripts" / "services.sh"), service], env=env, capture_output=True,
                              text=True, timeout=60)
    finally:
        taken.close()
    assert proc.returncode != 0
    assert f"port {port} is taken by another process; set {variable}" in proc.stderr, proc.stderr
    assert not (tmp_path / "pg" / "data" / "PG_VERSION").exists()  # refused before anything was made
