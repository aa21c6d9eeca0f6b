"""The kafka-python driver of the publisher: pure Python, no native code; acks=all, idempotent."""
from __future__ import annotations

import logging
import time
from collections import deque
from typing import TYPE_CHECKING

from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError

from pgtrail.errors import Fatal
from publisher.base import DeliveryCallback, TopicPublisher
from publisher.partitioner import CachedKeyPartitioner
from publisher.settings import KafkaSettings

if TYPE_CHECKING:
    from schemas.wire import Headers

log = logging.getLogger(__name__)


class KafkaPythonPublisher(TopicPublisher):
    """Publishes through kafka-python's KafkaProducer.

    Guarantee: `on_delivery(None)` only after every in-sync replica has the message (acks=all);
    the idempotent producer keeps retries from duplicating or reordering within a partition.

    `send` is called on the caller's thread (measured: a thread of our own feeding the client, as
    before, costs more in GIL hand-offs than it saves). The client's I/O thread completes futures;
    their results are queued and the callbacks run in `poll()`/`flush()` on the caller's thread.
    `max_block_ms` is short, so a full buffer or missing metadata never holds the caller for long:
    it serves deliveries (and `on_backpressure`) and tries again, never dropping the record.
    """

    def __init__(self, settings: KafkaSettings, client_id: str = "pgtrail-consumer"):
        super().__init__(settings)
        try:
            self._producer = KafkaProducer(
                **settings.client_options(),
                partitioner=CachedKeyPartitioner(),
                client_id=client_id,
                acks="all",
                enable_idempotence=True,
                max_in_flight_requests_per_connection=5,
                linger_ms=settings.linger_ms,
                batch_size=settings.batch_size,
                max_request_size=settings.max_request_size,
                request_timeout_ms=settings.request_timeout_ms,
                max_block_ms=1000,
            )
        except KafkaError as exc:
            from publisher.topics import security_hint
            raise Fatal(f"cannot reach Kafka at {settings.bootstrap}: {exc}{security_hint(settings)}") from exc
        self._done: deque = deque()  # (callback, error) appended by the I/O thread; deque ops are atomic

    def _complete(self, on_delivery: DeliveryCallback, result) -> None:
        self._done.append((on_delivery, result if isinstance(result, BaseException) else None))

    def send(self, topic: str, key: bytes, value: bytes, headers: Headers, on_delivery: DeliveryCallback) -> None:
        while True:
            try:
                future = self._producer.send(topic, value=value, key=key, headers=headers)
                break
            except KafkaTimeoutError:  # buffer full or no metadata yet: back-pressure, not a failure
                self.poll(0.05)
                if self.on_backpressure is not None:
                    self.on_backpressure()
            except Exception as exc:  # noqa: BLE001 - a send that cannot start is a failed delivery
                self._done.append((on_delivery, exc))
                return
        future.add_both(self._complete, on_delivery)

    def poll(self, timeout: float = 0.0) -> None:
        done = self._done
        if not done and timeout > 0:
            # kafka-python has no poll of its own: wait briefly for the I/O thread instead of spinning
            deadline = time.monotonic() + timeout
            while not done and time.monotonic() < deadline:
                time.sleep(0.001)
        while done:
            cb, exc = done.popleft()
            cb(exc)

    def flush(self, timeout: float | None = None) -> None:
        try:
            self._producer.flush(timeout=timeout)
        except KafkaTimeoutError:
            log.warning("Kafka flush timed out after %ss", timeout)
        self.poll()

    def close(self) -> None:
        self._producer.close(timeout=10)
        self.poll()
