"""The FullStory sandbox: deterministic data, both API flavors over real HTTP, and every fault switch."""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
import requests

from fullstory_sandbox import DEFAULT_SEGMENTS, Fault, Sandbox, events, individuals, write_export
from fullstory_sandbox.data import in_segment
from fullstory_sandbox.segment_rules import SegmentRule

from .support import csv_cell

DAY = datetime(2026, 10, 1, tzinfo=UTC)
NEXT_DAY = DAY + timedelta(days=1)
SEGMENT = "checkout-abandoners"
KEY = "test-key"
AUTH = {"Authorization": f"Basic {KEY}"}


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(api_key=KEY, operation_polls=2) as running:
        yield running


def ts(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def get(sandbox: Sandbox, path: str, **params: Any) -> requests.Response:
    return requests.get(sandbox.base_url + path, headers=AUTH, params=params, timeout=10)


def create(
    sandbox: Sandbox,
    export_type: str,
    fmt: str,
    start: datetime = DAY,
    end: datetime = NEXT_DAY,
    segment: str = SEGMENT,
    **extra: Any,
) -> requests.Response:
    body = {"segmentId": segment, "type": export_type, "format": fmt, **extra}
    body["timeRange"] = {"start": ts(start), "end": ts(end)}
    return requests.post(sandbox.base_url + "/segments/v1/exports", headers=AUTH, json=body, timeout=10)


def operation_path(operation_id: str) -> str:
    """Ids are standard base64 (with '/', '+', '='): one percent-encoded path segment."""
    return f"/operations/v1/{quote(operation_id, safe='')}"


def results_path(export_id: str) -> str:
    return f"/search/v1/exports/{quote(export_id, safe='')}/results"


def poll_until_done(sandbox: Sandbox, operation_id: str) -> dict[str, Any]:
    for _ in range(10):
        operation = get(sandbox, operation_path(operation_id)).json()
        if operation["state"] in ("COMPLETED", "FAILED"):
            return operation
    raise AssertionError("operation never finished")


def download_link(sandbox: Sandbox, created: requests.Response) -> str:
    """Walk either flavor's lifecycle from a create response to a signed link."""
    assert created.status_code == 200, created.text
    if sandbox.flavor == "spec":
        return poll_until_done(sandbox, created.json()["id"])["results"]["downloadUrl"]
    results = poll_until_done(sandbox, created.json()["operationId"])["results"]
    located = get(sandbox, results_path(results["searchExportId"]))
    assert located.status_code == 200
    return located.json()["location"]


def parse(payload: bytes, fmt: str) -> list[dict[str, Any]]:
    text = gzip.decompress(payload).decode("utf-8")
    if fmt in ("json", "FORMAT_JSON"):
        return json.loads(text)
    if fmt in ("ndjson", "FORMAT_NDJSON"):
        return [json.loads(line) for line in text.splitlines()]
    return list(csv.DictReader(io.StringIO(text, newline="")))


def as_csv_cells(row: dict[str, Any], columns: list[str]) -> dict[str, str]:
    return {column: csv_cell(row.get(column)) for column in columns}


# Data


def test_events_are_deterministic_ordered_and_per_segment() -> None:
    day = list(events(SEGMENT, DAY, NEXT_DAY))
    assert day == list(events(SEGMENT, DAY, NEXT_DAY))
    everyone = list(events("everyone", DAY, NEXT_DAY))
    assert 72 <= len(everyone) <= 216
    starts = [row["EventStart"] for row in day]
    assert starts == sorted(starts, key=lambda text: datetime.fromisoformat(text))
    # a segment is a real subset of everyone: the same events, of its members only
    assert 0 < len(day) < len(everyone)
    assert day == [row for row in everyone if in_segment(SEGMENT, row["IndvId"])]


def test_hourly_windows_add_up_to_the_whole_day() -> None:
    hours = [
        row
        for h in range(24)
        for row in events(SEGMENT, DAY + timedelta(hours=h), DAY + timedelta(hours=h + 1))
    ]
    assert hours == list(events(SEGMENT, DAY, NEXT_DAY))
    # Split points inside an hour, down to the millisecond, must not lose or duplicate rows either.
    cut = DAY + timedelta(hours=5, minutes=17, milliseconds=431)
    assert list(events(SEGMENT, DAY, cut)) + list(events(SEGMENT, cut, NEXT_DAY)) == hours


def test_event_values_exercise_parsers() -> None:
    rows = list(events(SEGMENT, DAY, NEXT_DAY))
    assert any(row["IndvId"] > 2**53 for row in rows)
    assert any(row["SessionId"] > 2**53 for row in rows)
    assert any(len(row["EventStart"]) == 20 for row in rows)  # whole seconds
    assert any(len(row["EventStart"]) == 24 for row in rows)  # milliseconds
    assert all(row["EventStart"].endswith("Z") for row in rows)
    texts = [row["EventTargetText"] for row in rows] + [row["UserDisplayName"] for row in rows]
    assert any("," in text and '"' in text and "\n" in text for text in texts)
    assert any("🛒" in text for text in texts)
    assert isinstance(rows[0]["user_ltv_real"], int)  # a _real that starts out whole
    assert any(isinstance(row["user_ltv_real"], float) and row["user_ltv_real"] % 1 for row in rows)
    assert any("page_section_str" not in row for row in rows)  # sparse: absent, not null
    assert all(row.get("page_section_str", "x") is not None for row in rows)
    assert any("evt_coupon_str" in row for row in events(SEGMENT, DAY, DAY + timedelta(days=7)))


def test_individuals_follow_the_events_of_the_window() -> None:
    rows = list(events(SEGMENT, DAY, NEXT_DAY))
    people = list(individuals(SEGMENT, DAY, NEXT_DAY))
    assert [person["IndvId"] for person in people] == sorted({row["IndvId"] for row in rows})
    assert sum(person["NumEvents"] for person in people) == len(rows)
    assert len(people) >= 3


def test_write_export_streams_a_one_shot_iterator_as_csv(tmp_path: Any) -> None:
    path = tmp_path / "x.csv.gz"
    rows = iter([{"a": 1, "b": [1, 2]}, {"a": 2, "c": True, "b": None}])
    assert write_export(path, rows, "csv") == 2
    text = gzip.decompress(path.read_bytes()).decode()
    assert text == 'a,b,c\r\n1,"[1, 2]",\r\n2,,true\r\n'


# HTTP: auth and segments


def test_api_requires_the_raw_key_as_basic_auth(sandbox: Sandbox) -> None:
    for headers in ({}, {"Authorization": "Basic wrong"}, {"Authorization": "Bearer test-key"}):
        response = requests.get(sandbox.base_url + "/segments/v1", headers=headers, timeout=10)
        assert response.status_code == 401
        assert response.json()["code"] == 401
    assert get(sandbox, "/segments/v1").status_code == 200
    assert [entry.status for entry in sandbox.requests("GET", "/segments")] == [401, 401, 401, 200]


@pytest.mark.parametrize("flavor", ["spec", "live"])
def test_segment_pagination(flavor: str) -> None:
    segments = [{"id": f"s{n}", "name": f"S {n}", "creator": "a@example.com"} for n in range(7)]
    with Sandbox(api_key=KEY, flavor=flavor, segments=segments) as sandbox:
        seen: list[str] = []
        params: dict[str, Any] = {"limit": 3}
        pages = 0
        while True:
            page = get(sandbox, "/segments/v1", **params).json()
            pages += 1
            seen += [segment["id"] for segment in page["segments"]]
            token = page.get("pagination_token" if flavor == "spec" else "nextPaginationToken")
            if not token:
                break
            params["pagination_token" if flavor == "spec" else "paginationToken"] = token
        assert seen == [segment["id"] for segment in segments]
        assert pages == 3
        assert (
            ("pagination_token" in page) is False if flavor == "spec" else page["nextPaginationToken"] == ""
        )
        assert get(sandbox, "/segments/v1", limit=101).status_code == 400
        assert get(sandbox, "/segments/v1", pagination_token="junk").status_code == 400
        assert len(get(sandbox, "/segments/v1").json()["segments"]) == 7


def test_get_segment(sandbox: Sandbox) -> None:
    assert get(sandbox, "/segments/v1/everyone").json() == DEFAULT_SEGMENTS[0]
    assert "created" not in DEFAULT_SEGMENTS[0]
    missing = get(sandbox, "/segments/v1/nope")
    assert missing.status_code == 404 and missing.json()["code"] == 404


# HTTP: export lifecycles


@pytest.mark.parametrize("fmt", ["json", "ndjson", "csv"])
def test_spec_lifecycle(sandbox: Sandbox, fmt: str) -> None:
    created = create(sandbox, "events", fmt)
    assert created.json()["state"] == "PENDING" and created.json()["type"] == "SEGMENT_EXPORT"
    first = get(sandbox, operation_path(created.json()["id"])).json()
    assert first["state"] == "RUNNING" and 0 < first["estimatePctComplete"] < 100
    link = download_link(sandbox, created)
    response = requests.get(link, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/gzip"
    assert "Content-Encoding" not in response.headers
    assert response.content[:2] == b"\x1f\x8b"
    rows = parse(response.content, fmt)
    expected = sandbox.expected_rows("events", SEGMENT, DAY, NEXT_DAY)
    if fmt == "csv":
        columns = list(rows[0])
        assert rows == [as_csv_cells(row, columns) for row in expected]
        assert any("," in v and '"' in v and "\n" in v for row in rows for v in row.values())
    else:
        assert rows == expected
        if fmt == "json":  # int64 survive exactly; a _real starts as `96` and later says `2.5` or `4.0`
            text = gzip.decompress(response.content).decode()
            assert str(max(row["IndvId"] for row in expected)) in text
            assert text.startswith("[{") and text.endswith("}]") and "},\n{" in text
            assert f'"user_ltv_real": {expected[0]["user_ltv_real"]},' in text
    assert sandbox.created_exports()[0]["format"] == fmt


@pytest.mark.parametrize("fmt", ["FORMAT_JSON", "FORMAT_NDJSON", "FORMAT_CSV"])
def test_live_lifecycle(sandbox: Sandbox, fmt: str) -> None:
    sandbox.flavor = "live"
    created = create(sandbox, "TYPE_INDIVIDUAL", fmt)
    assert set(created.json()) == {"operationId"}
    pending = get(sandbox, operation_path(created.json()["operationId"])).json()
    assert pending["state"] == "PENDING"
    done = poll_until_done(sandbox, created.json()["operationId"])
    assert done["state"] == "COMPLETED" and "downloadUrl" not in done["results"]
    assert {"searchExportId", "expires"} <= set(done["results"])
    rows = parse(requests.get(download_link(sandbox, created), timeout=10).content, fmt)
    expected = sandbox.expected_rows("individuals", SEGMENT, DAY, NEXT_DAY)
    if fmt == "FORMAT_CSV":
        assert rows == [as_csv_cells(row, list(rows[0])) for row in expected]
    else:
        assert rows == expected


def test_live_fields_restrict_rows(sandbox: Sandbox) -> None:
    sandbox.flavor = "live"
    created = create(sandbox, "TYPE_EVENT", "FORMAT_NDJSON", fields=["EventStart", "user_*"])
    rows = parse(requests.get(download_link(sandbox, created), timeout=10).content, "ndjson")
    assert rows == sandbox.expected_rows("events", SEGMENT, DAY, NEXT_DAY, fields=["EventStart", "user_*"])
    assert all(key == "EventStart" or key.startswith("user_") for row in rows for key in row)
    assert "user_ltv_real" in rows[0] and "PageUrl" not in rows[0]


def test_spec_issues_a_fresh_link_on_every_poll(tmp_path: Any) -> None:
    with Sandbox(api_key=KEY, workdir=str(tmp_path)) as sandbox:
        created = create(sandbox, "events", "json")
        poll_until_done(sandbox, created.json()["id"])
        sandbox.expire_links()
        again = get(sandbox, operation_path(created.json()["id"])).json()
        assert requests.get(again["results"]["downloadUrl"], timeout=10).status_code == 200
    assert len(list(tmp_path.glob("*.gz"))) == 1  # written once, however often it is polled


def test_download_rejects_an_authorization_header(sandbox: Sandbox) -> None:
    link = download_link(sandbox, create(sandbox, "events", "json"))
    response = requests.get(link, headers=AUTH, timeout=10)
    assert response.status_code == 400
    assert "auth mechanism" in response.json()["message"]


def test_expired_or_forged_links_are_403(sandbox: Sandbox) -> None:
    created = create(sandbox, "events", "json")
    link = download_link(sandbox, created)
    sandbox.expire_links()
    expired = requests.get(link, timeout=10)
    assert expired.status_code == 403 and "expired" in expired.json()["message"]
    fresh = download_link(sandbox, created)  # polling again yields a new, valid link
    assert requests.get(fresh, timeout=10).status_code == 200
    assert requests.get(fresh.replace("signature=", "signature=0"), timeout=10).status_code == 403


def test_short_link_ttl_expires() -> None:
    with Sandbox(api_key=KEY, link_ttl=-1) as sandbox:
        link = download_link(sandbox, create(sandbox, "events", "json"))
        assert requests.get(link, timeout=10).status_code == 403


# HTTP: validation


def test_live_rejects_spec_spellings_and_spec_rejects_live_ones(sandbox: Sandbox) -> None:
    sandbox.flavor = "live"
    assert create(sandbox, "events", "FORMAT_JSON").status_code == 400
    assert create(sandbox, "TYPE_EVENT", "json").status_code == 400
    assert create(sandbox, "TYPE_EVENT", "FORMAT_JSON").status_code == 200
    sandbox.flavor = "spec"
    assert create(sandbox, "TYPE_EVENT", "json").status_code == 400
    assert create(sandbox, "events", "FORMAT_JSON").status_code == 400
    assert len(sandbox.created_exports()) == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"segmentId": "nope", "type": "events", "format": "json"}, "segment not found"),
        ({"segmentId": SEGMENT, "type": "events", "format": "json", "timeRange": None}, "timeRange"),
        ({"segmentId": SEGMENT, "type": "events", "format": "json"}, "timeRange is required"),
        ({"segmentId": SEGMENT, "type": "events", "format": "xml"}, "invalid format"),
        (
            {"segmentId": SEGMENT, "type": "events", "timeRange": {"start": "yesterday", "end": ts(DAY)}},
            "RFC 3339",
        ),
        ({"segmentId": SEGMENT, "type": "events", "timeRange": {"start": ts(DAY), "end": ts(DAY)}}, "before"),
    ],
)
def test_create_validation(sandbox: Sandbox, body: dict[str, Any], message: str) -> None:
    if body["segmentId"] == "nope" or body.get("format") == "xml":
        body["timeRange"] = {"start": ts(DAY), "end": ts(NEXT_DAY)}
    response = requests.post(sandbox.base_url + "/segments/v1/exports", headers=AUTH, json=body, timeout=10)
    assert response.status_code == 400
    assert message in response.json()["message"]


