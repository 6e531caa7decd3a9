"""Stopping a run promptly when it is asked to (Ctrl-C, SIGTERM from a scheduler).

Python delivers a signal to the main thread only; the exports poll, wait for a create token
and download in pool threads that would otherwise go on until every export is done. Each run
has a `StopSignal` its threads sleep on (instead of `time.sleep`) and check between download
chunks: `request_stop()` wakes them all, and each raises `StoppedError` where it is. Nothing of
the interrupted extract is committed; the operations it created stay in the journal, so the
next run resumes them.
"""

from __future__ import annotations

import threading
import weakref

from .errors import StoppedError

__all__ = ["StopSignal", "StoppedError", "request_stop"]

_SIGNALS: weakref.WeakSet[StopSignal] = weakref.WeakSet()
_LOCK = threading.Lock()


class StopSignal:
    def __init__(self) -> None:
        self._event = threading.Event()
        with _LOCK:
            _SIGNALS.add(self)

    def set(self) -> None:
        self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise StoppedError("the run was asked to stop")

    def sleep(self, seconds: float) -> None:
        """`time.sleep` that ends, raising StoppedError, as soon as a stop is requested."""
        if self._event.wait(max(0.0, seconds)):
            raise StoppedError("the run was asked to stop")


def request_stop() -> None:
    """Stop every run of this process (from a signal handler: it only sets events)."""
    with _LOCK:
        signals = list(_SIGNALS)
    for signal in signals:
        signal.set()
