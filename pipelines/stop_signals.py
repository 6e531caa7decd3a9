"""Ctrl-C and SIGTERM stop the command promptly, with one line instead of tracebacks.

On SIGINT or SIGTERM the handler tells every run of the process to stop (its export threads
wake up and end: fullstory_source/stopping.py) and raises KeyboardInterrupt in the main thread,
where dlt is extracting or loading. Whatever dlt raises while it unwinds is then reported as
the one line `stopped by SIGINT: ...`, exit code 128 + the signal number. State stays
consistent: an interrupted extract commits nothing (its exports are resumed from the journal
next time); an interrupted load stays pending and the next run finishes it.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType

from fullstory_source.stopping import request_stop

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass
class Stop:
    signal: int | None = None

    @property
    def exit_code(self) -> int:
        return 128 + (self.signal or 0)

    def line(self) -> str:
        name = signal.Signals(self.signal).name if self.signal else "a signal"
        return (
            f"stopped by {name}: nothing of this run's extract was committed; the next run resumes "
            "the exports in flight and finishes any load left pending"
        )


@contextmanager
def stop_on_signals() -> Iterator[Stop]:
    stop = Stop()

    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.signal is None:
            stop.signal = signum
            request_stop()
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield stop  # signals reach the main thread only; a caller in another thread handles them
        return
    previous = {s: signal.signal(s, handle) for s in SIGNALS}
    try:
        yield stop
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