def test_unknown_ids_are_404(sandbox: Sandbox) -> None:
    assert get(sandbox, "/operations/v1/nope").status_code == 404
    sandbox.flavor = "live"
    assert get(sandbox, "/search/v1/exports/nope/results").status_code == 404


# Faults


@pytest.mark.parametrize("endpoint", ["segments", "segment", "create", "operation", "link", "download"])
def test_status_faults_hit_each_endpoint_once(sandbox: Sandbox, endpoint: str) -> None:
    sandbox.flavor = "live"
    sandbox.faults.add(Fault(endpoint, status=429, retry_after=0.5, message="slow down"))
    calls = {
        "segments": lambda: get(sandbox, "/segments/v1"),
        "segment": lambda: get(sandbox, f"/segments/v1/{SEGMENT}"),
        "create": lambda: create(sandbox, "TYPE_EVENT", "FORMAT_JSON"),
    }
    if endpoint in calls:
        call = calls[endpoint]
    else:
        created = create(sandbox, "TYPE_EVENT", "FORMAT_JSON").json()["operationId"]
        if endpoint == "operation":

            def call() -> requests.Response:
                return get(sandbox, operation_path(created))
        else:
            export_id = poll_until_done(sandbox, created)["results"]["searchExportId"]
            if endpoint == "link":

                def call() -> requests.Response:
                    return get(sandbox, results_path(export_id))
            else:
                link = get(sandbox, results_path(export_id)).json()["location"]

                def call() -> requests.Response:
                    return requests.get(link, timeout=10)

    failed = call()
    assert failed.status_code == 429
    assert failed.headers["Retry-After"] == "0.5"
    assert failed.json() == {"code": 429, "message": "slow down"}
    assert call().status_code == 200


