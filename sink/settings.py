"""Sink settings (env prefix PGTRAIL_SINK_ and PGTRAIL_)."""
from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from pgtrail import local


class SinkSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PGTRAIL_SINK_", extra="ignore", populate_by_name=True)

    vault_dsn: SecretStr = Field(default_factory=lambda: SecretStr(local.default_dsn("pgtrail_vault")),
                                 validation_alias=AliasChoices("PGTRAIL_VAULT_DSN", "PGTRAIL_SINK_VAULT_DSN"),
                                 description="libpq DSN of the vault database (may hold a password)")
    group_id: str = Field("pgtrail-sink", min_length=1)
    instance_id: str | None = Field(None, description="static group membership: a restarted sink with the same "
                                    "id takes its partitions back at once instead of after a session timeout")
    session_timeout_ms: int = Field(10000, ge=6000, description="a sink that stops heart-beating loses its "
                                    "partitions to the others after this long")
    kinds: list[str] = Field(["ddl", "dml", "operation", "script", "security", "log_import"],
                             description="event kinds (topics) to load; heartbeats are not stored")
    max_batch: int = Field(5000, ge=1, description="records loaded per vault transaction at most (larger "
                           "batches cost fewer commits and more sink memory: ~30 MB of peak RSS per 3,000 "
                           "8-column row changes)")
    poll_timeout_ms: int = Field(500, ge=10)
    max_event_bytes: int = Field(16 * 1024 * 1024, ge=1024,
                                 description="larger records are dead-lettered as oversized (the consumer keeps "
                                             "its events under the topics' max.message.bytes; keep this above it)")
    poison_ratio_limit: float = Field(0.5, gt=0, le=1, description="stop when this share of recent records is poison")
    poison_window: int = Field(200, ge=10, description="how many recent records the poison ratio looks at")
    metrics_port: int = Field(9642, ge=0, le=65535, description="0 disables the HTTP metrics server")
