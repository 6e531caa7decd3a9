"""The export lifecycle against the sandbox in both API shapes: create -> poll -> link -> download."""

from __future__ import annotations

import csv
import gzip
import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from fullstory_sandbox import Fault, Sandbox
from fullstory_source import (
    DownloadError,
    ExportFailedError,
    FullStoryAPIError,
    UnexpectedResponseError,
)
from fullstory_source.client import FullStoryClient, download_session
from fullstory_source.config import Polling
from fullstory_source.events import EventSink, ExportEvent, ignore
from fullstory_source.exports import DownloadedExport, ExportApi, ExportJob
from fullstory_source.journal import OperationJournal
from fullstory_source.lifecycle import ExportServices, export_window
from fullstory_source.registry import DIALECTS
from fullstory_source.scheduler import TokenBucket
from fullstory_source.windows import Window

from .support import API_KEY, DAY1, stub_server

SEGMENT = "everyone"
WINDOW = Window(DAY1, DAY1 + timedelta(hours=6))
JOB = ExportJob(SEGMENT, "events", WINDOW)
WINDOW_TEXTS = ("2026-10-01T00:00:00Z", "2026-10-01T06:00:00Z")
DOWNLOAD = "/download/"
OPERATIONS = "/operations/v1/"


class Exporter:
    """Runs one window through the production lifecycle (`WindowExport.fetch`, as the pool does)
    and raises what it recorded, so a test can look at one export at a time."""

    def __init__(self, services: ExportServices) -> None:
        self.services = services

    def export(self, job: ExportJob, events: EventSink = ignore) -> DownloadedExport:
        self.services.events = events
        return export_window(job, self.services)


def make_exporter(
    base_url: str, flavor: str, download_dir: Path, export_format: str = "json", **options: Any
) -> Exporter:
    client = FullStoryClient(API_KEY, base_url, backoff_factor=0.01, timeout=10.0, max_attempts=3)
    api = ExportApi(client, download_session(10.0, 3, 0.01), DIALECTS[flavor], export_format, download_dir)
    polling = Polling(0.01, 0.05, options.get("poll_timeout", 3600.0))
    services = ExportServices(
        api,
        OperationJournal(None, "test"),
        ignore,
        TokenBucket(60_000, 8),
        polling,
        options.get("download_attempts", 3),
    )
    return Exporter(services)


def exporter_for(sb: Sandbox, tmp_path: Path, export_format: str = "json", **options: Any) -> Exporter:
    return make_exporter(sb.base_url, sb.flavor, tmp_path / "downloads", export_format, **options)


def json_rows(export: DownloadedExport) -> list[dict[str, Any]]:
    with gzip.open(export.path, "rt", encoding="utf-8") as file:
        return list(json.load(file))


def served_file(sb: Sandbox) -> bytes:
    """The one export file the sandbox built (its workdir holds nothing else)."""
    assert sb.workdir is not None
    (path,) = Path(sb.workdir).glob("*.gz")
    return path.read_bytes()


def expected(sb: Sandbox, export_type: str = "events") -> list[dict[str, Any]]:
    rows = sb.expected_rows(export_type, SEGMENT, WINDOW.start, WINDOW.end)
    assert len(rows) > 5  # a window with real content, or the comparisons prove little
    return rows


# -- the happy path -----------------------------------------------------------------------------


@pytest.mark.parametrize("export_type", ["events", "individuals"])
def test_a_full_export_holds_exactly_the_rows_of_the_window(
    sandbox: Sandbox, tmp_path: Path, export_type: str
) -> None:
    job = ExportJob(SEGMENT, export_type, WINDOW)
    export = exporter_for(sandbox, tmp_path).export(job)

    assert json_rows(export) == expected(sandbox, export_type)
    assert export.compressed and not export.empty
    assert export.job == job and export.export_format == "json"
    assert export.bytes_downloaded == export.path.stat().st_size > 0
    assert export.path.parent == tmp_path / "downloads"

    (created,) = sandbox.created_exports()
    dialect = DIALECTS[sandbox.flavor]
    assert created == {
        "segmentId": SEGMENT,
        "type": dialect.type_name(export_type),
        "format": dialect.format_names["json"],
        "timeRange": {"start": WINDOW_TEXTS[0], "end": WINDOW_TEXTS[1]},
        # membership over all time, whole sessions (request_fields.py)
        "segmentTimeRange": {"start": "", "end": ""},
        **({"eventDetails": {"scope": "SCOPE_SESSIONS"}} if export_type == "events" else {}),
    }


