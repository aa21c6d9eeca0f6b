"""kafka-python in a process of its own: the pure-Python driver on a second CPU.

kafka-python's send path is Python: in the consumer's process it shares one GIL with decoding,
normalising and serialising, so the two add up (bench.capture: pgtrail with the in-process driver
~0.7x of a bare kafka-python loop). Here the parent keeps the Publisher interface and only frames
records; a child process (`python -m publisher.kafka_python_process`) runs KafkaPythonPublisher
and sends back each record's outcome. The two work at once.

Same guarantees as the in-process driver, because the child *is* that driver: acks=all, the
idempotent producer, per-key order (records cross the pipe in send order, the child sends them
in that order). A callback runs in the parent's `poll()`/`flush()` only when the child reported
the broker's acknowledgement (or the error that ended the delivery, rebuilt as the same
kafka-python error class, so pgtrail.errors.classify_kafka decides as before). If the child
dies, every record it had not reported fails with a retriable error: nothing is confirmed that
Kafka does not have.

Pipes: frames of a 4-byte length and a msgpack body. The parent writes without blocking (a full
pipe is back-pressure: it serves outcomes and calls `on_backpressure`); the child reads on its
main thread and reports from a thread of its own, so neither side can wait on the other in a
circle. The settings (secrets included) go through the pipe, never argv or the environment.
"""
from __future__ import annotations

import fcntl
import logging
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from typing import TYPE_CHECKING

import msgspec
from pydantic import SecretStr

from pgtrail.errors import Fatal
from publisher.base import DeliveryCallback, DeliveryFailed, TopicPublisher
from publisher.settings import KafkaSettings

if TYPE_CHECKING:
    from schemas.wire import Headers

log = logging.getLogger(__name__)

_LEN = struct.Struct("!I")
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder().decode
_SEND_BATCH = 500            # records per frame to the child
_MAX_UNSENT = 8 << 20        # bytes framed for the child and not yet in the pipe, before back-pressure
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_START_TIMEOUT = 60.0        # seconds for the child to import kafka-python and reach the brokers


def _frame(obj) -> bytes:
    body = _encode(obj)
    return _LEN.pack(len(body)) + body


class _Frames:
    """Complete frames out of a byte stream read in pieces."""

    def __init__(self):
        self._buf = bytearray()

    def feed(self, data: bytes) -> list:
        buf = self._buf
        buf += data
        out, pos = [], 0
        while len(buf) - pos >= 4:
            (n,) = _LEN.unpack_from(buf, pos)
            if len(buf) - pos - 4 < n:
                break
            out.append(_decode(buf[pos + 4:pos + 4 + n]))
            pos += 4 + n
        del buf[:pos]
        return out


def _settings_for_child(settings: KafkaSettings) -> dict:
    values = settings.model_dump()
    return {k: v.get_secret_value() if isinstance(v, SecretStr) else v for k, v in values.items()}


def _error(cls_name: str, message: str, retriable: bool) -> BaseException:
    """The child's delivery error as the kafka-python class it was (classify_kafka reads its
    `retriable` attribute), else a DeliveryFailed with the child's verdict."""
    import kafka.errors
    cls = getattr(kafka.errors, cls_name, None)
    if isinstance(cls, type) and issubclass(cls, kafka.errors.KafkaError):
        return cls(message)
    return DeliveryFailed(f"{cls_name}: {message}", retriable)


