"""Partitioning: the client's default rule, with each key's hash remembered."""
from __future__ import annotations

from kafka.partitioner import DefaultPartitioner, Partitioner
from kafka.partitioner.default import murmur2


class CachedKeyPartitioner(Partitioner):
    """Exactly the default partitioner (murmur2 of the key, as the Java client: the same key goes
    to the same partition whoever produces it), with each key's hash remembered.

    pgtrail's keys repeat — one per object (database.schema.table) — and kafka-python's murmur2 is
    pure Python: hashing every record's key again was about a third of the cost of a send. The
    partition count is read from the cluster metadata at every call, as the default does, so a
    topic given more partitions is followed at once.
    """

    def __init__(self, max_keys: int = 100_000):
        self._hashes: dict[bytes, int] = {}
        self._max_keys = max_keys
        self._default = DefaultPartitioner()

    def partition(self, topic, key, serialized_key, value, serialized_value, cluster):
        if serialized_key is None:
            return self._default.partition(topic, key, serialized_key, value, serialized_value, cluster)
        h = self._hashes.get(serialized_key)
        if h is None:
            if len(self._hashes) >= self._max_keys:
                self._hashes.clear()
            h = self._hashes[serialized_key] = murmur2(serialized_key) & 0x7fffffff
        partitions = cluster.partitions_for_topic(topic)
        if not partitions:
            raise ValueError(f"Topic {topic} not found in ClusterMetadata")
        return sorted(partitions)[h % len(partitions)]