def test_fault_times_segment_scope_and_reset(sandbox: Sandbox) -> None:
    sandbox.faults.add(Fault("create", status=503, times=2, segment_id="power-users"))
    sandbox.faults.add(Fault("segments", status=0))
    assert create(sandbox, "events", "json").status_code == 200  # other segment: untouched
    assert create(sandbox, "events", "json", segment="power-users").status_code == 503
    assert create(sandbox, "events", "json", segment="power-users").status_code == 503
    assert create(sandbox, "events", "json", segment="power-users").status_code == 200
    with pytest.raises(requests.ConnectionError):
        get(sandbox, "/segments/v1")
    assert get(sandbox, "/segments/v1").status_code == 200
    assert sandbox.requests("GET", "/segments/v1")[0].status == 0


def test_spec_link_fault_hits_the_completing_poll(sandbox: Sandbox) -> None:
    sandbox.faults.add(Fault("link", status=500))
    operation_id = create(sandbox, "events", "json").json()["id"]
    assert get(sandbox, operation_path(operation_id)).json()["state"] == "RUNNING"
    assert get(sandbox, operation_path(operation_id)).status_code == 500
    assert get(sandbox, operation_path(operation_id)).json()["state"] == "COMPLETED"


@pytest.mark.parametrize("flavor", ["spec", "live"])
def test_fail_operations(sandbox: Sandbox, flavor: str) -> None:
    sandbox.flavor = flavor
    sandbox.faults.fail_operations(error_details="boom", segment_id=SEGMENT)
    export_type = "events" if flavor == "spec" else "TYPE_EVENT"
    fmt = "json" if flavor == "spec" else "FORMAT_JSON"
    first = create(sandbox, export_type, fmt).json()
    failed = poll_until_done(sandbox, first.get("id") or first["operationId"])
    assert failed["state"] == "FAILED" and failed["errorDetails"] == "boom" and "finishedAt" in failed
    assert "results" not in failed
    second = create(sandbox, export_type, fmt).json()
    assert poll_until_done(sandbox, second.get("id") or second["operationId"])["state"] == "COMPLETED"


