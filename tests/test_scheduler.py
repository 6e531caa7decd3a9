"""The scheduler's parts: the token bucket that paces creates, and the pool that runs exports."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from fullstory_source.scheduler import ExportPool, TokenBucket


class FakeClock:
    """Time that moves only when the bucket sleeps (or the test says so)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def bucket(per_minute: float, burst: int) -> tuple[TokenBucket, FakeClock]:
    clock = FakeClock()
    return TokenBucket(per_minute, burst, clock=clock, sleep=clock.sleep), clock


def test_a_full_bucket_lets_a_burst_through_without_waiting() -> None:
    creates, _ = bucket(per_minute=60, burst=8)
    assert [creates.take() for _ in range(8)] == [0.0] * 8


def test_after_the_burst_creates_are_paced_at_the_rate() -> None:
    creates, clock = bucket(per_minute=60, burst=2)  # one token a second
    creates.take(), creates.take()
    assert [creates.take() for _ in range(3)] == [1.0, 1.0, 1.0]
    assert clock.now == 3.0


def test_an_idle_bucket_fills_up_to_the_burst_again() -> None:
    creates, clock = bucket(per_minute=60, burst=3)
    for _ in range(3):
        creates.take()
    clock.now += 100.0  # idle far longer than it takes to refill
    assert [creates.take() for _ in range(4)] == [0.0, 0.0, 0.0, 1.0]


def test_a_burst_of_one_is_even_spacing() -> None:
    creates, _ = bucket(per_minute=120, burst=1)
    assert [creates.take() for _ in range(3)] == [0.0, 0.5, 0.5]


def test_the_pool_returns_every_result_and_runs_at_most_max_concurrent() -> None:
    pool = ExportPool(max_concurrent=3)
    running, peak = 0, 0
    changed, release = threading.Condition(), threading.Event()

    def work(item: int) -> int:
        nonlocal running, peak
        with changed:
            running += 1
            peak = max(peak, running)
            changed.notify_all()
        release.wait()  # every export holds its slot until the test lets go
        with changed:
            running -= 1
        return item * 2

    results: list[int] = []
    consumer = threading.Thread(target=lambda: results.extend(pool.run(work, list(range(6)))))
    consumer.start()
    with changed:
        assert changed.wait_for(lambda: running == 3, timeout=30)
    assert peak == 3  # three started, the other three wait for a slot
    release.set()
    consumer.join()
    assert sorted(results) == [i * 2 for i in range(6)]
    assert peak == 3


def test_the_pool_exists_only_while_it_runs() -> None:
    pool = ExportPool(max_concurrent=2)
    assert pool._pool is None  # building creates no thread
    results = pool.run(lambda item: item, [1, 2])
    assert pool._pool is None  # nor does asking for the iterator
    assert sorted(results) == [1, 2]
    assert pool._pool is None  # shut down once the last user is done


def test_two_resources_share_one_pool() -> None:
    pool = ExportPool(max_concurrent=2)
    first = pool.run(lambda item: item, [1, 2, 3])
    assert next(first) in (1, 2, 3)
    shared = pool._pool
    second = pool.run(lambda item: item, [4])
    assert next(second) == 4 and pool._pool is shared
    assert sorted(first) and list(second) == []
    assert pool._pool is None


def test_the_pool_takes_work_only_as_room_frees_up() -> None:
    """495,000 planned windows must not become 495,000 queued futures (memory, and files
    waiting on disk): at most twice the concurrency is started and not yet handed over."""
    pulled = 0

    def windows() -> Iterator[int]:
        nonlocal pulled
        for number in range(495_000):
            pulled += 1
            yield number

    results = ExportPool(4).run(lambda n: n, windows())
    first = [next(results) for _ in range(3)]
    assert len(first) == 3 and pulled <= 2 * 4 + 3
    results.close()
