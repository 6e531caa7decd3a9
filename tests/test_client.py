"""The HTTP client against the real sandbox: hosts, auth, retries, FullStory errors, paging."""

from __future__ import annotations

import time
from typing import Any

import pytest
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.auth import APIKeyAuth

from fullstory_sandbox import DEFAULT_SEGMENTS, Fault, Sandbox
from fullstory_source import ConfigurationError, FullStoryAPIError
from fullstory_source.client import (
    SEGMENT_TOKEN_FIELDS,
    FullStoryClient,
    check_base_url,
    redact_url,
    resolve_base_url,
)
from fullstory_source.paging import TokenPaginator
from fullstory_source.registry import DIALECTS

from .support import API_KEY, stub_server

US = "https://api.fullstory.com"
EU = "https://api.eu1.fullstory.com"
SEGMENTS = "/segments/v1"
EXPORTS = "/segments/v1/exports"
CREATE_BODY: dict[str, Any] = {
    "segmentId": "everyone",
    "type": "TYPE_EVENT",
    "format": "FORMAT_JSON",
    "timeRange": {"start": "2026-10-01T00:00:00Z", "end": "2026-10-01T06:00:00Z"},
}


def client(sb: Sandbox, api_key: str = API_KEY, **kwargs: Any) -> FullStoryClient:
    args: dict[str, Any] = {"backoff_factor": 0.01, "timeout": 10.0, **kwargs}
    return FullStoryClient(api_key, sb.base_url, **args)


# -- hosts --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://api.fullstory.com",
        "http://example.com:8080/api",
        "http://10.0.0.1",
        "http://192.168.1.20:3000",
        "http://localhost.example.com",
        "http://[2001:db8::1]:80",
    ],
)
def test_plain_http_to_another_host_is_refused(url: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        check_base_url(url)
    message = str(raised.value)
    assert repr(url) in message
    assert "unencrypted" in message and "https://" in message
    with pytest.raises(ConfigurationError):
        FullStoryClient(API_KEY, url)


@pytest.mark.parametrize("url", ["ftp://api.fullstory.com", "api.fullstory.com", "https://", ""])
def test_non_http_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigurationError, match="is not an http"):
        check_base_url(url)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://api.fullstory.com", "https://api.fullstory.com"),
        ("https://api.fullstory.com/", "https://api.fullstory.com"),
        (" https://proxy.example.com/fullstory/ ", "https://proxy.example.com/fullstory"),
        ("http://localhost:8080", "http://localhost:8080"),
        ("http://LOCALHOST:8080/", "http://LOCALHOST:8080"),
        ("http://127.0.0.1:9999", "http://127.0.0.1:9999"),
        ("http://127.0.0.2", "http://127.0.0.2"),
        ("http://[::1]:8080", "http://[::1]:8080"),
    ],
)
def test_https_and_loopback_http_are_accepted(url: str, expected: str) -> None:
    assert check_base_url(url) == expected


def test_regions_and_keys_pick_the_host() -> None:
    assert resolve_base_url(None, None, "na1.some-key") == US
    assert resolve_base_url(None, None, "plain-key") == US
    assert resolve_base_url(None, None, "eu1.some-key") == EU
    assert resolve_base_url(None, "us", "k") == US
    assert resolve_base_url(None, "eu1", "k") == EU
    assert resolve_base_url(None, "us", "eu1.some-key") == US  # an explicit region wins over the key
    assert resolve_base_url(None, "", "eu1.some-key") == EU


def test_base_url_overrides_region_and_key() -> None:
    assert resolve_base_url("https://fs.example.com/", "eu1", "eu1.key") == "https://fs.example.com"
    assert resolve_base_url("http://127.0.0.1:5000", "us", "k") == "http://127.0.0.1:5000"
    with pytest.raises(ConfigurationError, match="plain http"):
        resolve_base_url("http://fs.example.com", None, "k")


def test_an_unknown_region_is_refused() -> None:
    with pytest.raises(ConfigurationError) as raised:
        resolve_base_url(None, "eu2", "k")
    message = str(raised.value)
    assert "region='eu2'" in message and "eu1" in message and "us" in message and "base_url" in message


def test_redact_url_drops_the_signature() -> None:
    url = "https://storage.example.com/exports/abc.json.gz?X-Amz-Signature=secret&expires=123#frag"
    assert redact_url(url) == "https://storage.example.com/exports/abc.json.gz"
    assert redact_url("http://127.0.0.1:8080/download/x") == "http://127.0.0.1:8080/download/x"


@pytest.mark.parametrize("key", ["", "   "])
def test_a_missing_key_is_a_configuration_error(key: str) -> None:
    with pytest.raises(ConfigurationError, match="SOURCES__FULLSTORY__API_KEY"):
        FullStoryClient(key, US)


# -- auth and errors ----------------------------------------------------------------------------


def test_requests_carry_the_raw_key_after_basic(live_sandbox: Sandbox) -> None:
    page = client(live_sandbox).get(SEGMENTS)
    assert [s["id"] for s in page["segments"]] == [s["id"] for s in DEFAULT_SEGMENTS]
    (request,) = live_sandbox.requests("GET", SEGMENTS)
    assert request.headers["Authorization"] == f"Basic {API_KEY}"