def test_ndjson_and_csv_exports_arrive_byte_for_byte(sandbox: Sandbox, tmp_path: Path) -> None:
    rows = expected(sandbox)
    for export_format in ("ndjson", "csv"):
        with Sandbox(
            api_key=API_KEY, flavor=sandbox.flavor, workdir=str(tmp_path / f"sb-{export_format}")
        ) as sb:
            export = exporter_for(sb, tmp_path / export_format, export_format).export(JOB)
            assert export.path.read_bytes() == served_file(sb)
            text = gzip.decompress(export.path.read_bytes()).decode("utf-8")
            if export_format == "ndjson":
                assert [json.loads(line) for line in text.splitlines()] == rows
            else:
                assert len(list(csv.DictReader(io.StringIO(text, newline="")))) == len(rows)


def test_an_empty_window_is_reported_empty(tmp_path: Path) -> None:
    with Sandbox(api_key=API_KEY, flavor="live", events_per_hour=0, workdir=str(tmp_path / "sb")) as sb:
        for export_format in ("json", "ndjson", "csv"):
            export = exporter_for(sb, tmp_path / export_format, export_format).export(JOB)
            assert export.empty, export_format
            assert export.path.exists()


def test_only_api_requests_carry_the_key(sandbox: Sandbox, tmp_path: Path) -> None:
    exporter_for(sandbox, tmp_path).export(JOB)
    downloads = sandbox.requests("GET", DOWNLOAD)
    assert len(downloads) == 1 and downloads[0].status == 200
    assert all(name.lower() != "authorization" for name in downloads[0].headers)
    api = [r for r in sandbox.requests() if not r.path.startswith(DOWNLOAD)]
    assert len(api) >= 3  # create, polls (and the live link request)
    assert all(r.headers.get("Authorization") == f"Basic {API_KEY}" for r in api)


def test_polls_until_the_operation_completes(flavor: str, tmp_path: Path) -> None:
    with Sandbox(api_key=API_KEY, flavor=flavor, operation_polls=4, workdir=str(tmp_path / "sb")) as sb:
        export = exporter_for(sb, tmp_path).export(JOB)
        assert json_rows(export) == expected(sb)
        assert len(sb.requests("GET", OPERATIONS)) == 4


