"""The fleet config file: N source databases, and the Kafka and sink settings they share.

    # fleet.toml
    [kafka]                        # any PGTRAIL_KAFKA_* setting, without the prefix
    bootstrap = "kafka-1:9092,kafka-2:9092"
    security_protocol = "SASL_SSL"
    sasl_mechanism = "SCRAM-SHA-512"
    sasl_username = "pgtrail"      # the password from PGTRAIL_KAFKA_SASL_PASSWORD, not the file

    [consumer]                     # defaults for every source: any PGTRAIL_* consumer setting
    heartbeat_interval = 10

    [sink]                         # any PGTRAIL_SINK_* setting
    vault_dsn = "host=vault dbname=pgtrail_vault user=pgtrail_sink"

    [[sources]]
    name = "orders"                # metrics label and `pgtrail status` row; slot pgtrail_orders by default
    dsn = "host=db1 dbname=orders user=pgtrail"   # passwords: ~/.pgpass or PGPASSWORD, not the file
    [[sources]]
    name = "billing"
    dsn = "host=db2 dbname=billing user=pgtrail"
    heartbeat_interval = 30        # any [consumer] setting, for this source only

Each section is validated by the same pydantic-settings class that reads the environment, so a
value in the file wins over the environment, which wins over the default; a key the class does
not know is an error, not silently ignored.
"""
from __future__ import annotations

import tomllib
import zlib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from consumer.settings import ConsumerSettings
from pgtrail.errors import Fatal
from publisher.settings import KafkaSettings
from sink.settings import SinkSettings

_PER_SOURCE = {"status_interval", "max_pending_events", "heartbeat_interval", "redaction_key", "redaction_policy"}


class SourceEntry(BaseModel):
    """One source database of the fleet."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9_]{1,50}$", description="label in metrics and status; unique in the fleet")
    dsn: SecretStr
    slot: str | None = Field(None, pattern=r"^[a-z0-9_]{1,63}$", description="default pgtrail_<name>: slot names "
                             "are per cluster, and one cluster often holds several databases of a fleet")
    status_interval: float | None = None
    max_pending_events: int | None = None
    heartbeat_interval: float | None = None
    redaction_key: SecretStr | None = None
    redaction_policy: dict[str, str] | None = None

    @property
    def slot_name(self) -> str:
        return self.slot or f"pgtrail_{self.name}"


class FleetConfig(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    path: Path
    sources: list[SourceEntry]
    consumer: ConsumerSettings
    kafka: KafkaSettings
    sink: SinkSettings

    def consumer_settings(self, entry: SourceEntry) -> ConsumerSettings:
        """The consumer settings of one source: [consumer] defaults, then the source's own values."""
        values = self.consumer.model_dump()
        values.update({k: v for k, v in entry.model_dump(include=_PER_SOURCE).items() if v is not None})
        values.update(source_dsn=entry.dsn, slot=entry.slot_name,
                      redaction_key=entry.redaction_key or self.consumer.redaction_key)
        return ConsumerSettings.model_validate(values)

    def select(self, names: list[str] | None = None, shard: tuple[int, int] | None = None) -> list[SourceEntry]:
        """The sources one process runs: by name, and/or shard k of n (stable: by name, not by order)."""
        chosen = self.sources
        if names:
            unknown = set(names) - {s.name for s in self.sources}
            if unknown:
                raise Fatal(f"no source named {', '.join(sorted(unknown))} in {self.path}")
            chosen = [s for s in chosen if s.name in names]
        if shard:
            k, n = shard
            chosen = [s for s in chosen if zlib.crc32(s.name.encode()) % n == k - 1]
        return chosen


def parse_shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise Fatal(f"--shard {text!r}: write K/N, e.g. 1/3") from None
    if not 1 <= k <= n:
        raise Fatal(f"--shard {text!r}: K must be between 1 and N")
    return k, n


def _section(cls, data: dict[str, Any], where: str, forbidden: set[str] = frozenset()):
    known = set(cls.model_fields) - forbidden
    unknown = set(data) - known
    if unknown:
        raise Fatal(f"{where}: unknown setting(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
    try:
        return cls(**data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err.get("loc", ()))
        raise Fatal(f"{where}{'.' + loc if loc else ''}: {err.get('msg')}") from None


def load(path: str | Path) -> FleetConfig:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise Fatal(f"config file {path} does not exist") from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[:exc.start].count(b"\n") + 1
        raise Fatal(f"{path} is not UTF-8 (byte 0x{exc.object[exc.start]:02x} on line {line}): "
                    "TOML files are UTF-8; convert it, e.g. iconv -f latin1 -t utf-8") from None
    except OSError as exc:
        raise Fatal(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise Fatal(f"{path} is not valid TOML: {exc}") from None
    unknown = set(data) - {"sources", "consumer", "kafka", "sink"}
    if unknown:
        raise Fatal(f"{path}: unknown section(s) {', '.join(sorted(unknown))}; known: consumer, kafka, sink, sources")
    raw_sources = data.get("sources")
    if not isinstance(raw_sources, list) or not raw_sources:
        raise Fatal(f"{path}: no [[sources]]: list at least one source database")
    sources = [_section(SourceEntry, s, f"{path}: sources[{i}]") for i, s in enumerate(raw_sources)]
    seen: dict[str, int] = {}
    for i, s in enumerate(sources):
        if s.name in seen:
            raise Fatal(f"{path}: sources[{i}] and sources[{seen[s.name]}] are both named {s.name!r}")
        seen[s.name] = i
    return FleetConfig(
        path=path, sources=sources,
        consumer=_section(ConsumerSettings, data.get("consumer", {}), f"{path}: [consumer]", {"source_dsn", "slot"}),
        kafka=_section(KafkaSettings, data.get("kafka", {}), f"{path}: [kafka]"),
        sink=_section(SinkSettings, data.get("sink", {}), f"{path}: [sink]"))