def test_a_wrong_key_is_reported_without_the_key(live_sandbox: Sandbox) -> None:
    wrong = "wrong-key-5e1d0c93"
    with pytest.raises(FullStoryAPIError) as raised:
        client(live_sandbox, api_key=wrong).get(SEGMENTS)
    error = raised.value
    message = str(error)
    assert error.status == 401
    assert "GET /segments/v1" in message and "HTTP 401" in message
    assert "Check the API key" in message
    assert wrong not in message and wrong not in repr(error.args)
    assert len(live_sandbox.requests("GET", SEGMENTS)) == 1  # a 401 is not retried


def test_a_bad_create_carries_fullstorys_message(live_sandbox: Sandbox) -> None:
    body = {**CREATE_BODY, "segmentId": "no-such-segment"}
    with pytest.raises(FullStoryAPIError) as raised:
        client(live_sandbox).post(EXPORTS, body, context="segment 'no-such-segment'")
    error = raised.value
    assert error.status == 400
    assert error.api_message == "segment not found: no-such-segment"
    message = str(error)
    assert "POST /segments/v1/exports" in message and "HTTP 400" in message
    assert "segment not found: no-such-segment" in message
    assert "[segment 'no-such-segment']" in message
    assert len(live_sandbox.requests("POST", EXPORTS)) == 1


def test_a_404_names_the_endpoint_and_hints_at_the_id(live_sandbox: Sandbox) -> None:
    with pytest.raises(FullStoryAPIError) as raised:
        client(live_sandbox).get("/segments/v1/no-such-segment")
    assert raised.value.status == 404
    assert "GET /segments/v1/no-such-segment" in str(raised.value)
    assert "segment not found: no-such-segment" in str(raised.value)
    assert "fullstory-pipeline segments" in str(raised.value)


# -- retries ------------------------------------------------------------------------------------


def test_429_honours_retry_after(live_sandbox: Sandbox) -> None:
    live_sandbox.faults.add(Fault("segments", status=429, retry_after=1))
    started = time.monotonic()
    page = client(live_sandbox).get(SEGMENTS)
    waited = time.monotonic() - started
    assert len(page["segments"]) == len(DEFAULT_SEGMENTS)
    assert [r.status for r in live_sandbox.requests("GET", SEGMENTS)] == [429, 200]
    assert waited >= 0.9  # backoff alone would wait 0.01 s: only Retry-After explains this


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retried_then_succeed(live_sandbox: Sandbox, status: int) -> None:
    live_sandbox.faults.add(Fault("segments", status=status, times=2))
    page = client(live_sandbox).get(SEGMENTS)
    assert [s["id"] for s in page["segments"]] == [s["id"] for s in DEFAULT_SEGMENTS]
    assert [r.status for r in live_sandbox.requests("GET", SEGMENTS)] == [status, status, 200]


def test_a_reset_connection_is_retried(live_sandbox: Sandbox) -> None:
    live_sandbox.faults.add(Fault("segment", status=0))
    segment = client(live_sandbox).get("/segments/v1/everyone")
    assert segment["id"] == "everyone"
    assert [r.status for r in live_sandbox.requests("GET", "/segments/v1/everyone")] == [0, 200]


def test_a_persistent_500_gives_up_with_a_clear_error(live_sandbox: Sandbox) -> None:
    live_sandbox.faults.add(Fault("segments", status=500, times=10, message="backend on fire"))
    with pytest.raises(FullStoryAPIError) as raised:
        client(live_sandbox, max_attempts=3).get(SEGMENTS)
    error = raised.value
    message = str(error)
    assert error.status == 500 and error.endpoint == "GET /segments/v1"
    assert "GET /segments/v1" in message and "HTTP 500" in message
    assert "backend on fire" in message
    assert "run again later" in message and "after retries" in message
    assert len(live_sandbox.requests("GET", SEGMENTS)) == 3


def test_a_persistent_429_says_how_long_fullstory_asked_to_wait(live_sandbox: Sandbox) -> None:
    live_sandbox.faults.add(Fault("segment", status=429, times=10))
    with pytest.raises(FullStoryAPIError) as raised:
        client(live_sandbox, max_attempts=2).get("/segments/v1/everyone")
    assert raised.value.status == 429
    assert "Rate limited" in str(raised.value)
    assert len(live_sandbox.requests("GET", "/segments/v1/everyone")) == 2


