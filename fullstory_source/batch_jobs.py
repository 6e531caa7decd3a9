"""Waiting for batch import jobs and paging their results, over HTTP.

A job that is still processing answers its status with PROCESSING and its imports/errors with
HTTP 202. Each job is waited for once per run (shared by the three resources), with growing
intervals (polling.py), until it finishes or `wait_timeout` runs out; a finished status is kept
(a finished job never changes). Results are paged with `page_token` / `next_page_token`
(paging.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from .batch_audit import Audit
from .batch_rows import count
from .client import FullStoryClient
from .errors import (
    BatchJobStillProcessingError,
    ConfigurationError,
    FullStoryAPIError,
    UnexpectedResponseError,
    UnknownBatchJobError,
)
from .paging import TokenPaginator, token_pages
from .polling import poll_waits

logger = logging.getLogger(__name__)

BATCH_PATH = "/v2/events/batch"
PROCESSING = "PROCESSING"


@dataclass(frozen=True)
class WaitOptions:
    include_schema: bool
    wait_timeout: float
    poll_interval: float
    poll_max_interval: float


@dataclass
class JobStatus:
    body: dict[str, Any]
    finished: bool
    deadline: float  # monotonic time after which this job is not waited for any more
    started: float  # monotonic time the first wait for this job began

    @property
    def status(self) -> str | None:
        job = self.body.get("job")
        return str(job["status"]) if isinstance(job, dict) and job.get("status") else None

    def count(self, kind: str) -> int | None:
        return count(self.body.get(kind))


class BatchJobs:
    """The jobs of one `batch_import_resources` call, shared by its three resources."""

    def __init__(self, client: FullStoryClient, job_ids: tuple[str, ...], options: WaitOptions) -> None:
        self.client = client
        self.job_ids = job_ids
        self.options = options
        self._statuses: dict[str, JobStatus] = {}

    def require_ids(self) -> tuple[str, ...]:
        if not self.job_ids:
            raise ConfigurationError(
                "No batch import job ids: set batch_import_job_ids under [sources.fullstory] "
                "(e.g. SOURCES__FULLSTORY__BATCH_IMPORT_JOB_IDS='[\"job1\"]') or pass --batch-job ID"
            )
        return self.job_ids

    def status(self, job_id: str) -> JobStatus:
        """The job's status, after waiting (growing intervals) until it is no longer PROCESSING
        or its deadline passed. Check `.finished`."""
        known = self._statuses.get(job_id)
        if known is not None and known.finished:
            return known
        now = time.monotonic()
        started = known.started if known else now
        deadline = known.deadline if known else now + self.options.wait_timeout
        waits = poll_waits(self.options.poll_interval, self.options.poll_max_interval, deadline)
        while True:
            body = self._get(job_path(job_id), {}, job_id)[1]
            if not isinstance(body, dict) or not isinstance(body.get("job"), dict):
                raise UnexpectedResponseError(
                    f"GET {job_path(job_id)}", "an object with a 'job' object", body, context(job_id)
                )
            current = JobStatus(body, finished=False, deadline=deadline, started=started)
            current.finished = current.status != PROCESSING
            self._statuses[job_id] = current
            if current.finished:
                return current
            logger.info("batch import job %r is still processing", job_id)
            if next(waits, None) is None:
                return current

    def finished_status(self, job_id: str) -> JobStatus:
        status = self.status(job_id)
        if not status.finished:
            waited = time.monotonic() - status.started
            endpoint = f"GET {job_path(job_id)}"
            raise BatchJobStillProcessingError(job_id, waited, self.options.wait_timeout, endpoint)
        return status

    def pages(self, job_id: str, kind: str, audit: Audit) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        """(page index, results) of `/imports` or `/errors`, until the token is empty or repeats."""
        status = self.finished_status(job_id)
        path = f"{job_path(job_id)}/{kind}"
        params = {"include_schema": str(self.options.include_schema).lower()} if kind == "imports" else {}
        paginator = TokenPaginator(("next_page_token",), "page_token")

        def fetch(query: dict[str, Any]) -> dict[str, Any]:
            return self._ready_page(path, query, job_id, status, kind)

        for page, body in enumerate(token_pages(fetch, paginator, params, f"GET {path}", context(job_id))):
            results = body.get("results") or []
            if not isinstance(results, list):
                raise UnexpectedResponseError(f"GET {path}", "a 'results' list", body, context(job_id))
            audit.note_total(body.get("total_records"))
            audit.pages += 1
            yield page, [r for r in results if isinstance(r, dict)]
        audit.token_repeated = paginator.repeated is not None

    def _ready_page(
        self, path: str, params: dict[str, Any], job_id: str, status: JobStatus, kind: str
    ) -> dict[str, Any]:
        """A page, once it is no longer 202 (still processing), or the job's deadline passed."""
        waits = poll_waits(self.options.poll_interval, self.options.poll_max_interval, status.deadline)
        while True:
            code, body = self._get(path, params, job_id)
            if code != 202:
                if not isinstance(body, dict):
                    raise UnexpectedResponseError(f"GET {path}", "a JSON object", body, context(job_id))
                return body
            if status.count(kind) == 0:
                # the finished job reported no rows of this kind: nothing to wait for
                return {"results": [], "next_page_token": ""}
            logger.info("GET %s answered 202 (still processing); retrying", path)
            if next(waits, None) is None:
                raise BatchJobStillProcessingError(
                    job_id, time.monotonic() - status.started, self.options.wait_timeout, f"GET {path}"
                )

    def _get(self, path: str, params: dict[str, Any], job_id: str) -> tuple[int, Any]:
        try:
            return self.client.get_with_status(path, params=dict(params), context=context(job_id))
        except FullStoryAPIError as error:
            if error.status == 404:
                raise UnknownBatchJobError(job_id, error) from error
            raise


def job_path(job_id: str) -> str:
    return f"{BATCH_PATH}/{quote(job_id, safe='')}"


def context(job_id: str) -> str:
    return f"batch import job {job_id!r}"
