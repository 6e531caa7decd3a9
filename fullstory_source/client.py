"""HTTP to FullStory: auth, timeouts, retries, and FullStory errors turned into exceptions.

Two sessions, on purpose:
- the API session sends `Authorization: Basic <key>` and only ever talks to `base_url`
  (redirects are not followed, so the key cannot travel to another host);
- the download session sends no credentials at all: export links are presigned storage URLs,
  and a key sent there would leak to the storage host (S3-style stores also reject it).
Retries (429 with Retry-After, 5xx, connection errors) come from dlt's requests helper.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from dlt.sources.helpers.requests import Client
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.auth import APIKeyAuth
from requests import RequestException, Response

from .create_retry import CreateRetry
from .errors import ConfigurationError, FullStoryAPIError, FullStoryConnectionError, UnexpectedResponseError
from .paging import TokenPaginator, token_pages

logger = logging.getLogger(__name__)

SEGMENT_TOKEN_FIELDS = ("nextPaginationToken", "next_pagination_token", "pagination_token")
REGION_URLS = {"us": "https://api.fullstory.com", "eu1": "https://api.eu1.fullstory.com"}


def require_api_key(api_key: str | None) -> None:
    if not api_key or not str(api_key).strip():
        raise ConfigurationError(
            "No FullStory API key: set SOURCES__FULLSTORY__API_KEY or api_key in "
            ".dlt/secrets.toml under [sources.fullstory]"
        )
    check_key_characters(str(api_key).strip())


def resolve_base_url(base_url: str | None, region: str | None, api_key: str) -> str:
    """`base_url` wins; else `region`; else an `eu1.` key means the EU host; else the US host."""
    if base_url:
        return check_base_url(base_url)
    if region:
        if region not in REGION_URLS:
            raise ConfigurationError(
                f"region={region!r} is unknown; use one of {sorted(REGION_URLS)} or set base_url"
            )
        return REGION_URLS[region]
    return REGION_URLS["eu1" if api_key.startswith("eu1.") else "us"]


def check_base_url(url: str) -> str:
    """Refuse plain http:// except to this machine: the key must never cross a network in clear."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"base_url={url!r} is not an http(s) URL; use e.g. https://api.fullstory.com"
        )
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigurationError(
            f"base_url={url!r} uses plain http:// to a non-loopback host; the API key would be "
            "sent unencrypted. Use https:// (plain http is allowed only for 127.0.0.1/localhost)"
        )
    return url.strip().rstrip("/")


_HEADER_SAFE = re.compile(r"[\x21-\x7e]+")  # visible ASCII: what an HTTP header can carry as is


def check_key_characters(api_key: str) -> None:
    """A key with a line break inside (a copy-paste accident) would make http.client raise an
    error that quotes the whole header, key included, into tracebacks and dlt's trace file.
    Refuse it before any request, saying where the bad character is but never what the key is."""
    if _HEADER_SAFE.fullmatch(api_key):
        return
    position = next(i for i, c in enumerate(api_key) if not _HEADER_SAFE.fullmatch(c))
    kind = {"\n": "a line break", "\r": "a line break", " ": "a space", "\t": "a tab"}.get(
        api_key[position], "a character that is not visible ASCII"
    )
    raise ConfigurationError(
        f"the FullStory API key has {kind} at character {position + 1} of {len(api_key)}, which "
        "cannot be sent in an HTTP header: copy the key again (SOURCES__FULLSTORY__API_KEY or "
        ".dlt/secrets.toml)"
    )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _RedactQueryStrings(logging.Filter):
    """urllib3 logs every request line at DEBUG, query string included: for a presigned export
    link that is its signature. Keep the path, drop the query."""

    _QUERY = re.compile(r"\?[^\s\"']*")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "?" in message:
            record.msg, record.args = self._QUERY.sub("?<redacted>", message), ()
        return True


_REDACT = _RedactQueryStrings()


def redact_query_strings_in_logs() -> None:
    """Installed when the first client is created (idempotent), not when this module is imported."""
    urllib3_log = logging.getLogger("urllib3.connectionpool")
    if _REDACT not in urllib3_log.filters:
        urllib3_log.addFilter(_REDACT)


def path_id(identifier: str) -> str:
    """An id as one URL path segment: FullStory's operation ids are standard base64 and can hold
    '/', '+' and '=' (docs/fullstory-api.md); segment ids can hold '@' and ':'."""
    return quote(identifier, safe="")


