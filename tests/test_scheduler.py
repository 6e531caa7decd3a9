"""The scheduler's parts: the token bucket that paces creates, and the pool that runs exports."""

from __future__ import annotations

import threading

from fullstory_source.scheduler import ExportPool, TokenBucket


def test_a_full_bucket_lets_a_burst_through_without_waiting() -> None:
    bucket = TokenBucket(per_minute=6000, burst=8)
    assert [bucket.take() for _ in range(8)] == [0.0] * 8


def test_after_the_burst_creates_are_paced_at_the_rate() -> None:
    bucket = TokenBucket(per_minute=6000, burst=2)  # one token every 10 ms
    bucket.take(), bucket.take()
    waits = [bucket.take() for _ in range(3)]
    assert all(0 < wait <= 0.01 for wait in waits)


def test_a_burst_of_one_is_even_spacing() -> None:
    bucket = TokenBucket(per_minute=6000, burst=1)
    assert bucket.take() == 0.0
    assert bucket.take() > 0


def test_the_pool_returns_every_result_and_runs_at_most_max_concurrent() -> None:
    pool = ExportPool(max_concurrent=3)
    running, peak, lock = 0, 0, threading.Lock()
    release = threading.Event()

    def work(item: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        release.wait(0.05)
        with lock:
            running -= 1
        return item * 2

    assert sorted(pool.run(work, list(range(10)))) == [i * 2 for i in range(10)]
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