def test_truncated_and_corrupt_downloads(sandbox: Sandbox) -> None:
    created = create(sandbox, "events", "json")
    link = download_link(sandbox, created)
    sandbox.faults.truncate_downloads()
    sandbox.faults.corrupt_downloads()
    truncated = requests.get(link, timeout=10)
    assert truncated.status_code == 200
    assert len(truncated.content) == int(truncated.headers["Content-Length"])  # looks complete
    with pytest.raises((EOFError, zlib.error, gzip.BadGzipFile)):
        gzip.decompress(truncated.content)
    corrupt = requests.get(link, timeout=10)
    assert corrupt.status_code == 200 and corrupt.content[:2] != b"\x1f\x8b"
    with pytest.raises(gzip.BadGzipFile):
        gzip.decompress(corrupt.content)
    intact = requests.get(link, timeout=10)
    assert parse(intact.content, "json") == sandbox.expected_rows("events", SEGMENT, DAY, NEXT_DAY)


def test_faults_clear(sandbox: Sandbox) -> None:
    sandbox.faults.add(Fault("segments"))
    sandbox.faults.corrupt_downloads()
    sandbox.faults.clear()
    assert get(sandbox, "/segments/v1").status_code == 200
    with pytest.raises(ValueError):
        Fault("nowhere")


