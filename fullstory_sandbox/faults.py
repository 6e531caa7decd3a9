"""Fault switches: make chosen requests fail so clients' retry and recovery paths can be tested."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

ENDPOINTS = (
    "any",
    "segments",
    "segment",
    "create",
    "operation",
    "operations",
    "link",
    "download",
    "batch_job",
    "batch_imports",
    "batch_errors",
)


@dataclass
class Fault:
    """Answer the next `times` matching requests with `status` (0: reset the connection instead).

    Endpoints: "segments" (list), "segment" (get one), "create" (POST export), "operation" (poll),
    "operations" (the operations list), "link" (the request that issues a download link: the live
    results endpoint, or in spec flavor the poll that would complete the operation), "download"
    (the signed link), the batch endpoints, and "any" (every one of them).

    `every`: hit only every `every`-th matching request ("a fault every few requests"), `times`
    hits in all. `committed` (create only): the export IS created, then the answer is lost
    (`status` 0: the connection resets; else that status): the client cannot know its operation id.
    """

    endpoint: str
    status: int = 500
    times: int = 1
    retry_after: float | None = None
    message: str = "injected fault"
    segment_id: str | None = None  # only requests about this segment; None matches every request
    every: int = 1
    committed: bool = False
    _seen: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        if self.endpoint not in ENDPOINTS:
            raise ValueError(f"unknown fault endpoint {self.endpoint!r}; expected one of {ENDPOINTS}")
        if self.every < 1:
            raise ValueError("every must be at least 1")
        if self.committed and self.endpoint != "create":
            raise ValueError("committed faults exist only for the create endpoint")


@dataclass
class _OperationFailure:
    times: int
    error_details: str
    segment_id: str | None


class Faults:
    """Thread-safe queues of faults, consumed in the order they were added."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._failures: list[_OperationFailure] = []
        self._damage: deque[str] = deque()
        self._replacements: deque[bytes] = deque()

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def fail_operations(
        self,
        times: int = 1,
        error_details: str = "export failed: internal error",
        segment_id: str | None = None,
    ) -> None:
        """The next `times` created operations (of segment_id, if given) end FAILED with error_details."""
        with self._lock:
            self._failures.append(_OperationFailure(times, error_details, segment_id))

    def truncate_downloads(self, times: int = 1) -> None:
        """The next downloads send half the gzip body with a matching Content-Length (looks complete)."""
        with self._lock:
            self._damage.extend(["truncate"] * times)

    def corrupt_downloads(self, times: int = 1) -> None:
        """The next downloads send bytes that are not gzip at all."""
        with self._lock:
            self._damage.extend(["corrupt"] * times)

    def serve_instead(self, content: bytes, times: int = 1) -> None:
        """The next downloads send `content`, gzipped, instead of the export (an intact gzip of
        a broken export: cut JSON, an error page, values of the wrong type, ...)."""
        with self._lock:
            self._replacements.extend([content] * times)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._failures.clear()
            self._damage.clear()
            self._replacements.clear()

    # The server consumes faults through the methods below.

    def take(self, endpoint: str, segment_id: str | None = None) -> Fault | None:
        """Consume one hit of the first fault matching this request, if any."""
        with self._lock:
            for fault in self._faults:
                if fault.endpoint not in (endpoint, "any") or fault.segment_id not in (None, segment_id):
                    continue
                fault._seen += 1
                if fault._seen % fault.every:
                    continue
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def take_operation_failure(self, segment_id: str) -> str | None:
        """Error details if the operation being created must fail, else None."""
        with self._lock:
            for failure in self._failures:
                if failure.segment_id in (None, segment_id):
                    failure.times -= 1
                    if failure.times <= 0:
                        self._failures.remove(failure)
                    return failure.error_details
        return None

    def take_download_replacement(self) -> bytes | None:
        with self._lock:
            return self._replacements.popleft() if self._replacements else None

    def take_download_damage(self) -> str | None:
        """ "truncate", "corrupt" or None for the download being answered."""
        with self._lock:
            return self._damage.popleft() if self._damage else None
