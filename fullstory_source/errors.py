"""Exceptions raised by the FullStory source.

Every message says what went wrong, where (endpoint, segment, window) and what to do next.
None of them ever carries the API key: messages are built from FullStory's answer and our own
context only, never from request headers.
"""

from __future__ import annotations

from typing import Any


class FullStoryError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigurationError(FullStoryError, ValueError):
    """Bad input from the user: config values, command-line options, unknown segments."""


class FullStoryAPIError(FullStoryError):
    """FullStory answered an API call with an error status (after any retries)."""

    def __init__(
        self,
        status: int,
        endpoint: str,
        message: str,
        code: Any = None,
        context: str = "",
        retry_after: str | None = None,
    ) -> None:
        self.status = status
        self.endpoint = endpoint
        self.api_message = message
        self.code = code
        self.context = context
        text = f"FullStory API {endpoint} answered HTTP {status}"
        if code not in (None, "", status):
            text += f" (code {code})"
        text += f": {message or 'no message'}"
        if context:
            text += f" [{context}]"
        hint = _hint(status, retry_after)
        if hint:
            text += f". {hint}"
        super().__init__(text)


def _hint(status: int, retry_after: str | None) -> str:
    if status == 401:
        return (
            "Check the API key (SOURCES__FULLSTORY__API_KEY or .dlt/secrets.toml); "
            "segment export needs an Admin or Architect key"
        )
    if status == 403:
        return "The key lacks permission for this call; segment export needs an Admin or Architect key"
    if status == 404:
        return "Check the id; `fullstory-pipeline segments` lists the segments this key can see"
    if status == 429:
        wait = f" (FullStory asked to wait {retry_after} s)" if retry_after else ""
        return f"Rate limited and the retry budget ran out{wait}; run again later"
    if status >= 500:
        return "FullStory kept failing after retries; run again later, the cursor did not move"
    return ""


class FullStoryConnectionError(FullStoryError):
    """FullStory could not be reached, or the connection broke, after every retry."""

    def __init__(
        self,
        endpoint: str,
        error: BaseException,
        context: str = "",
        maybe_created: bool = False,
        attempts: int | None = None,
    ) -> None:
        where = f" [{context}]" if context else ""
        tries = f" after {attempts} attempts" if attempts else ""
        text = f"FullStory API {endpoint}{where}: connection failed{tries} ({type(error).__name__})."
        if maybe_created:
            text += (
                " FullStory may have created exports it could not answer for (orphans, see the"
                " log); the window stays pending and the next run exports it."
            )
        else:
            text += " Check the network and base_url; the cursor did not move."
        super().__init__(text)


class UnexpectedResponseError(FullStoryError):
    """A response had a shape we do not know (neither the spec nor the live API's)."""

    def __init__(self, endpoint: str, expected: str, body: Any, context: str = "") -> None:
        keys = sorted(body) if isinstance(body, dict) else type(body).__name__
        where = f" [{context}]" if context else ""
        super().__init__(
            f"Unexpected response from FullStory {endpoint}{where}: expected {expected}, "
            f"got keys {keys}. Check `api_flavor` (live or spec) and `base_url`."
        )


class ExportFailedError(FullStoryError):
    """FullStory reported the export operation as FAILED, or it never finished."""


class OperationFailedError(ExportFailedError):
    """FullStory reported the export operation as FAILED."""


class OperationTimeoutError(ExportFailedError):
    """The export operation did not finish within `poll_timeout`; it may still finish."""


class DownloadError(FullStoryError):
    """The export file could not be downloaded intact."""


class RetryableDownloadError(DownloadError):
    """One download attempt failed in a way a fresh link may cure (expired link, broken
    connection, damaged gzip); the lifecycle tries again before giving up with DownloadError."""


class ExportFileGoneError(DownloadError):
    """Storage answered 404/410 for the export file of a COMPLETED operation: the file is gone
    (FullStory keeps results about a day), no fresh link brings it back; export again."""


class ExportParseError(FullStoryError):
    """The downloaded export could not be parsed into typed columns."""


class BatchJobStillProcessingError(FullStoryError):
    """A batch import job was still processing when `wait_timeout` ran out."""

    def __init__(self, job_id: str, waited: float, wait_timeout: float, endpoint: str) -> None:
        self.job_id = job_id
        self.waited = waited
        super().__init__(
            f"FullStory batch import job {job_id!r} is still processing after waiting {waited:.1f} s "
            f"(wait_timeout={wait_timeout:g} s; last answer from {endpoint}). Nothing was loaded for "
            "this run. Run the pipeline again once the job has finished (its status is COMPLETED "
            "or FAILED), or allow a longer wait with a larger wait_timeout."
        )


class UnknownBatchJobError(FullStoryAPIError, ConfigurationError):
    """FullStory answered 404 for a job id: bad input (a ConfigurationError) and an API error."""

    def __init__(self, job_id: str, error: FullStoryAPIError) -> None:
        super().__init__(error.status, error.endpoint, error.api_message, error.code, error.context)
        self.job_id = job_id
        self.args = (
            f"Unknown FullStory batch import job id {job_id!r}: {error.endpoint} answered HTTP "
            f"{error.status} ({error.code or 'no code'}: {error.api_message or 'no message'}). Check "
            "the id (it is the `job.id` that POST /v2/events/batch answered) in batch_import_job_ids "
            "or --batch-job, and that the API key belongs to the organisation that ran the import.",
        )


def root_cause(error: BaseException) -> BaseException:
    """The first error of ours under dlt's wrapping (dlt raises PipelineStepFailed around what a
    resource raised); the error itself when there is none."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, FullStoryError):
            return seen
        seen = getattr(seen, "exception", None) or seen.__cause__ or seen.__context__
    return error


class StoppedError(FullStoryError):
    """The run was asked to stop (Ctrl-C, SIGTERM): stopping.py."""
