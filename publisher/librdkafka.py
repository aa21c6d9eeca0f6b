"""The librdkafka driver of the publisher (confluent-kafka): the default, because it keeps up
with PostgreSQL's own decoding rate; acks=all, idempotent."""
from __future__ import annotations

import logging

from confluent_kafka import KafkaError, KafkaException, Producer

from pgtrail.errors import Fatal, classify_kafka
from publisher.base import DeliveryCallback, TopicPublisher
from publisher.settings import KafkaSettings
from schemas.wire import Headers

log = logging.getLogger(__name__)


def check_client_error(err: KafkaError, bootstrap: str) -> Fatal | None:
    """A client-level error that no retry heals (pgtrail.errors.classify_kafka), as a one-line Fatal
    saying what to check; else None: librdkafka reconnects by itself, e.g. while a broker restarts."""
    if classify_kafka(err) is not Fatal:
        return None
    code = err.code()
    if code == KafkaError._AUTHENTICATION or code == KafkaError.SASL_AUTHENTICATION_FAILED:
        return Fatal(f"Kafka at {bootstrap} refused the credentials ({err.str()}): check "
                     "PGTRAIL_KAFKA_SASL_USERNAME/_PASSWORD, the mechanism and that this port is that listener")
    if code == KafkaError._SSL:
        return Fatal(f"TLS with Kafka at {bootstrap} failed ({err.str()}): check the CA, certificates and "
                     "PGTRAIL_KAFKA_SECURITY_PROTOCOL")
    return Fatal(f"the Kafka client failed for good: {err.str()}")


class LibrdkafkaPublisher(TopicPublisher):
    """Publishes through librdkafka's producer.

    Guarantee: `on_delivery(None, msg)` only after every in-sync replica has the message
    (acks=all); enable.idempotence keeps retries from duplicating or reordering within a
    partition. Keys go to partitions by murmur2, the Java client's (and kafka-python's) rule, so
    switching drivers never moves an object's events to another partition.

    `produce()` never blocks; librdkafka's own threads do the I/O; delivery callbacks run inside
    `poll()`/`flush()` on the caller's thread. A full local queue (BufferError) is back-pressure:
    serve deliveries and try again, never drop.
    """

    def __init__(self, settings: KafkaSettings, client_id: str = "pgtrail-consumer"):
        super().__init__(settings)
        self.client_error: Fatal | None = None
        conf = settings.librdkafka_options()
        conf.update({
            "client.id": client_id,
            "acks": "all",
            "enable.idempotence": True,
            "max.in.flight.requests.per.connection": 5,
            "linger.ms": settings.linger_ms,
            "batch.size": settings.batch_size,
            "message.max.bytes": settings.max_request_size,
            "request.timeout.ms": settings.request_timeout_ms,
            "message.timeout.ms": 120000,
            "partitioner": "murmur2_random",
            "queue.buffering.max.messages": 1_000_000,
            "error_cb": self._on_error,
            "logger": logging.getLogger("librdkafka"),
        })
        try:
            self._producer = Producer(conf)
        except KafkaException as exc:
            raise Fatal(f"Kafka producer failed to start: {exc.args[0].str() if exc.args else exc}") from exc
        self._produce = self._producer.produce
        self._poll = self._producer.poll
        self._check_connection(min(10.0, settings.request_timeout_ms / 1000))

    def _check_connection(self, timeout: float) -> None:
        """Fail at start, in one line, when no broker answers or the credentials are refused
        (librdkafka itself would retry quietly until each message timed out)."""
        from publisher.topics import security_hint
        try:
            self._producer.list_topics(timeout=timeout)
        except KafkaException as exc:
            self._poll(0)  # serve error_cb: an authentication failure is reported there
            if self.client_error is not None:
                raise self.client_error from None
            err = exc.args[0].str() if exc.args else str(exc)
            raise Fatal(f"cannot reach Kafka at {self.settings.bootstrap} ({err}){security_hint(self.settings)}") from None
        self._poll(0)
        if self.client_error is not None:
            raise self.client_error

    def _on_error(self, err: KafkaError) -> None:
        fatal = check_client_error(err, self.settings.bootstrap)
        if fatal is not None and self.client_error is None:
            self.client_error = fatal
        log.debug("librdkafka: %s", err.str())

    def send(self, topic: str, key: bytes, value: bytes, headers: Headers, on_delivery: DeliveryCallback) -> None:
        try:
            self._produce(topic, value, key, headers=headers, on_delivery=on_delivery)
        except BufferError:
            while True:  # the local queue is full: back-pressure, never a drop
                self._poll(0.05)
                if self.on_backpressure is not None:
                    self.on_backpressure()
                try:
                    self._produce(topic, value, key, headers=headers, on_delivery=on_delivery)
                    return
                except BufferError:
                    continue
        except KafkaException as exc:  # e.g. MSG_SIZE_TOO_LARGE: a failed delivery, reported as one
            on_delivery(exc.args[0] if exc.args else exc, None)

    def poll(self, timeout: float = 0.0) -> None:
        self._poll(timeout)
        if self.client_error is not None:
            raise self.client_error

    def flush(self, timeout: float | None = None) -> None:
        left = self._producer.flush(-1 if timeout is None else timeout)
        if left:
            log.warning("Kafka flush left %d message(s) unacknowledged after %ss", left, timeout)
        if self.client_error is not None:
            raise self.client_error

    def close(self) -> None:
        self._producer.flush(10)