class KafkaPythonProcessPublisher(TopicPublisher):
    """The Publisher interface in this process; kafka-python's producer in a child process."""

    def __init__(self, settings: KafkaSettings, client_id: str = "pgtrail-consumer"):
        super().__init__(settings)
        self._proc = subprocess.Popen([sys.executable, "-m", "publisher.kafka_python_process"],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True)
        self._wfd, self._rfd = self._proc.stdin.fileno(), self._proc.stdout.fileno()
        self._frames = _Frames()
        self._pending: dict[int, DeliveryCallback] = {}
        self._seq = 0
        self._batch: list = []            # records not yet framed
        self._batch_first = 0
        self._unsent = bytearray()        # framed, not yet written to the pipe
        self._markers: deque = deque()    # replies to flush/close requests, in order
        self._dead: str | None = None
        os.write(self._wfd, _frame({"settings": _settings_for_child(settings), "client_id": client_id}))
        os.set_blocking(self._wfd, False)
        for fd in (self._wfd, self._rfd):   # room for a few thousand records each way (Linux)
            try:
                fcntl.fcntl(fd, _F_SETPIPE_SZ, 1 << 20)
            except OSError:
                pass
        reply = self._wait_marker(_START_TIMEOUT)
        if reply is None or reply[0] != "ready":
            self._stop_child()
            why = reply[1] if reply is not None else (self._dead or "no answer from the kafka-python process")
            raise Fatal(why)

    # ------------------------------------------------------------------ Publisher
    def send(self, topic: str, key: bytes, value: bytes, headers: Headers, on_delivery: DeliveryCallback) -> None:
        if self._dead is not None:
            on_delivery(DeliveryFailed(self._dead, True))
            return
        seq = self._seq
        self._seq = seq + 1
        self._pending[seq] = on_delivery
        batch = self._batch
        if not batch:
            self._batch_first = seq
        batch.append((topic, key, value, headers))
        if len(batch) >= _SEND_BATCH:
            self._push()
            while len(self._unsent) > _MAX_UNSENT and self._dead is None:  # the child is behind
                self._io(0.05)
                if self.on_backpressure is not None:
                    self.on_backpressure()

    def poll(self, timeout: float = 0.0) -> None:
        """Serve outcomes; wait up to `timeout` for one when none is ready."""
        self._push()
        before = len(self._pending)
        deadline = time.monotonic() + timeout
        while True:
            self._io(max(0.0, deadline - time.monotonic()))
            if len(self._pending) != before or self._dead is not None or time.monotonic() >= deadline:
                return

    def flush(self, timeout: float | None = None) -> None:
        self._request(("flush", timeout), (timeout or 0) + 30)

    def close(self) -> None:
        if self._proc.poll() is None and self._dead is None:
            self._request(("close",), 30)
        self._stop_child()
        self._fail_pending("the kafka-python process was closed")

    # ------------------------------------------------------------------ the pipes
    def _push(self) -> None:
        if self._batch:
            self._unsent += _frame(("send", self._batch_first, self._batch))
            self._batch = []

    def _request(self, request: tuple, timeout: float) -> None:
        self._push()
        self._unsent += _frame(request)
        if self._wait_marker(timeout) is None and self._dead is None:
            log.warning("the kafka-python process did not answer %s within %.0fs", request[0], timeout)

    def _wait_marker(self, timeout: float):
        deadline = time.monotonic() + timeout
        while not self._markers and self._dead is None:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self._io(min(left, 0.5))
        return self._markers.popleft() if self._markers else None

    def _io(self, timeout: float) -> None:
        """Write what the pipe takes, read what the child reported, run the callbacks."""
        if self._dead is not None:
            return
        unsent = self._unsent
        wlist = [self._wfd] if unsent else []
        try:
            readable, writable, _ = select.select([self._rfd], wlist, [], max(timeout, 0))
        except InterruptedError:
            return
        if writable:
            try:
                while unsent:   # until the pipe is full
                    del unsent[:os.write(self._wfd, unsent[:1 << 20])]
            except BlockingIOError:
                pass
            except BrokenPipeError:
                return self._child_gone()
        if readable:
            data = os.read(self._rfd, 1 << 20)
            if not data:
                return self._child_gone()
            for msg in self._frames.feed(data):
                self._handle(msg)

    def _handle(self, msg) -> None:
        tag = msg[0]
        if tag == "acks":
            pending = self._pending
            for seq in msg[1]:
                cb = pending.pop(seq, None)
                if cb is not None:
                    cb(None)
            for seq, cls_name, message, retriable in msg[2]:
                cb = pending.pop(seq, None)
                if cb is not None:
                    cb(_error(cls_name, message, retriable))
        else:
            self._markers.append(msg)

    def _child_gone(self) -> None:
        code = self._proc.poll()
        self._dead = f"the kafka-python process ended unexpectedly (exit code {code})"
        log.error("%s; %d deliveries unknown, reported failed", self._dead, len(self._pending))
        self._fail_pending(self._dead)

    def _fail_pending(self, why: str) -> None:
        pending, self._pending = self._pending, {}
        for cb in pending.values():
            cb(DeliveryFailed(why, True))

    def _stop_child(self) -> None:
        for f in (self._proc.stdin, self._proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        try:
            self._proc.wait(15)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


# ---------------------------------------------------------------------- the child
def _read_exact(fd: int, n: int) -> bytes | None:
    chunks, left = [], n
    while left:
        data = os.read(fd, left)
        if not data:
            return None
        chunks.append(data)
        left -= len(data)
    return b"".join(chunks)


def _read_frame(fd: int):
    head = _read_exact(fd, 4)
    if head is None:
        return None
    body = _read_exact(fd, _LEN.unpack(head)[0])
    return None if body is None else _decode(body)


class _Reporter(threading.Thread):
    """Sends the outcomes the producer's I/O thread records, every few milliseconds, and the
    replies to flush/close after the outcomes before them."""

    def __init__(self, fd: int, poll):
        super().__init__(name="pgtrail-report", daemon=True)
        self.fd = fd
        self.poll = poll              # the producer's: runs the callbacks of completed deliveries
        self.queue: deque = deque()   # seq (acknowledged), (seq, class, message, retriable), or ("marker", ...)
        self.stopped = threading.Event()

    def run(self) -> None:
        queue = self.queue
        while True:
            stopping = self.stopped.wait(0.002)
            self.poll()
            acks, failures = [], []
            while queue:
                item = queue.popleft()
                if type(item) is int:
                    acks.append(item)
                elif item[0] == "marker":
                    self._write(("acks", acks, failures))
                    acks, failures = [], []
                    self._write(item[1])
                else:
                    failures.append(item)
            if acks or failures:
                self._write(("acks", acks, failures))
            if stopping and not queue:
                return

    def _write(self, obj) -> None:
        data = _frame(obj)
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]


