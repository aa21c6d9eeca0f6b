"""Kafka producer settings (env prefix PGTRAIL_KAFKA_)."""
from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PGTRAIL_KAFKA_", extra="ignore")

    bootstrap: str = Field("127.0.0.1:19092", description="comma-separated host:port list")
    topic_prefix: str = Field("pgtrail", pattern=r"^[A-Za-z0-9._-]+$")
    linger_ms: int = Field(5, ge=0)
    batch_size: int = Field(262144, ge=1024)
    max_request_size: int = Field(10485760, ge=1024)
    request_timeout_ms: int = Field(30000, ge=1000)

    def topic(self, kind: str) -> str:
        return f"{self.topic_prefix}.{kind}"

    @property
    def dead_letter_topic(self) -> str:
        return self.topic("deadletter")
