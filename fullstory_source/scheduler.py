"""Runs many exports at once: a thread pool, and a token bucket that paces export creation.

FullStory exports spend most of their time waiting on the server, so every selected
(segment, type, window) export is started at once, up to `max_concurrent` at a time. Creations
draw from a token bucket: `burst` creates may go at once (a run's first exports start together),
after that one more every 60/`per_minute` seconds. Finished exports come back in completion
order, so each is loaded while others still run.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


class TokenBucket:
    def __init__(
        self,
        per_minute: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = per_minute / 60.0  # tokens per second
        self.capacity = float(max(1, burst))
        self._clock, self._sleep = clock, sleep
        self._tokens = self.capacity
        self._stamp = clock()
        self._lock = threading.Lock()

    def take(self) -> float:
        """Wait for a token; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= 1.0  # may go negative: a debt later callers wait out in turn
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        self._sleep(wait)
        return wait


class ExportPool:
    """A thread pool that exists only while `run` iterates: nothing is started before."""

    def __init__(self, max_concurrent: int) -> None:
        self.max_concurrent = max(1, max_concurrent)
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._users = 0

    def run(self, work: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """Start `work(item)` for the items; yield results as they finish. Items are taken as
        room frees up: at most twice `max_concurrent` are started and not yet handed over, so
        memory and the downloaded files waiting for the reader stay bounded however many
        windows a run has. Closing the iterator early (an error downstream) cancels what has
        not started."""
        pool = self._acquire()
        todo = iter(items)
        running: set[Future[R]] = set()
        try:
            while True:
                for item in itertools.islice(todo, 2 * self.max_concurrent - len(running)):
                    running.add(pool.submit(work, item))
                if not running:
                    return
                finished, running = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    yield future.result()
        finally:
            for future in running:
                future.cancel()
            self._release()

    def _acquire(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.max_concurrent, thread_name_prefix="fullstory")
            self._users += 1
            return self._pool

    def _release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0 and self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