def main() -> None:
    """The child: builds the producer from the first frame, then sends what the parent frames."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the parent decides when to stop
    from pgtrail.runtime import tune_for_throughput
    from publisher.kafka_python import KafkaPythonPublisher
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    rfd, wfd = sys.stdin.fileno(), sys.stdout.fileno()
    first = _read_frame(rfd)
    if first is None:
        return
    try:
        publisher = KafkaPythonPublisher(KafkaSettings(**first["settings"]), first["client_id"])
    except Exception as exc:  # noqa: BLE001 - said to the parent, which raises it as its own
        _Reporter(wfd, None)._write(("error", str(exc)))
        return
    reporter = _Reporter(wfd, publisher.poll)
    reporter._write(("ready",))
    reporter.start()
    queue = reporter.queue
    tune_for_throughput()

    def outcome(seq: int):
        def done(exc, _msg=None):
            if exc is None:
                queue.append(seq)
            else:
                queue.append((seq, type(exc).__name__, str(exc), bool(getattr(exc, "retriable", False))))
        return done

    send = publisher.send
    try:
        while True:
            msg = _read_frame(rfd)
            if msg is None:   # the parent is gone: deliver what can be, nobody is left to tell
                publisher.flush(10)
                break
            tag = msg[0]
            if tag == "send":
                seq = msg[1]
                for topic, key, value, headers in msg[2]:
                    send(topic, key, value, [tuple(h) for h in headers], outcome(seq))
                    seq += 1
            elif tag == "flush":
                publisher.flush(msg[1])
                queue.append(("marker", ("flushed",)))
            elif tag == "close":
                publisher.close()
                queue.append(("marker", ("closed",)))
                break
    finally:
        reporter.stopped.set()
        reporter.join(10)


if __name__ == "__main__":
    main()
