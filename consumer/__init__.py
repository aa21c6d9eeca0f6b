"""Replication stream reader -> wal2json decoder -> normalizer into schemas' events."""
