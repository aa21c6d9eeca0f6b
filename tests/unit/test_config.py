"""The fleet config file and the Kafka security settings: pure validation, no services."""
import pytest

from pgtrail import config
from pgtrail.errors import Fatal
from publisher.settings import KafkaSettings

BASE = '''
[kafka]
bootstrap = "k1:9092,k2:9092"
[consumer]
heartbeat_interval = 7
max_pending_events = 500
[sink]
vault_dsn = "host=vault dbname=v"
[[sources]]
name = "orders"
dsn = "host=db1 dbname=orders"
[[sources]]
name = "billing"
dsn = "host=db2 dbname=billing"
slot = "pgtrail_custom"
heartbeat_interval = 30
'''


def write(tmp_path, text):
    p = tmp_path / "fleet.toml"
    p.write_text(text)
    return p


def test_sections_defaults_and_per_source_overrides(tmp_path):
    cfg = config.load(write(tmp_path, BASE))
    assert [s.name for s in cfg.sources] == ["orders", "billing"]
    assert cfg.kafka.client_options()["bootstrap_servers"] == ["k1:9092", "k2:9092"]
    assert cfg.sink.vault_dsn.get_secret_value() == "host=vault dbname=v"
    orders, billing = (cfg.consumer_settings(s) for s in cfg.sources)
    assert (orders.slot, orders.heartbeat_interval, orders.max_pending_events) == ("pgtrail_orders", 7, 500)
    assert (billing.slot, billing.heartbeat_interval, billing.max_pending_events) == ("pgtrail_custom", 30, 500)
    assert billing.source_dsn.get_secret_value() == "host=db2 dbname=billing"


def test_the_file_wins_over_the_environment_which_fills_the_rest(tmp_path, monkeypatch):
    monkeypatch.setenv("PGTRAIL_KAFKA_BOOTSTRAP", "env:1")
    monkeypatch.setenv("PGTRAIL_KAFKA_LINGER_MS", "42")
    cfg = config.load(write(tmp_path, BASE))
    assert cfg.kafka.bootstrap == "k1:9092,k2:9092" and cfg.kafka.linger_ms == 42


@pytest.mark.parametrize("text, message", [
    (BASE + "\n[extra]\nx = 1\n", "unknown section(s) extra"),
    (BASE.replace("heartbeat_interval = 7", "heartbeat_intervall = 7"), "unknown setting(s) heartbeat_intervall"),
    (BASE.replace('name = "billing"', 'name = "orders"'), "both named 'orders'"),
    (BASE.replace('name = "billing"', 'name = "Bad Name"'), "sources[1].name"),
    (BASE.replace("max_pending_events = 500", "max_pending_events = 0"), "[consumer].max_pending_events"),
    (BASE.replace("[consumer]", "[consumer]\nslot = 'x'"), "unknown setting(s) slot"),
    ("[kafka]\nbootstrap = 'x:1'\n", "no [[sources]]"),
    ("[[sources]\nname=", "not valid TOML"),
])
def test_mistakes_are_named(tmp_path, text, message):
    with pytest.raises(Fatal) as exc:
        config.load(write(tmp_path, text))
    assert message in str(exc.value)


def test_missing_file(tmp_path):
    with pytest.raises(Fatal, match="does not exist"):
        config.load(tmp_path / "nope.toml")


def test_shards_split_the_fleet_exactly_once_and_stably(tmp_path):
    names = [f"db{i}" for i in range(20)]
    text = "".join(f'[[sources]]\nname = "{n}"\ndsn = "dbname={n}"\n' for n in names)
    cfg = config.load(write(tmp_path, text))
    shares = [[s.name for s in cfg.select(shard=(k, 3))] for k in (1, 2, 3)]
    assert sorted(sum(shares, [])) == sorted(names)
    assert all(shares), shares
    # the same file reordered gives every source the same shard
    reordered = config.load(write(tmp_path, "".join(f'[[sources]]\nname = "{n}"\ndsn = "dbname={n}"\n'
                                                    for n in reversed(names))))
    assert [sorted(s.name for s in reordered.select(shard=(k, 3))) for k in (1, 2, 3)] == [sorted(x) for x in shares]
    assert [s.name for s in cfg.select(["db3", "db1"])] == ["db1", "db3"]
    with pytest.raises(Fatal, match="no source named db99"):
        cfg.select(["db99"])


@pytest.mark.parametrize("text", ["0/2", "3/2", "x", "1-2"])
def test_bad_shard(text):
    with pytest.raises(Fatal):
        config.parse_shard(text)


def test_kafka_security_options_pass_through():
    plain = KafkaSettings(bootstrap="b:1")
    assert plain.client_options() == {"bootstrap_servers": ["b:1"], "security_protocol": "PLAINTEXT"}
    sasl = KafkaSettings(bootstrap="b:1", security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
                         sasl_username="u", sasl_password="s3cr3t-value", ssl_cafile="/ca.pem")
    opts = sasl.client_options()
    assert opts["sasl_mechanism"] == "SCRAM-SHA-512" and opts["sasl_plain_password"] == "s3cr3t-value"
    assert opts["ssl_cafile"] == "/ca.pem" and opts["security_protocol"] == "SASL_SSL"
    assert "s3cr3t" not in repr(sasl) and "s3cr3t" not in str(sasl.model_dump())


@pytest.mark.parametrize("kwargs, message", [
    ({"security_protocol": "SASL_PLAINTEXT"}, "needs sasl_mechanism"),
    ({"sasl_mechanism": "PLAIN"}, "use SASL_PLAINTEXT or SASL_SSL"),
    ({"security_protocol": "SSL", "ssl_certfile": "/c.pem"}, "go together"),
    ({"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "GSSAPI", "sasl_username": "u",
      "sasl_password": "p"}, "sasl_mechanism"),
])
def test_inconsistent_security_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        KafkaSettings(**kwargs)


def test_a_file_that_is_not_utf8_is_named_with_its_line(tmp_path):
    path = tmp_path / "fleet.toml"
    path.write_bytes('[[sources]]\nname = "orders"\n# Zürich\n'.encode("latin-1"))
    with pytest.raises(Fatal, match=r"is not UTF-8 \(byte 0xfc on line 3\)"):
        config.load(path)