# Behaviours of the real API that FullStory's own tools rely on (docs/fullstory-api.md)

CLICKERS = "recent-clickers"
NOW = datetime(2026, 10, 3, 12, tzinfo=UTC)
WINDOW = (DAY + timedelta(hours=9), DAY + timedelta(hours=15))


@pytest.fixture
def segmented() -> Iterator[Sandbox]:
    """A live sandbox with one relative segment: people who clicked in the last 3 days."""
    segments = [
        *DEFAULT_SEGMENTS,
        {"id": CLICKERS, "name": "Clicked in the last 3 days", "creator": "ana.silva@example.com"},
    ]
    rules = {CLICKERS: SegmentRule("EventType", "click", last_days=3)}
    with Sandbox(api_key=KEY, flavor="live", segments=segments, segment_rules=rules, history_days=4) as sb:
        sb.clock = NOW
        yield sb


def exported(
    sb: Sandbox, export_type: str = "TYPE_EVENT", segment: str = CLICKERS, **extra: Any
) -> list[Any]:
    created = create(sb, export_type, "FORMAT_NDJSON", *WINDOW, segment=segment, **extra)
    return parse(requests.get(download_link(sb, created), timeout=10).content, "ndjson")


def key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["EventStart"], row["UserId"], row["SessionId"], row["PageId"], row["EventType"])


