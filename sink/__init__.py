"""Kafka consumer group -> Data Vault loader; offsets committed after the vault commits."""
