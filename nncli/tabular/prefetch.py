"""Read ahead: the next chunk of a stream is parsed in a thread while the caller works on this one.

polars' parser and NumPy's products release the GIL, so on two cores the parse of chunk k + 1
overlaps the forward pass (and the writing) of chunk k instead of waiting for it. Order, values
and errors are the stream's own: an error the producer meets is raised to the caller when it
asks for that chunk, after every chunk before it. One chunk is read ahead, so memory grows by
one chunk at most.
"""

from __future__ import annotations

import queue
import threading
from typing import Iterator, TypeVar

T = TypeVar("T")

_DONE = object()  # the producer's last item: the stream ended
WAIT_SECONDS = 0.1  # how often a blocked producer checks whether the caller has stopped listening
JOIN_SECONDS = 1.0  # how long a caller that stopped listening waits for the producer to stop


def read_ahead(items: Iterator[T]) -> Iterator[T]:
    """``items``, each produced in a daemon thread while the caller holds the one before.
    Closing the generator (the caller stops early: an error, Ctrl-C) stops the producer after
    the item it is on; nothing is produced that nobody will take."""
    ready: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if not _hand_over(ready, stop, (item, None)):
                    return
            _hand_over(ready, stop, (_DONE, None))
        except BaseException as exc:  # (raised to the caller in order, as the stream would)
            _hand_over(ready, stop, (_DONE, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None and stop.is_set():
                close()  # (the producer's own thread: a generator is closed where it runs)

    producer = threading.Thread(target=produce, name="nncli-read-ahead", daemon=True)
    producer.start()
    try:
        while True:
            item, error = ready.get()
            if error is not None:
                raise error
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        # The chunk in flight is finished (a parse takes a few hundredths), so no parse runs on
        # while the interpreter exits; a producer waiting on a pipe that stays silent is left.
        producer.join(JOIN_SECONDS)


def _hand_over(ready: queue.Queue, stop: threading.Event, entry: tuple) -> bool:
    """Put ``entry`` for the caller; False when the caller has stopped listening."""
    while not stop.is_set():
        try:
            ready.put(entry, timeout=WAIT_SECONDS)
            return True
        except queue.Full:
            continue
    return False