@pytest.mark.parametrize("status", [500, 503])
def test_create_is_retried_on_5xx_and_a_lost_answer_is_logged_as_a_possible_orphan(
    live_sandbox: Sandbox, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    # the export may have started before the error: FullStory cannot tell us its id, so the
    # retry may leave one orphan, which the log says (docs/fullstory-api.md)
    live_sandbox.faults.add(Fault("create", status=status, times=1, committed=True))
    answer = client(live_sandbox).post(EXPORTS, dict(CREATE_BODY), context="the window")
    assert answer["operationId"]
    assert [r.status for r in live_sandbox.requests("POST", EXPORTS)] == [status, 200]
    assert len(live_sandbox.created_operations()) == 2  # one orphan, one used
    assert any("orphan" in r.getMessage() and "the window" in r.getMessage() for r in caplog.records)


def test_create_is_retried_when_the_connection_breaks_after_the_request_arrived(
    live_sandbox: Sandbox,
) -> None:
    # the sandbox read the whole request, then reset the connection (before creating anything)
    live_sandbox.faults.add(Fault("create", status=0))
    answer = client(live_sandbox).post(EXPORTS, dict(CREATE_BODY))
    posts = live_sandbox.requests("POST", EXPORTS)
    assert posts[0].status == 0 and posts[0].body == CREATE_BODY
    assert [p.status for p in posts] == [0, 200] and answer["operationId"]
    assert len(live_sandbox.created_operations()) == 1


def test_create_that_keeps_failing_says_how_often_it_was_tried(live_sandbox: Sandbox) -> None:
    live_sandbox.faults.add(Fault("create", status=500, times=10))
    with pytest.raises(FullStoryAPIError) as raised:
        client(live_sandbox).post(EXPORTS, dict(CREATE_BODY))
    assert raised.value.status == 500 and "POST /segments/v1/exports" in str(raised.value)
    assert len(live_sandbox.requests("POST", EXPORTS)) == 5  # max_attempts
    assert live_sandbox.created_operations() == []


def test_create_is_retried_on_429(live_sandbox: Sandbox) -> None:
    live_sandbox.faults.add(Fault("create", status=429, times=2))
    answer = client(live_sandbox).post(EXPORTS, dict(CREATE_BODY))
    assert isinstance(answer["operationId"], str) and answer["operationId"]
    assert [r.status for r in live_sandbox.requests("POST", EXPORTS)] == [429, 429, 200]
    assert len(live_sandbox.created_exports()) == 1


# -- paging -------------------------------------------------------------------------------------


def test_segment_pages_in_both_flavors(sandbox: Sandbox) -> None:
    cursor_param = DIALECTS[sandbox.flavor].segments_cursor_param
    pages = list(client(sandbox).paginate(SEGMENTS, "segments", cursor_param, {"limit": 1}))
    assert [[s["id"] for s in page] for page in pages] == [[s["id"]] for s in DEFAULT_SEGMENTS]
    requests = sandbox.requests("GET", SEGMENTS)
    assert len(requests) == len(DEFAULT_SEGMENTS)
    assert all(r.status == 200 and r.query["limit"] == ["1"] for r in requests)
    assert cursor_param not in requests[0].query
    tokens = [r.query[cursor_param][0] for r in requests[1:]]
    assert len(set(tokens)) == len(tokens) == len(DEFAULT_SEGMENTS) - 1


def test_segment_pages_helper_lists_everything(sandbox: Sandbox) -> None:
    cursor_param = DIALECTS[sandbox.flavor].segments_cursor_param
    segments = [s for page in client(sandbox).segment_pages(cursor_param) for s in page]
    assert segments == DEFAULT_SEGMENTS


def test_the_paginator_also_drives_dlts_own_rest_client(sandbox: Sandbox) -> None:
    """TokenPaginator is a dlt paginator: dlt's RESTClient.paginate pages with it as we do."""
    cursor_param = DIALECTS[sandbox.flavor].segments_cursor_param
    auth = APIKeyAuth(name="Authorization", api_key=f"Basic {API_KEY}")
    rest = RESTClient(sandbox.base_url, auth=auth)
    paginator = TokenPaginator(SEGMENT_TOKEN_FIELDS, cursor_param)
    pages = list(rest.paginate(SEGMENTS, params={"limit": 1}, paginator=paginator, data_selector="segments"))
    assert [[s["id"] for s in page] for page in pages] == [[s["id"]] for s in DEFAULT_SEGMENTS]
    assert paginator.repeated is None


def test_a_repeated_token_stops_paging() -> None:
    def answer(method: str, path: str) -> tuple[int, Any]:
        return 200, {"segments": [{"id": "again"}], "nextPaginationToken": "same-token"}

    with stub_server(answer) as (base_url, seen):
        fs = FullStoryClient(API_KEY, base_url, backoff_factor=0.01, timeout=5.0)
        pages = list(fs.paginate(SEGMENTS, "segments", "paginationToken", {"limit": 1}))
    assert pages == [[{"id": "again"}], [{"id": "again"}]]
    assert len(seen) == 2
    assert "paginationToken=same-token" in seen[1]


def test_paging_a_body_of_unknown_shape_is_an_error() -> None:
    from fullstory_source import UnexpectedResponseError

    with stub_server(lambda method, path: (200, {"segments": "not a list"})) as (base_url, _):
        fs = FullStoryClient(API_KEY, base_url, backoff_factor=0.01, timeout=5.0)
        with pytest.raises(UnexpectedResponseError, match="GET /segments/v1"):
            list(fs.paginate(SEGMENTS, "segments", "paginationToken", {}))
