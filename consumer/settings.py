"""Consumer settings (env prefix PGTRAIL_)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from pgtrail import local


class ConsumerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PGTRAIL_", extra="ignore")

    source_dsn: SecretStr = Field(default_factory=lambda: SecretStr(local.default_dsn("pgtrail_source")),
                                  description="libpq DSN of the source database (may hold a password); by default "
                                              "the local service's (PGTRAIL_PG_PORT)")
    slot: str = Field("pgtrail", pattern=r"^[a-z0-9_]{1,63}$", description="logical replication slot")
    status_interval: float = Field(10.0, gt=0, description="seconds between standby status updates")
    max_pending_events: int = Field(
        5000, ge=1, description="stop reading WAL while this many events await Kafka (5,000: as fast as 20,000 "
                                "with either driver, and the kafka-python client process holds a quarter of the "
                                "records)")
    consumer_metrics_port: int = Field(9641, ge=0, le=65535, description="0 disables the HTTP metrics server")
    heartbeat_interval: float = Field(10.0, ge=0, description="seconds between heartbeats; 0 disables them")
    redaction_key: SecretStr | None = Field(None, description="HMAC key for hashed values; by default derived "
                                            "from the source's first signing key")
    redaction_policy: dict[Literal["PII", "PHI", "FINANCIAL"], Literal["mask", "hash", "drop", "keep"]] = Field(
        default_factory=dict, description='per class, e.g. {"PII": "mask"}; defaults PII=hash, PHI=drop, FINANCIAL=mask')