def test_transient_api_errors_during_the_export_are_retried(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.faults.add(Fault("operation", status=503, times=2))
    sandbox.faults.add(Fault("link", status=500, times=1))
    export = exporter_for(sandbox, tmp_path).export(JOB)
    assert json_rows(export) == expected(sandbox)
    statuses = [r.status for r in sandbox.requests() if not r.path.startswith(DOWNLOAD)]
    assert statuses.count(503) == 2 and statuses.count(500) == 1
    assert len(sandbox.created_exports()) == 1


# -- expired links ------------------------------------------------------------------------------


def test_a_link_that_expired_after_the_operation_completed_is_replaced(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    def expire_when_completed(event: ExportEvent) -> None:
        if event.state == "Downloading" and event.bytes_downloaded is None:  # before the download
            sandbox.expire_links()

    export = exporter_for(sandbox, tmp_path).export(JOB, expire_when_completed)

    assert json_rows(export) == expected(sandbox)
    if sandbox.flavor == "spec":
        # the completed operation carried the link: it expired, a re-poll gave a fresh one
        assert [r.status for r in sandbox.requests("GET", DOWNLOAD)] == [403, 200]
        assert len(sandbox.requests("GET", OPERATIONS)) == 3
    else:
        # the live API hands out the link only when asked, after the expiry: it is fresh
        assert [r.status for r in sandbox.requests("GET", DOWNLOAD)] == [200]


def test_a_refused_link_is_replaced_by_a_fresh_one(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.faults.add(Fault("download", status=403, message="Request has expired"))
    export = exporter_for(sandbox, tmp_path).export(JOB)
    assert json_rows(export) == expected(sandbox)
    assert [r.status for r in sandbox.requests("GET", DOWNLOAD)] == [403, 200]
    # the link was asked for again: one more poll, and in live also one more results request
    assert len(sandbox.requests("GET", OPERATIONS)) == 3
    if sandbox.flavor == "live":
        assert len(sandbox.requests("GET", "/search/v1/exports/")) == 2
    assert len(sandbox.created_exports()) == 1


def test_links_that_keep_being_refused_end_in_a_download_error(live_sandbox: Sandbox, tmp_path: Path) -> None:
    live_sandbox.faults.add(Fault("download", status=403, times=5))
    download_dir = tmp_path / "downloads"
    with pytest.raises(DownloadError) as raised:
        exporter_for(live_sandbox, tmp_path).export(JOB)
    message = str(raised.value)
    assert "'everyone'" in message and "events" in message
    assert all(text in message for text in WINDOW_TEXTS)
    assert "3 attempts" in message and "HTTP 403" in message
    assert "signature" not in message and "expires=" not in message  # links are redacted
    assert len(live_sandbox.requests("GET", DOWNLOAD)) == 3
    assert list(download_dir.iterdir()) == []


# -- damaged downloads --------------------------------------------------------------------------


def damage_downloads(sb: Sandbox, damage: str, times: int) -> None:
    if damage == "truncate":
        sb.faults.truncate_downloads(times)  # half the gzip, with a matching Content-Length
    else:
        sb.faults.corrupt_downloads(times)  # an XML error page instead of gzip


@pytest.mark.parametrize("damage", ["truncate", "corrupt"])
def test_a_damaged_download_is_fetched_again_from_the_start(
    sandbox: Sandbox, tmp_path: Path, damage: str
) -> None:
    damage_downloads(sandbox, damage, 1)
    export = exporter_for(sandbox, tmp_path).export(JOB)

    assert export.compressed
    assert export.path.read_bytes() == served_file(sandbox)
    assert export.bytes_downloaded == len(served_file(sandbox))
    assert json_rows(export) == expected(sandbox)
    assert len(sandbox.requests("GET", DOWNLOAD)) == 2


@pytest.mark.parametrize("damage", ["truncate", "corrupt"])
@pytest.mark.parametrize("export_format", ["ndjson", "csv"])
def test_damage_is_caught_in_every_format(
    live_sandbox: Sandbox, tmp_path: Path, damage: str, export_format: str
) -> None:
    """A non-gzip body is accepted only when it looks like the text asked for (a proxy may
    inflate); an error page is not an export in any format."""
    damage_downloads(live_sandbox, damage, 1)
    export = exporter_for(live_sandbox, tmp_path, export_format).export(JOB)

    assert export.compressed
    assert export.path.read_bytes() == served_file(live_sandbox)
    assert len(live_sandbox.requests("GET", DOWNLOAD)) == 2


@pytest.mark.parametrize(("damage", "problem"), [("truncate", "truncated"), ("corrupt", "neither gzip")])
def test_more_damaged_downloads_than_attempts_raise_a_download_error(
    live_sandbox: Sandbox, tmp_path: Path, damage: str, problem: str
) -> None:
    damage_downloads(live_sandbox, damage, 3)
    download_dir = tmp_path / "downloads"
    with pytest.raises(DownloadError) as raised:
        exporter_for(live_sandbox, tmp_path, download_attempts=3).export(JOB)
    message = str(raised.value)
    assert "segment 'everyone'" in message
    assert all(text in message for text in WINDOW_TEXTS)
    assert "after 3 attempts" in message and problem in message
    assert "cursor did not move" in message
    assert len(live_sandbox.requests("GET", DOWNLOAD)) == 3
    assert list(download_dir.iterdir()) == []  # no damaged file is left behind


def test_a_reset_connection_on_download_is_retried(live_sandbox: Sandbox, tmp_path: Path) -> None:
    live_sandbox.faults.add(Fault("download", status=0))
    export = exporter_for(live_sandbox, tmp_path).export(JOB)
    assert json_rows(export) == expected(live_sandbox)
    assert [r.status for r in live_sandbox.requests("GET", DOWNLOAD)] == [0, 200]


def test_a_server_error_on_download_is_retried(live_sandbox: Sandbox, tmp_path: Path) -> None:
    live_sandbox.faults.add(Fault("download", status=503, times=2))
    export = exporter_for(live_sandbox, tmp_path).export(JOB)
    assert json_rows(export) == expected(live_sandbox)
    assert [r.status for r in live_sandbox.requests("GET", DOWNLOAD)] == [503, 503, 200]


# -- failures -----------------------------------------------------------------------------------


def test_a_failed_operation_raises_with_fullstorys_details(sandbox: Sandbox, tmp_path: Path) -> None:
    details = "export exceeds the maximum size; use a shorter window"
    sandbox.faults.fail_operations(error_details=details)
    job = ExportJob(SEGMENT, "individuals", WINDOW)
    with pytest.raises(ExportFailedError) as raised:
        exporter_for(sandbox, tmp_path).export(job)
    message = str(raised.value)
    assert "FAILED" in message and details in message
    assert "segment 'everyone'" in message and "individuals" in message
    assert all(text in message for text in WINDOW_TEXTS)
    assert "cursor did not move" in message
    assert sandbox.requests("GET", DOWNLOAD) == []
    assert len(sandbox.created_exports()) == 1  # a FAILED export is not re-created here


def test_an_operation_that_never_finishes_times_out(flavor: str, tmp_path: Path) -> None:
    with Sandbox(api_key=API_KEY, flavor=flavor, operation_polls=50, workdir=str(tmp_path / "sb")) as sb:
        with pytest.raises(ExportFailedError) as raised:
            exporter_for(sb, tmp_path, poll_timeout=0.2).export(JOB)
        message = str(raised.value)
        assert "poll_timeout" in message
        assert "still PENDING" in message or "still RUNNING" in message
        assert "segment 'everyone'" in message and all(text in message for text in WINDOW_TEXTS)
        polls = sb.requests("GET", OPERATIONS)
        assert 1 <= len(polls) < 50
        assert sb.requests("GET", DOWNLOAD) == []


def test_an_unknown_segment_is_refused_by_create(sandbox: Sandbox, tmp_path: Path) -> None:
    job = ExportJob("no-such-segment", "events", WINDOW)
    with pytest.raises(FullStoryAPIError) as raised:
        exporter_for(sandbox, tmp_path).export(job)
    message = str(raised.value)
    assert raised.value.status == 400
    assert "segment not found: no-such-segment" in message
    assert "POST /segments/v1/exports" in message and "no-such-segment" in message
    assert sandbox.requests("GET", OPERATIONS) == []


@pytest.mark.parametrize("flavor_name", ["live", "spec"])
def test_a_create_answer_of_unknown_shape_lists_its_keys(tmp_path: Path, flavor_name: str) -> None:
    with stub_server(lambda method, path: (200, {"weird": 1, "other": "x"})) as (base_url, _):
        exporter = make_exporter(base_url, flavor_name, tmp_path / "downloads")
        with pytest.raises(UnexpectedResponseError) as raised:
            exporter.export(JOB)
    message = str(raised.value)
    assert "POST /segments/v1/exports" in message
    assert "['other', 'weird']" in message
    assert "operationId" in message and "api_flavor" in message
    assert "segment 'everyone'" in message


def test_an_operation_of_unknown_shape_is_an_error(tmp_path: Path) -> None:
    # create succeeds (it has an id), but the poll answers the same object without a state
    answer = {"id": "op-1", "weird": True}
    stub = stub_server(lambda method, path: (200, answer))
    with stub as (base_url, _), pytest.raises(UnexpectedResponseError) as raised:
        make_exporter(base_url, "spec", tmp_path / "downloads").export(JOB)
    message = str(raised.value)
    assert "GET /operations/v1/op-1" in message and "'weird'" in message
