"""The publisher stage's interface."""
from __future__ import annotations

from typing import Callable, Protocol

from schemas import Event

# Called once per message, from the client's I/O thread: None when the broker acknowledged it,
# else the exception that ended its delivery.
DeliveryCallback = Callable[[BaseException | None], None]


class Publisher(Protocol):
    """Sends events without waiting; reports each delivery through its callback.

    Contract: a callback with None means the message is durable in Kafka (acks=all). Callers
    confirm upstream positions only from those callbacks.
    """

    def publish(self, event: Event, on_delivery: DeliveryCallback) -> None: ...

    def dead_letter(self, raw: bytes, reason: str, origin: str, on_delivery: DeliveryCallback) -> None: ...

    def flush(self, timeout: float | None = None) -> None: ...

    def close(self) -> None: ...
