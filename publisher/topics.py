"""Create pgtrail's topics when missing (brokers in production often forbid auto-creation)."""
from __future__ import annotations

import logging
import socket

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic

from kafka.errors import KafkaError, TopicAlreadyExistsError

from pgtrail.errors import Fatal
from publisher.settings import KafkaSettings

log = logging.getLogger(__name__)


def check_reachable(settings: KafkaSettings, timeout: float = 5.0) -> None:
    """Fail fast, in one line, when no bootstrap server accepts a connection (the client itself
    would retry for half a minute and end in a generic timeout)."""
    errors = []
    for server in settings.bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            socket.create_connection((host or "localhost", int(port)), timeout=timeout).close()
            return
        except (OSError, ValueError) as exc:
            errors.append(f"{server}: {exc}")
    raise Fatal(f"cannot reach Kafka at {settings.bootstrap} ({'; '.join(errors)}): check "
                "PGTRAIL_KAFKA_BOOTSTRAP and that the broker is running (make start)")


def security_hint(settings: KafkaSettings) -> str:
    """What to check when a broker accepts TCP but the client cannot bootstrap: brokers close the
    connection on a failed SASL handshake without saying why, so the client only sees a timeout."""
    if settings.security_protocol == "PLAINTEXT":
        return ("; the port accepts connections: if the listener needs TLS or SASL, set "
                "PGTRAIL_KAFKA_SECURITY_PROTOCOL and the matching settings")
    who = f", user {settings.sasl_username}" if settings.sasl_username else ""
    return (f" (security_protocol {settings.security_protocol}, mechanism {settings.sasl_mechanism}{who}): "
            "check the credentials, the mechanism and that this port is that listener")


def ensure_topics(settings: KafkaSettings, kinds: list[str], partitions: int = 3) -> KafkaSettings:
    """Create the missing topics. Returns `settings` with max_request_size lowered to the topics'
    smallest max.message.bytes, the largest record every one of them takes (what the consumer's
    oversize handling must stay under, and what the producer then refuses locally, at once)."""
    names = [settings.topic(k) for k in kinds] + [settings.dead_letter_topic]
    check_reachable(settings)
    try:
        admin = KafkaAdminClient(client_id="pgtrail-admin", **settings.client_options())
    except KafkaError as exc:
        raise Fatal(f"cannot reach Kafka at {settings.bootstrap}: {exc}{security_hint(settings)}") from exc
    try:
        try:
            existing = set(admin.list_topics())
            missing = [NewTopic(n, partitions, 1) for n in names if n not in existing]
            if missing:
                try:
                    admin.create_topics(missing)
                except TopicAlreadyExistsError:
                    pass  # another process created them first
        except KafkaError as exc:
            raise Fatal(f"cannot create topics on {settings.bootstrap}: {exc}") from exc
        try:
            limit = _message_limit(admin, names)
        except (KafkaError, ValueError, KeyError, TypeError) as exc:  # not allowed to describe: keep the setting
            log.warning("cannot read the topics' max.message.bytes (%s); assuming max_request_size %d",
                        exc, settings.max_request_size)
            limit = None
    finally:
        admin.close()
    if limit is not None and limit < settings.max_request_size:
        return settings.model_copy(update={"max_request_size": limit})
    return settings


def _message_limit(admin: KafkaAdminClient, names: list[str]) -> int | None:
    found = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n, configs=["max.message.bytes"])
                                    for n in names], config_filter="all")
    values = [int(cfg["max.message.bytes"]["value"]) for cfg in found.get("topic", {}).values()
              if "max.message.bytes" in cfg]
    return min(values) if values else None
