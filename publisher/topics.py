"""Create pgtrail's topics when missing (brokers in production often forbid auto-creation)."""
from __future__ import annotations

from kafka.admin import KafkaAdminClient, NewTopic
import socket

from kafka.errors import KafkaError, TopicAlreadyExistsError

from pgtrail.errors import Fatal
from publisher.settings import KafkaSettings


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


def ensure_topics(settings: KafkaSettings, kinds: list[str], partitions: int = 3) -> None:
    names = [settings.topic(k) for k in kinds] + [settings.dead_letter_topic]
    check_reachable(settings)
    try:
        admin = KafkaAdminClient(client_id="pgtrail-admin", **settings.client_options())
    except KafkaError as exc:
        raise Fatal(f"cannot reach Kafka at {settings.bootstrap}: {exc}{security_hint(settings)}") from exc
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
    finally:
        admin.close()
