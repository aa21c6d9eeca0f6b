import pytest

from kafka.errors import CommitFailedError, KafkaTimeoutError
from pgtrail.errors import Fatal, Poison, Retryable, classify_kafka, classify_sqlstate


@pytest.mark.parametrize("state,kind", [
    (None, Retryable), ("08006", Retryable), ("40001", Retryable), ("40P01", Retryable), ("57P01", Retryable),
    ("53300", Retryable), ("22P02", Poison), ("23505", Poison), ("42P01", Fatal), ("42501", Fatal), ("XX000", Fatal),
])
def test_sqlstate_classes(state, kind):
    assert classify_sqlstate(state) is kind


def test_kafka_by_retriable_flag():
    assert classify_kafka(KafkaTimeoutError()) is Retryable
    assert classify_kafka(CommitFailedError()) is Fatal
    assert classify_kafka(ValueError()) is Fatal


def test_librdkafka_errors_are_classified_by_what_heals_them():
    from confluent_kafka import KafkaError

    from pgtrail.errors import Fatal, Retryable, classify_kafka
    assert classify_kafka(KafkaError(KafkaError._MSG_TIMED_OUT)) is Retryable  # a broker restarting
    assert classify_kafka(KafkaError(KafkaError.NOT_COORDINATOR)) is Retryable
    assert classify_kafka(KafkaError(KafkaError._AUTHENTICATION)) is Fatal
    assert classify_kafka(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)) is Fatal
    assert classify_kafka(KafkaError(KafkaError._FATAL, fatal=True)) is Fatal
