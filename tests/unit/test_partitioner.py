"""The cached partitioner puts every key where the client's default partitioner would."""
from kafka.partitioner import DefaultPartitioner

from publisher.partitioner import CachedKeyPartitioner


class Cluster:
    def __init__(self, n):
        self.n = n

    def topics(self):
        return {"t"}

    def partitions_for_topic(self, topic):
        return set(range(self.n)) if topic == "t" else None

    def available_partitions_for_topic(self, topic):
        return set(range(self.n))


def test_same_partition_as_the_default_for_every_key_and_partition_count():
    cached, default = CachedKeyPartitioner(max_keys=500), DefaultPartitioner()
    for n in (1, 3, 7, 12):
        for i in range(3000):  # more keys than the cache holds: it is emptied and refilled
            key = f"db{i % 11}.public.t{i % 997}".encode()
            assert cached.partition("t", None, key, None, None, Cluster(n)) == \
                default.partition("t", None, key, None, None, Cluster(n)), (n, key)


def test_more_partitions_are_followed_at_once():
    cached = CachedKeyPartitioner()
    key = b"db.public.orders"
    first = cached.partition("t", None, key, None, None, Cluster(3))
    assert 0 <= first < 3
    assert cached.partition("t", None, key, None, None, Cluster(12)) == \
        DefaultPartitioner().partition("t", None, key, None, None, Cluster(12))