def keys(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [key(row) for row in rows]


def window_range() -> dict[str, str]:
    return {"start": ts(WINDOW[0]), "end": ts(WINDOW[1])}


def test_a_relative_segment_is_evaluated_when_the_export_is_created(segmented: Sandbox) -> None:
    generated = list(events(CLICKERS, *WINDOW))
    clicks = [row for row in generated if row["EventType"] == "click"]
    assert clicks and len(clicks) < len(generated)
    # No segmentTimeRange: "the last 3 days" counted from the export. Two days after the window
    # its clicks are matches; five days after, the same request returns nothing.
    assert keys(exported(segmented)) == keys(clicks)
    segmented.clock = NOW + timedelta(days=3)
    assert exported(segmented) == []
    # An explicit range makes the export reproducible whenever it runs: the window itself
    # (FullStory's CLI), or "" bounds meaning all time (hauser), reaching back `history_days`.
    assert keys(exported(segmented, segmentTimeRange=window_range())) == keys(clicks)
    segmented.history_days = 10
    everything = exported(segmented, segmentTimeRange={"start": "", "end": ""})
    assert keys(everything) == keys(clicks)
    oracle = segmented.expected_rows("TYPE_EVENT", CLICKERS, *WINDOW, segment_time_range=(None, None))
    assert everything == oracle
    assert segmented.created_exports()[-1]["segmentTimeRange"] == {"start": "", "end": ""}


def test_event_scope_picks_matching_events_pages_sessions_or_people(segmented: Sandbox) -> None:
    generated = list(events(CLICKERS, *WINDOW))
    clicks = [row for row in generated if row["EventType"] == "click"]
    pages = {(r["UserId"], r["SessionId"], r["PageId"]) for r in clicks}
    sessions = {(r["UserId"], r["SessionId"]) for r in clicks}
    people = {r["IndvId"] for r in clicks}
    expected = {
        "SCOPE_EVENT": clicks,
        "SCOPE_EVENTS": clicks,  # FullStory's SDK spelling
        "SCOPE_PAGES": [r for r in generated if (r["UserId"], r["SessionId"], r["PageId"]) in pages],
        "SCOPE_SESSIONS": [r for r in generated if (r["UserId"], r["SessionId"]) in sessions],
        "SCOPE_INDIVIDUAL": [r for r in generated if r["IndvId"] in people],
    }
    sizes = []
    for scope, rows in expected.items():
        got = exported(segmented, segmentTimeRange=window_range(), eventDetails={"scope": scope})
        assert keys(got) == keys(rows), scope
        sizes.append(len(got))
    assert sizes[0] <= sizes[2] <= sizes[3] <= sizes[4] < len(generated)  # each scope holds more
    assert sizes[0] < sizes[3]
    # Without eventDetails the sandbox assumes the narrowest scope (the server default is undocumented).
    assert keys(exported(segmented, segmentTimeRange=window_range())) == keys(clicks)
    # Segments without a rule (everyone): every scope is every event of the window.
    for scope in ("SCOPE_EVENT", "SCOPE_SESSIONS"):
        got = exported(segmented, segment="everyone", eventDetails={"scope": scope})
        assert keys(got) == keys(list(events("everyone", *WINDOW)))
    bad = create(segmented, "TYPE_EVENT", "FORMAT_JSON", eventDetails={"scope": "SESSIONS"})
    assert bad.status_code == 400 and "eventDetails.scope" in bad.json()["message"]


def test_individuals_of_a_segment_are_its_members(segmented: Sandbox) -> None:
    clickers = {r["IndvId"] for r in events(CLICKERS, *WINDOW) if r["EventType"] == "click"}
    rows = exported(segmented, "TYPE_INDIVIDUAL", segmentTimeRange=window_range())
    assert [row["IndvId"] for row in rows] == sorted(clickers)
    assert len(clickers) < len(list(individuals(CLICKERS, *WINDOW)))


def test_operation_ids_are_standard_base64_and_must_be_percent_encoded(tmp_path: Any) -> None:
    with Sandbox(api_key=KEY, flavor="live", operation_ids="base64", workdir=str(tmp_path)) as sb:
        operation_id = create(sb, "TYPE_EVENT", "FORMAT_JSON").json()["operationId"]
        assert "+" in operation_id and "/" in operation_id and operation_id.endswith("==")
        assert get(sb, f"/operations/v1/{operation_id}").status_code == 404  # '/' splits the path
        done = poll_until_done(sb, operation_id)
        assert done["id"] == operation_id and done["type"] == "SEARCH_EXPORT"
        export_id = done["results"]["searchExportId"]
        assert "/" in export_id
        assert get(sb, f"/search/v1/exports/{export_id}/results").status_code == 404
        located = get(sb, f"/search/v1/exports/{quote(export_id, safe='')}/results").json()["location"]
        rows = parse(requests.get(located, timeout=10).content, "json")
        assert rows == sb.expected_rows("TYPE_EVENT", SEGMENT, DAY, NEXT_DAY)


@pytest.mark.parametrize(("status", "committed"), [(500, False), (0, False), (0, True), (502, True)])
def test_create_failures_before_or_after_the_export_exists(
    segmented: Sandbox, status: int, committed: bool
) -> None:
    segmented.faults.add(Fault("create", status=status, committed=committed))
    if status == 0:
        with pytest.raises(requests.ConnectionError):
            create(segmented, "TYPE_EVENT", "FORMAT_JSON")
    else:
        assert create(segmented, "TYPE_EVENT", "FORMAT_JSON").status_code == status
    # A lost answer after the export was created leaves an operation nobody knows the id of.
    assert len(segmented.created_operations()) == int(committed)
    assert segmented.created_exports() == []
    listed = get(segmented, "/operations/v1", type="SEARCH_EXPORT").json()["operations"]
    assert len(listed) == int(committed)
    assert create(segmented, "TYPE_EVENT", "FORMAT_JSON").status_code == 200
    assert len(segmented.created_operations()) == 1 + int(committed)


def test_operations_list_as_documented(segmented: Sandbox) -> None:
    ids = [create(segmented, "TYPE_EVENT", "FORMAT_JSON").json()["operationId"] for _ in range(3)]
    poll_until_done(segmented, ids[0])
    listed = get(segmented, "/operations/v1", type="SEARCH_EXPORT", limit=2).json()
    assert [op["id"] for op in listed["operations"]] == ids[:0:-1]  # newest first
    assert all(op["type"] == "SEARCH_EXPORT" and "details" not in op for op in listed["operations"])
    rest = get(
        segmented, "/operations/v1", type="SEARCH_EXPORT", paginationToken=listed["nextPaginationToken"]
    )
    assert [op["id"] for op in rest.json()["operations"]] == [ids[0]]
    assert rest.json()["nextPaginationToken"] == ""
    done = get(segmented, "/operations/v1", type="SEARCH_EXPORT", state="COMPLETED").json()["operations"]
    assert [op["id"] for op in done] == [ids[0]] and set(done[0]["results"]) == {"searchExportId", "expires"}
    # Nothing in the list says which segment or time range an export is for (no "details").
    assert not any(ts(WINDOW[0]) in json.dumps(op) or SEGMENT in json.dumps(op) for op in done)
    assert get(segmented, "/operations/v1", type="DELETE_USER").json()["operations"] == []
    assert get(segmented, "/operations/v1", type="EXPORT").status_code == 400
    assert get(segmented, "/operations/v1", limit=101).status_code == 400


def test_segments_list_can_name_its_token_the_older_way() -> None:
    segments = [{"id": f"s{n}", "name": f"S {n}", "creator": "a@example.com"} for n in range(3)]
    with Sandbox(api_key=KEY, flavor="live", segments=segments, segments_token="next_pagination_token") as sb:
        first = get(sb, "/segments/v1", limit=2).json()
        assert "nextPaginationToken" not in first and first["next_pagination_token"]
        second = get(sb, "/segments/v1", limit=2, paginationToken=first["next_pagination_token"]).json()
        assert [s["id"] for s in first["segments"] + second["segments"]] == ["s0", "s1", "s2"]
        assert second["next_pagination_token"] == ""
        odd = {"id": "ana@example.com:4241245858598272", "name": "Odd id", "creator": "ana@example.com"}
        sb.segments.append(odd)
        assert get(sb, f"/segments/v1/{quote(odd['id'], safe='')}").json() == odd


def test_exports_carry_todays_field_names_and_the_newer_fields(segmented: Sandbox) -> None:
    rows = exported(segmented, segment="everyone")
    assert not any("EventTargetSelectorTok" in row for row in rows)
    assert any(row["EventTargetSelector"] for row in rows)
    loads = [row for row in rows if row["EventType"] == "load"]
    assert loads and all(isinstance(row["LoadLargestPaintTime"], int) for row in loads)
    shifts = [row["EventCumulativeLayoutShift"] for row in loads]
    assert any(isinstance(shift, float) for shift in shifts)
    assert all(isinstance(row["PageNumEvents"], int) for row in rows)
    people = exported(segmented, "TYPE_INDIVIDUAL", segment="everyone")
    assert all(
        {"AvgSessionActiveSec", "MaxSessionSec", "LastSessionNumEvents", "LastLatLong"} <= set(p)
        for p in people
    )
    segmented.field_set = "legacy"
    assert all("EventTargetSelectorTok" in row for row in exported(segmented, segment="everyone"))


def test_a_fault_every_few_requests_on_any_endpoint(sandbox: Sandbox) -> None:
    sandbox.faults.add(Fault("any", status=503, every=3, times=2))
    statuses = [get(sandbox, "/segments/v1").status_code for _ in range(8)]
    assert statuses == [200, 200, 503, 200, 200, 503, 200, 200]
    with pytest.raises(ValueError):
        Fault("operation", committed=True)


def test_an_export_cache_name_keys_on_the_segment_range_only_where_it_changes_the_rows() -> None:
    """`everyone` over the default "all" range holds every row of the window, whatever the
    moment the range ends: one cached file, not a new one for every run of the benchmark."""
    from fullstory_sandbox.segment_rules import SegmentRule, Selection
    from fullstory_sandbox.server import export_cache_name
    from fullstory_sandbox.validate import ExportJob

    day = datetime(2026, 10, 1, tzinfo=UTC)
    job = ExportJob("everyone", "events", "json", day, day + timedelta(days=1), None)
    plain = export_cache_name(job, 100)
    for now in (day + timedelta(days=2), day + timedelta(days=3)):
        assert (
            export_cache_name(
                job, 100, Selection("everyone", None, day - timedelta(days=90), now, "sessions")
            )
            == plain
        )
    ruled = Selection("everyone", SegmentRule("EventType", "click"), day, day + timedelta(days=2), "sessions")
    partial = Selection("everyone", None, day + timedelta(hours=6), day + timedelta(days=2), "sessions")
    assert len({plain, export_cache_name(job, 100, ruled), export_cache_name(job, 100, partial)}) == 3