def redact_url(url: str) -> str:
    """A URL without its query string: presigned links carry their signature there."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _error_details(response: Response) -> tuple[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300].strip(), None
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or body)[:500], body.get("code")
    return str(body)[:300], None


def raise_for_fullstory(response: Response, endpoint: str, context: str = "") -> None:
    if response.status_code < 400:
        return
    message, code = _error_details(response)
    raise FullStoryAPIError(
        response.status_code,
        endpoint,
        message,
        code=code,
        context=context,
        retry_after=response.headers.get("Retry-After"),
    )


class FullStoryClient:
    """The FullStory REST API for one key and host."""

    def __init__(
        self,
        api_key: str,
        base_url: str,
        *,
        timeout: float = 60.0,
        max_attempts: int = 5,
        backoff_factor: float = 1.0,
        max_retry_delay: float = 300.0,
    ) -> None:
        require_api_key(api_key)
        self.base_url = check_base_url(base_url)
        redact_query_strings_in_logs()
        retry = {
            "request_timeout": timeout,
            "raise_for_status": False,
            "request_max_attempts": max_attempts,
            "request_backoff_factor": backoff_factor,
            "request_max_retry_delay": max_retry_delay,
        }
        # FullStory wants the raw key after "Basic", not base64(user:password)
        auth = APIKeyAuth(name="Authorization", api_key=f"Basic {str(api_key).strip()}")
        self._rest = RESTClient(self.base_url, auth=auth, session=Client(**retry).session)
        # Creates are retried by CreateRetry (create_retry.py), which knows which failures may
        # have started an export: this session itself never repeats a request.
        create_session = Client(
            status_codes=(), exceptions=(), **{**retry, "request_max_attempts": 1}
        ).session
        self._create = RESTClient(self.base_url, auth=auth, session=create_session)
        self._create_retry = CreateRetry(max_attempts, backoff_factor, max_retry_delay)

    def get(self, path: str, params: dict[str, Any] | None = None, context: str = "") -> Any:
        return self.get_with_status(path, params, context)[1]

    def get_with_status(
        self,
        path: str,
        params: dict[str, Any] | None = None,
        context: str = "",
        allow_status: tuple[int, ...] = (),
    ) -> tuple[int, Any]:
        """(HTTP status, JSON body or None when empty), for endpoints where a 2xx status
        carries meaning (batch imports answer 202 while still processing); statuses in
        `allow_status` are answered instead of raised."""
        try:
            response = self._rest.get(path, params=params, allow_redirects=False)
        except RequestException as error:
            raise FullStoryConnectionError(f"GET {path}", error, context) from None
        if response.status_code in allow_status:
            return response.status_code, None
        if response.status_code < 400 and not response.content:
            return response.status_code, None
        return response.status_code, self._json(response, f"GET {path}", context)

    def post(self, path: str, body: dict[str, Any], context: str = "") -> Any:
        """A create: 429, 5xx and broken connections are retried with backoff (create_retry.py
        says why a lost answer can leave one orphaned export, and logs it)."""

        def attempt() -> Response:
            return self._create.post(path, json=body, allow_redirects=False)

        try:
            response = self._create_retry.send(attempt, f"POST {path}", context)
        except RequestException as error:
            raise FullStoryConnectionError(
                f"POST {path}", error, context, maybe_created=True, attempts=self._create_retry.max_attempts
            ) from None
        return self._json(response, f"POST {path}", context)

    def get_segment(self, segment_id: str) -> dict[str, Any] | None:
        """`GET /segments/v1/{id}`, or None when FullStory does not know the id (404)."""
        endpoint = f"/segments/v1/{path_id(segment_id)}"
        status, body = self.get_with_status(endpoint, allow_status=(404,))
        if status == 404:
            return None
        if not isinstance(body, dict) or "id" not in body:
            raise UnexpectedResponseError(f"GET {endpoint}", "a segment with an 'id'", body)
        return body

    def paginate(
        self, path: str, items_key: str, cursor_param: str, params: dict[str, Any]
    ) -> Iterator[list[dict[str, Any]]]:
        """The `items_key` list of every page (paging.py). The next token: today's docs say
        nextPaginationToken, an older docs page next_pagination_token, the spec
        pagination_token (docs/fullstory-api.md)."""

        def fetch(query: dict[str, Any]) -> dict[str, Any]:
            body = self.get(path, params=query)
            if not isinstance(body, dict) or not isinstance(body.get(items_key, []), list):
                raise UnexpectedResponseError(f"GET {path}", f"an object with a '{items_key}' list", body)
            return body

        paginator = TokenPaginator(SEGMENT_TOKEN_FIELDS, cursor_param)
        for body in token_pages(fetch, paginator, params, f"GET {path}"):
            yield body.get(items_key, [])

    def segment_pages(self, cursor_param: str) -> Iterator[list[dict[str, Any]]]:
        return self.paginate("/segments/v1", "segments", cursor_param, {"limit": 100})

    @staticmethod
    def _json(response: Response, endpoint: str, context: str) -> Any:
        raise_for_fullstory(response, endpoint, context)
        try:
            return response.json()
        except ValueError:
            raise UnexpectedResponseError(endpoint, "a JSON body", response.text[:200], context) from None


def download_session(
    timeout: float, max_attempts: int, backoff_factor: float, max_retry_delay: float = 300.0
) -> Any:
    """A session with retries and no credentials, for presigned export links."""
    redact_query_strings_in_logs()
    return Client(
        request_timeout=timeout,
        raise_for_status=False,
        request_max_attempts=max_attempts,
        request_backoff_factor=backoff_factor,
        request_max_retry_delay=max_retry_delay,
        # 403 means the link expired: the caller fetches a new link instead of retrying this one
        status_codes=(429, 500, 502, 503, 504),
    ).session
