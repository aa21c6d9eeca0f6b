"""Events -> Kafka. `Publisher` is the stage's interface; `KafkaPublisher` its backend."""
from publisher.base import DeliveryCallback, Publisher
from publisher.kafka import KafkaPublisher
from publisher.settings import KafkaSettings

__all__ = ["DeliveryCallback", "KafkaPublisher", "KafkaSettings", "Publisher"]
