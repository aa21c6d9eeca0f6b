"""Events -> Kafka. `Publisher` is the stage's interface; `make_publisher` picks its driver
(`kafka.client`: librdkafka by default, or kafka-python)."""
from publisher.base import DeliveryCallback, Publisher
from publisher.settings import KafkaSettings


def make_publisher(settings: KafkaSettings, client_id: str = "pgtrail-consumer") -> Publisher:
    if settings.client == "kafka-python":
        if settings.python_client_process:
            from publisher.kafka_python_process import KafkaPythonProcessPublisher
            return KafkaPythonProcessPublisher(settings, client_id)
        from publisher.kafka_python import KafkaPythonPublisher
        return KafkaPythonPublisher(settings, client_id)
    from publisher.librdkafka import LibrdkafkaPublisher
    return LibrdkafkaPublisher(settings, client_id)


__all__ = ["DeliveryCallback", "KafkaSettings", "Publisher", "make_publisher"]
