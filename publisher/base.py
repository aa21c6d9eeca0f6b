"""The publisher stage's interface, shared by its two Kafka drivers."""
from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, Callable, Protocol

if TYPE_CHECKING:   # not imported at run time: the kafka-python process needs none of the schemas
    from schemas import Event
    from schemas.wire import Encoded, Headers

# Called once per message as on_delivery(error) or on_delivery(error, message): error is None when
# the broker acknowledged the message (acks=all), else what ended its delivery (an exception, or
# librdkafka's KafkaError, whose `retriable()` says what pgtrail.errors.classify_kafka needs).
# Both drivers call it on the thread that calls poll() or flush(), never on a thread of their own,
# so callers keep their counts without locks.
DeliveryCallback = Callable[..., None]


class Publisher(Protocol):
    """Sends records without waiting; reports each delivery through its callback from `poll()`.

    Contract: a callback with error None means the message is durable in Kafka (acks=all,
    idempotent producer: no duplicates or reordering within a partition from retries). Callers
    confirm upstream positions only from those callbacks. `send` never drops a record: when the
    client's own queue is full it serves deliveries until there is room (calling
    `on_backpressure`, so a caller can keep its other connections alive meanwhile).
    """

    on_backpressure: Callable[[], None] | None
    settings: Any  # publisher.settings.KafkaSettings; max_request_size is the largest record sent

    def send(self, topic: str, key: bytes, value: bytes, headers: Headers, on_delivery: DeliveryCallback) -> None: ...

    def poll(self, timeout: float = 0.0) -> None: ...

    def flush(self, timeout: float | None = None) -> None: ...

    def close(self) -> None: ...

    def topic(self, kind: str) -> str: ...

    def publish(self, event: Event | Encoded, on_delivery: DeliveryCallback) -> None: ...

    def dead_letter(self, raw: bytes, reason: str, origin: str, on_delivery: DeliveryCallback) -> None: ...


class TopicPublisher:
    """`publish` and `dead_letter` on top of a driver's `send`: topics `<prefix>.<kind>` and the
    dead-letter topic, keys database.schema.object, CloudEvents headers."""

    on_backpressure: Callable[[], None] | None = None

    def __init__(self, settings: Any):
        self.settings = settings
        self._topics: dict[str, str] = {}

    def send(self, topic: str, key: bytes, value: bytes, headers: Headers, on_delivery: DeliveryCallback) -> None:
        raise NotImplementedError

    def topic(self, kind: str) -> str:
        t = self._topics.get(kind)
        if t is None:
            t = self._topics[kind] = self.settings.topic(kind)
        return t

    def publish(self, event: Event | Encoded, on_delivery: DeliveryCallback) -> None:
        from schemas.wire import Encoded, encode
        enc = event if isinstance(event, Encoded) else encode(event)
        self.send(self.topic(enc.kind), enc.key, enc.value, enc.headers, on_delivery)

    def dead_letter(self, raw: bytes, reason: str, origin: str, on_delivery: DeliveryCallback) -> None:
        headers = [("pgtrail_reason", reason.encode()[:4096]), ("pgtrail_origin", origin.encode())]
        room = self.settings.max_request_size - 8192
        if len(raw) > room:  # kept as far as Kafka takes it: its size and hash say what the rest was
            headers += [("pgtrail_truncated_from", str(len(raw)).encode()),
                        ("pgtrail_sha256", hashlib.sha256(raw).hexdigest().encode())]
            raw = raw[:max(0, room)]
        self.send(self.settings.dead_letter_topic, origin.encode(), raw, headers, on_delivery)


class DeliveryFailed(Exception):
    """A delivery a driver could not even start, classified like the client's own errors."""

    def __init__(self, message: str, retriable: bool):
        super().__init__(message)
        self.retriable = retriable
