"""Retrying `POST /segments/v1/exports`, which is not idempotent.

A 429 or a connection that could not be opened created nothing: repeating it is safe. A 5xx or a
connection that broke after the request was sent may come after FullStory created the export:
repeating it may start a second one. FullStory's operations list cannot tell which export belongs
to a lost request (search export operations carry no details: no segment, no time range; only
`createdAt`, shared with this run's concurrent creates and other tools of the org), so matching by
time could load another export into this window. We repeat the request anyway, with backoff, and
say in the log that one export may be orphaned: it costs one export of FullStory's quota and is
never downloaded. A window that kept failing stays pending; the next run exports it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable

from requests import RequestException, Response
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import ConnectTimeout
from urllib3.exceptions import NewConnectionError

logger = logging.getLogger(__name__)


class CreateRetry:
    def __init__(self, max_attempts: int, backoff_factor: float, max_retry_delay: float) -> None:
        self.max_attempts = max(1, max_attempts)
        self.backoff_factor = backoff_factor
        self.max_retry_delay = max_retry_delay

    def send(self, attempt: Callable[[], Response], endpoint: str, context: str) -> Response:
        """The first answer that is not 429/5xx, or the last one; a connection error of the
        last attempt is raised."""
        for number in range(1, self.max_attempts + 1):
            last = number == self.max_attempts
            try:
                response = attempt()
            except RequestException as error:
                if last:
                    raise
                self._wait(number, None, endpoint, context, type(error).__name__, _maybe_created(error))
                continue
            status = response.status_code
            if status != 429 and status < 500 or last:
                return response
            retry_after = response.headers.get("Retry-After")
            self._wait(number, retry_after, endpoint, context, f"HTTP {status}", status >= 500)
        raise AssertionError("unreachable")  # the last attempt returned or raised

    def _wait(
        self,
        number: int,
        retry_after: str | None,
        endpoint: str,
        context: str,
        problem: str,
        maybe_created: bool,
    ) -> None:
        delay = min(self.backoff_factor * 2 ** (number - 1), self.max_retry_delay)
        if retry_after:
            with contextlib.suppress(ValueError):
                delay = min(max(delay, float(retry_after)), self.max_retry_delay)
        message = "%s [%s]: %s on attempt %d/%d; retrying in %.1f s"
        if maybe_created:
            message += (
                ". If FullStory created that export before the answer was lost, it is now an orphan: "
                "one export counted by FullStory and never downloaded (its id cannot be recovered; "
                "see docs/fullstory-api.md)."
            )
        level = logging.WARNING if maybe_created else logging.INFO
        logger.log(level, message, endpoint, context, problem, number, self.max_attempts, delay)
        time.sleep(delay)


def _maybe_created(error: BaseException) -> bool:
    """False only when the request surely never reached the server: the connection could not
    be opened at all."""
    if isinstance(error, ConnectTimeout):
        return False
    if isinstance(error, RequestsConnectionError) and error.args:
        reason = getattr(error.args[0], "reason", error.args[0])
        return not isinstance(reason, NewConnectionError)
    return True
