"""How long to wait between polls of anything FullStory is still working on (export
operations, batch import jobs): `interval` first, then each wait 1.5x the one before, up to
`max_interval`, never past the deadline."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

GROWTH = 1.5


def poll_waits(
    interval: float,
    max_interval: float,
    deadline: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[float]:
    """Sleeps between polls, each yielded after it was slept; stops once `deadline` (monotonic)
    is reached. The caller polls, then advances the iterator; exhaustion means time is up."""
    while deadline is None or time.monotonic() < deadline:
        wait = interval if deadline is None else min(interval, max(0.0, deadline - time.monotonic()))
        sleep(wait)
        yield wait
        interval = min(interval * GROWTH, max_interval)
