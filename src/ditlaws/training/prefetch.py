"""Draw the next training batches in a background thread while the step computes.

The batches are exactly the iterator's, in its order (nothing about the numbers changes); drawing and encoding the
built-in set is Python + PIL work that overlaps with the step's kernels, which release the GIL. An exception in the
thread is raised in the consumer at the batch where it happened; the thread stops when the consumer is closed or
garbage-collected (the built-in stream never ends by itself).
"""

from __future__ import annotations

import queue
import threading
import weakref
from collections.abc import Iterator

_END = object()


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


def _produce(source: Iterator, out: queue.Queue, stop: threading.Event) -> None:
    try:
        for item in source:
            while not stop.is_set():
                try:
                    out.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if stop.is_set():
                return
        out.put(_END)
    except BaseException as error:  # handed to the consumer, raised there
        out.put(_Failure(error))


class Prefetched:
    """An iterator over `source` that keeps up to `depth` items drawn ahead by a daemon thread."""

    def __init__(self, source: Iterator, depth: int = 2):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._done = False
        thread = threading.Thread(target=_produce, args=(source, self._queue, self._stop), daemon=True,
                                  name="ditlaws-prefetch")
        thread.start()
        weakref.finalize(self, self._stop.set)

    def __iter__(self) -> Prefetched:
        return self

    def __next__(self):
        if self._done:
            raise StopIteration
        item = self._queue.get()
        if item is _END:
            self._done = True
            raise StopIteration
        if isinstance(item, _Failure):
            self._done = True
            raise item.error
        return item

    def close(self) -> None:
        self._stop.set()
        self._done = True
