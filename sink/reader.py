"""Where the sink reads from: a Kafka consumer group, through the driver `kafka.client` names.

`Reader` is the stage's small interface; `make_reader` picks librdkafka (confluent-kafka, the
default) or kafka-python. Both read in batches, never commit on their own (enable.auto.commit is
off), and commit exactly the offsets the sink hands them, after the vault committed.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from pgtrail.errors import Fatal, classify_kafka
from publisher.settings import KafkaSettings
from sink.settings import SinkSettings

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Rec:
    topic: str
    partition: int
    offset: int
    value: bytes | None


class Reader(Protocol):
    """Batches of records of the group's assigned partitions.

    `poll` raises Retryable while Kafka is unavailable (nothing was taken: nothing to redo) and
    Fatal for what no retry heals. `commit` stores next offsets per (topic, partition); it returns
    False when a rebalance took the partitions (another member re-reads them; the vault ignores
    repeats)."""

    def poll(self, max_records: int, timeout: float) -> list[Rec]: ...

    def commit(self, offsets: dict[tuple[str, int], int]) -> bool: ...

    def assigned(self) -> int: ...

    def close(self) -> None: ...


class KafkaPythonReader:
    def __init__(self, kafka: KafkaSettings, settings: SinkSettings, client_id: str = "pgtrail-sink"):
        from kafka import KafkaConsumer
        from kafka.errors import KafkaError
        try:
            self._consumer = KafkaConsumer(*(kafka.topic(k) for k in settings.kinds), **kafka.client_options(),
                                           group_id=settings.group_id, enable_auto_commit=False,
                                           auto_offset_reset="earliest", client_id=client_id,
                                           group_instance_id=settings.instance_id,
                                           session_timeout_ms=settings.session_timeout_ms,
                                           max_partition_fetch_bytes=kafka.max_request_size)
        except KafkaError as exc:
            raise Fatal(f"cannot reach Kafka at {kafka.bootstrap}: {exc}") from exc

    def poll(self, max_records: int, timeout: float) -> list[Rec]:
        from kafka.errors import KafkaError
        try:
            polled = self._consumer.poll(timeout_ms=int(timeout * 1000), max_records=max_records)
        except KafkaError as exc:
            raise classify_kafka(exc)(f"Kafka consumer failed: {exc}") from exc
        return [Rec(r.topic, r.partition, r.offset, r.value) for batch in polled.values() for r in batch]

    def commit(self, offsets: dict[tuple[str, int], int]) -> bool:
        from kafka import TopicPartition
        from kafka.errors import CommitFailedError, KafkaError
        from kafka.structs import OffsetAndMetadata
        try:
            self._consumer.commit({TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in offsets.items()})
            return True
        except CommitFailedError as exc:
            log.warning("offset commit failed after a rebalance (%s); records will be re-read", exc)
            return False
        except KafkaError as exc:
            raise classify_kafka(exc)(f"committing offsets failed: {exc}") from exc

    def assigned(self) -> int:
        return len(self._consumer.assignment())

    def close(self) -> None:
        self._consumer.close()


class LibrdkafkaReader:
    # The group moved on: this member's commit is void, the new owner re-reads the records.
    _REBALANCED = frozenset(("ILLEGAL_GENERATION", "UNKNOWN_MEMBER_ID", "REBALANCE_IN_PROGRESS", "FENCED_INSTANCE_ID",
                             "_ASSIGNMENT_LOST", "_NO_OFFSET", "STALE_MEMBER_EPOCH"))

    def __init__(self, kafka: KafkaSettings, settings: SinkSettings, client_id: str = "pgtrail-sink"):
        from confluent_kafka import Consumer, KafkaException

        from publisher.librdkafka import check_client_error
        self._bootstrap = kafka.bootstrap
        self._check = check_client_error
        self.client_error: Fatal | None = None
        self._committed: dict[tuple[str, int], int] = {}   # handed to commit(), maybe not yet acknowledged
        conf = kafka.librdkafka_options()
        conf.update({
            "group.id": settings.group_id,
            "client.id": client_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": settings.session_timeout_ms,
            "max.partition.fetch.bytes": kafka.max_request_size,
            "fetch.message.max.bytes": kafka.max_request_size,
            # What librdkafka prefetches, and how soon it fetches again once that is full. Its
            # default backoff (fetch.queue.backoff.ms, 1 s; librdkafka#2879) capped reading at one
            # queue a second: on one partition of ~600-byte events, 8 MB read 17k/s, 16 MB 32k/s,
            # 32 MB 57-64k/s; with 20 ms, 8 MB reads 350k/s. A small queue then costs no speed and
            # keeps the sink's memory down (1M-row transaction, batches of 2,000: 184 -> 130 MB).
            "queued.max.messages.kbytes": 8192,
            "fetch.queue.backoff.ms": 20,
            "error_cb": self._on_error,
            "on_commit": self._on_commit,
            "logger": logging.getLogger("librdkafka"),
        })
        if settings.instance_id:
            conf["group.instance.id"] = settings.instance_id
        try:
            self._consumer = Consumer(conf)
            self._consumer.subscribe([kafka.topic(k) for k in settings.kinds])
        except KafkaException as exc:
            raise Fatal(f"cannot reach Kafka at {kafka.bootstrap}: {exc.args[0].str() if exc.args else exc}") from exc

    def _on_error(self, err) -> None:
        fatal = self._check(err, self._bootstrap)
        if fatal is not None and self.client_error is None:
            self.client_error = fatal
        log.debug("librdkafka: %s", err.str())

    def poll(self, max_records: int, timeout: float) -> list[Rec]:
        from confluent_kafka import KafkaError, KafkaException
        try:
            # librdkafka waits for a full batch or the timeout: ask in slices of 50 ms, so a batch
            # that is there is loaded at once (latency) while a busy topic still fills whole batches
            msgs = []
            waited = 0.0
            while not msgs and waited < timeout:
                msgs = self._consumer.consume(num_messages=max_records, timeout=min(0.05, timeout))
                waited += 0.05
        except KafkaException as exc:
            err = exc.args[0] if exc.args else exc
            raise classify_kafka(err)(f"Kafka consumer failed: {err}") from exc
        if self.client_error is not None:
            raise self.client_error
        out: list[Rec] = []
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                # Retryable: librdkafka reconnects and refetches by itself (a broker restarting, a leader moving)
                raise classify_kafka(err)(f"Kafka consumer: {err.str()}")
            out.append(Rec(m.topic(), m.partition(), m.offset(), m.value()))
        return out

    def commit(self, offsets: dict[tuple[str, int], int]) -> bool:
        """Asynchronous: the sink's thread does not wait a round trip per batch (the vault has the
        batch already; an offset not stored only means records read again and ignored). The answer
        comes to _on_commit inside a later poll; close() commits the last offsets synchronously."""
        from confluent_kafka import KafkaException, TopicPartition
        self._committed.update(offsets)
        try:
            self._consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                                  asynchronous=True)
            return True
        except KafkaException as exc:
            return self._commit_failed(exc.args[0] if exc.args else None, exc)

    def _on_commit(self, err, partitions) -> None:
        from confluent_kafka import KafkaError
        if err is None:
            err = next((tp.error for tp in partitions or () if tp.error is not None), None)
        if err is None or err.code() == KafkaError._NO_OFFSET:
            return
        try:
            self._commit_failed(err, None)
        except Fatal as exc:
            if self.client_error is None:
                self.client_error = exc   # raised by the next poll
        except Exception as exc:  # noqa: BLE001 - Retryable: the next commit covers these offsets
            log.warning("%s; the records will be re-read and ignored unless a later commit covers them", exc)

    def _commit_failed(self, err, exc) -> bool:
        name = err.name() if err is not None else ""
        if name in self._REBALANCED:
            log.warning("offset commit failed after a rebalance (%s); records will be re-read", name)
            return False
        # NOT_COORDINATOR, a broker restarting...: Retryable; the vault has the batch, the next commit covers it
        raise classify_kafka(err if err is not None else exc)(
            f"committing offsets failed: {err.str() if err is not None else exc}") from exc

    def assigned(self) -> int:
        return len(self._consumer.assignment())

    def close(self) -> None:
        from confluent_kafka import KafkaException, TopicPartition
        mine = {(tp.topic, tp.partition) for tp in self._consumer.assignment()}
        last = [TopicPartition(t, p, o) for (t, p), o in self._committed.items() if (t, p) in mine]
        if last:
            try:   # the last asynchronous commit may still be on its way: make it certain
                self._consumer.commit(offsets=last, asynchronous=False)
            except KafkaException as exc:
                log.warning("final offset commit failed (%s); the last records will be re-read and ignored",
                            exc.args[0].str() if exc.args else exc)
        self._consumer.close()


class ListReader:
    """A Reader over bodies in memory, one topic and partition, `batch` records a poll at most:
    the sink without Kafka (bench.vault, tests). `commits` holds each commit's next offset."""

    def __init__(self, bodies: list[bytes], batch: int, topic: str = "t.dml"):
        self.bodies, self.batch, self.topic, self.at = bodies, batch, topic, 0
        self.commits: list[int] = []

    def poll(self, max_records: int, timeout: float) -> list[Rec]:
        start, self.at = self.at, min(len(self.bodies), self.at + min(max_records, self.batch))
        return [Rec(self.topic, 0, i, self.bodies[i]) for i in range(start, self.at)]

    def commit(self, offsets: dict[tuple[str, int], int]) -> bool:
        self.commits.append(offsets[(self.topic, 0)])
        return True

    def done(self) -> bool:
        """Every body committed."""
        return bool(self.commits) and self.commits[-1] >= len(self.bodies)

    def assigned(self) -> int:
        return 1

    def close(self) -> None:
        pass


def make_reader(kafka: KafkaSettings, settings: SinkSettings, client_id: str = "pgtrail-sink") -> Reader:
    if kafka.client == "kafka-python":
        return KafkaPythonReader(kafka, settings, client_id)
    return LibrdkafkaReader(kafka, settings, client_id)
