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


def _listening_with_free_port_below():
    """A listening socket whose port's lower neighbour is free (the OS picks ports at random: the
    neighbour is sometimes some other process's, so try again rather than fail)."""
    for _ in range(100):
        taken = _listening()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", taken.getsockname()[1] - 1))
                return taken
            except OSError:
                taken.close()
    pytest.fail("no port with a free lower neighbour in 100 tries")


@pytest.mark.parametrize("service, variable", [("start-pg", "PGTRAIL_PG_PORT"),
                                               ("start-kafka", "PGTRAIL_KAFKA_CONTROLLER_PORT")])
def test_services_refuse_a_taken_port(tmp_path, service, variable):
    taken = _listening() if variable == "PGTRAIL_PG_PORT" else _listening_with_free_port_below()
    try:
        port = taken.getsockname()[1]
        env = {**os.environ, "PGTRAIL_HOME": str(tmp_path)}
        if variable == "PGTRAIL_PG_PORT":
            env["PGTRAIL_PG_PORT"] = str(port)
        else:  # the controller listener follows the Kafka port: PGTRAIL_KAFKA_PORT + 1
            env.pop("PGTRAIL_KAFKA_CONTROLLER_PORT", None)
            env["PGTRAIL_KAFKA_PORT"] = str(port - 1)
        proc = subprocess.run([str(ROOT / "scripts" / "services.sh"), service], env=env, capture_output=True,
                              text=True, timeout=60)
    finally:
        taken.close()
    assert proc.returncode != 0
    assert f"port {port} is taken by another process; set {variable}" in proc.stderr, proc.stderr
    assert not (tmp_path / "pg" / "data" / "PG_VERSION").exists()  # refused before anything was made
