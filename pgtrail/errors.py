"""Errors named by what the caller must do.

- `Retryable`: back off and try again (connection lost, serialization failure, broker busy).
- `Poison`: this one message can never be processed; dead-letter it and go on.
- `Fatal`: configuration or a bug; stop with a one-line message that says what to fix.

Database errors are classified by SQLSTATE class, Kafka errors by their `retriable` flag; never
by message text.
"""
from __future__ import annotations


class PgtrailError(Exception):
    """Base of pgtrail's classified errors."""


class Retryable(PgtrailError):
    """Transient: retry the same work after a back-off."""


class Poison(PgtrailError):
    """This message can never be processed: send it to the dead-letter topic with this reason."""


class Fatal(PgtrailError):
    """Stop: the message says what to fix."""


# SQLSTATE classes / codes that heal by retrying.
_RETRYABLE_CLASSES = {"08", "53", "57", "58"}  # connection, resources, operator intervention, system
_RETRYABLE_CODES = {"40001", "40P01", "55P03"}  # serialization failure, deadlock, lock not available
# SQLSTATE classes that mean the data itself cannot be stored.
_POISON_CLASSES = {"22", "23"}  # data exception, integrity constraint violation


def classify_sqlstate(sqlstate: str | None) -> type[PgtrailError]:
    """Map a SQLSTATE to what the caller must do. None (no server answer) is a lost connection."""
    if sqlstate is None:
        return Retryable
    if sqlstate in _RETRYABLE_CODES or sqlstate[:2] in _RETRYABLE_CLASSES:
        return Retryable
    if sqlstate[:2] in _POISON_CLASSES:
        return Poison
    return Fatal


def classify_kafka(exc: BaseException) -> type[PgtrailError]:
    """Kafka errors carry a `retriable` flag (kafka-python: an attribute; librdkafka's KafkaError:
    a method); anything else from the client is fatal."""
    retriable = getattr(exc, "retriable", False)
    if callable(retriable):
        # librdkafka's KafkaError: retriable() marks what librdkafka itself retries per request; a
        # delivery that failed after those retries (timed out while a broker restarted, say) heals
        # by starting again from the last confirmed position, unless no retry can change it.
        return Fatal if exc.fatal() or exc.name() in _LIBRDKAFKA_FOR_GOOD else Retryable
    return Retryable if retriable else Fatal


_LIBRDKAFKA_FOR_GOOD = frozenset((
    "_AUTHENTICATION", "SASL_AUTHENTICATION_FAILED", "_SSL", "TOPIC_AUTHORIZATION_FAILED",
    "CLUSTER_AUTHORIZATION_FAILED", "GROUP_AUTHORIZATION_FAILED", "MSG_SIZE_TOO_LARGE", "_MSG_SIZE_TOO_LARGE",
    "_INVALID_ARG", "INVALID_CONFIG", "_UNKNOWN_TOPIC", "UNSUPPORTED_VERSION"))
