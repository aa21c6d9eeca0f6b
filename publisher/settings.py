"""Kafka client settings (env prefix PGTRAIL_KAFKA_), shared by every pgtrail Kafka client."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pgtrail import local


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PGTRAIL_KAFKA_", extra="ignore")

    client: Literal["librdkafka", "kafka-python"] = Field(
        "librdkafka", description="Kafka driver: librdkafka (confluent-kafka, keeps up with PostgreSQL's decoding) "
                                  "or kafka-python (pure Python, no native code, about a third of the rate)")
    python_client_process: bool = Field(
        True, description="kafka-python only: run the client in a process of its own, so its Python work runs "
                          "on another CPU beside the caller's (one more process of ~40 MB per publisher)")
    bootstrap: str = Field(default_factory=local.default_bootstrap,
                           description="comma-separated host:port list; by default the local service's "
                                       "(PGTRAIL_KAFKA_PORT)")
    topic_prefix: str = Field("pgtrail", pattern=r"^[A-Za-z0-9._-]+$")
    linger_ms: int = Field(5, ge=0)
    batch_size: int = Field(262144, ge=1024)
    max_request_size: int = Field(10485760, ge=1024)
    request_timeout_ms: int = Field(30000, ge=1000)
    # Security: passed through to every client (producer, sink consumer, admin, tail).
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = Field(None, description="never logged; prefer the environment to a file")
    ssl_cafile: str | None = Field(None, description="CA bundle that signed the brokers' certificates")
    ssl_certfile: str | None = Field(None, description="client certificate, for brokers that require one")
    ssl_keyfile: str | None = None
    ssl_password: SecretStr | None = Field(None, description="password of ssl_keyfile")
    ssl_check_hostname: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> "KafkaSettings":
        sasl = self.security_protocol.startswith("SASL_")
        if sasl and not (self.sasl_mechanism and self.sasl_username and self.sasl_password):
            raise ValueError(f"security_protocol {self.security_protocol} needs sasl_mechanism, sasl_username "
                             "and sasl_password")
        if not sasl and self.sasl_mechanism:
            raise ValueError(f"sasl_mechanism is set but security_protocol is {self.security_protocol}: "
                             "use SASL_PLAINTEXT or SASL_SSL")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("ssl_certfile and ssl_keyfile go together")
        return self

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments common to kafka-python's producer, consumer and admin client."""
        opts: dict[str, Any] = {"bootstrap_servers": self.bootstrap.split(","),
                                "security_protocol": self.security_protocol}
        if self.security_protocol.startswith("SASL_"):
            opts.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.sasl_username,
                        sasl_plain_password=self.sasl_password.get_secret_value())
        if self.security_protocol.endswith("SSL"):
            opts.update(ssl_cafile=self.ssl_cafile, ssl_certfile=self.ssl_certfile, ssl_keyfile=self.ssl_keyfile,
                        ssl_password=self.ssl_password.get_secret_value() if self.ssl_password else None,
                        ssl_check_hostname=self.ssl_check_hostname)
        return opts

    def librdkafka_options(self) -> dict[str, Any]:
        """The same settings as librdkafka configuration properties (producer and consumer)."""
        opts: dict[str, Any] = {"bootstrap.servers": self.bootstrap,
                                "security.protocol": self.security_protocol.lower()}
        if self.security_protocol.startswith("SASL_"):
            opts.update({"sasl.mechanism": self.sasl_mechanism, "sasl.username": self.sasl_username,
                         "sasl.password": self.sasl_password.get_secret_value()})
        if self.security_protocol.endswith("SSL"):
            opts["ssl.endpoint.identification.algorithm"] = "https" if self.ssl_check_hostname else "none"
            for prop, value in (("ssl.ca.location", self.ssl_cafile), ("ssl.certificate.location", self.ssl_certfile),
                                ("ssl.key.location", self.ssl_keyfile)):
                if value:
                    opts[prop] = value
            if self.ssl_password:
                opts["ssl.key.password"] = self.ssl_password.get_secret_value()
        return opts

    def topic(self, kind: str) -> str:
        return f"{self.topic_prefix}.{kind}"

    @property
    def dead_letter_topic(self) -> str:
        return self.topic("deadletter")
