"""Batch import results end to end: sandbox over HTTP -> batch_import_resources -> dlt -> DuckDB."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from fullstory_sandbox import Fault, Sandbox
from fullstory_source.batch_imports import (
    BatchJobStillProcessingError,
    UnknownBatchJobError,
    batch_import_resources,
)
from fullstory_source.client import FullStoryClient
from fullstory_source.errors import ConfigurationError, FullStoryAPIError, root_cause

from .support import API_KEY, make_pipeline, query, tables

FAST: dict[str, Any] = {"poll_interval": 0.01, "poll_max_interval": 0.05}
BATCH_TABLES = {"batch_import_jobs", "batch_imported_events", "batch_import_errors", "batch_import_audit"}
EVENT_COLUMNS = (
    "job_id, ordinal, page, user_id, user_uid, session_id, session_uid, context_browser_url, "
    "context_browser_user_agent, context_browser_initial_referrer, location_country, location_region, "
    "location_city, context_device, name, timestamp, properties"
)


def run(sb: Sandbox, database: Path, job_ids: list[str], key: str = API_KEY, **options: Any) -> Any:
    client = FullStoryClient(key, sb.base_url, backoff_factor=0.01)
    resources = batch_import_resources(client, job_ids, **{**FAST, **options})
    return make_pipeline(database).run(resources)


def fails(sb: Sandbox, database: Path, job_ids: list[str], **kwargs: Any) -> BaseException:
    with pytest.raises(Exception) as raised:  # noqa: B017 (dlt wraps it; unwrapped below)
        run(sb, database, job_ids, **kwargs)
    return root_cause(raised.value)


def utc(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError:
        return None


def flat(event: dict[str, Any]) -> tuple[Any, ...]:
    """The columns one event must become, read straight from the API's nested shape."""
    user, session = event.get("user", {}), event.get("session", {})
    context = event.get("context", {})
    browser, location = context.get("browser", {}), context.get("location", {})
    return (
        user.get("id"),
        user.get("uid"),
        session.get("id"),
        session.get("uid"),
        browser.get("url"),
        browser.get("user_agent"),
        browser.get("initial_referrer"),
        location.get("country"),
        location.get("region"),
        location.get("city"),
        context.get("device"),
        event.get("name"),
        utc(event["timestamp"]),
        event.get("properties"),
    )


def loaded_events(database: Path, job_id: str, table: str = "batch_imported_events") -> list[tuple[Any, ...]]:
    rows = query(
        database,
        f"SELECT {EVENT_COLUMNS} FROM fullstory.{table} WHERE job_id = '{job_id}' ORDER BY ordinal",
    )
    out = []
    for row in rows:
        values = list(row)
        values[13] = json.loads(values[13]) if values[13] is not None else None  # context_device
        values[16] = json.loads(values[16]) if values[16] is not None else None  # properties
        out.append(tuple(values))
    return out


def expected_events(sb: Sandbox, job_id: str, page_size: int = 3) -> list[tuple[Any, ...]]:
    return [
        (job_id, ordinal, ordinal // page_size, *flat(event))
        for ordinal, event in enumerate(sb.batch_jobs.expected_imports(job_id))
    ]


def audit(database: Path, job_id: str, kind: str) -> dict[str, Any]:
    rows = query(
        database,
        "SELECT job_status, status_count, total_records, loaded, pages, token_repeated, matches "
        f"FROM fullstory.batch_import_audit WHERE job_id = '{job_id}' AND kind = '{kind}'",
    )
    assert len(rows) == 1
    names = ("job_status", "status_count", "total_records", "loaded", "pages", "token_repeated", "matches")
    return dict(zip(names, rows[0], strict=True))


def job_row(database: Path, job_id: str) -> tuple[Any, ...]:
    rows = query(
        database,
        "SELECT status, created, finished, imports, errors FROM fullstory.batch_import_jobs "
        f"WHERE job_id = '{job_id}'",
    )
    assert len(rows) == 1
    return rows[0]


def column_types(database: Path, table: str) -> dict[str, str]:
    rows = query(
        database,
        "SELECT column_name, data_type FROM information_schema.columns "
        f"WHERE table_schema = 'fullstory' AND table_name = '{table}'",
    )
    return dict(rows)


# -- one load of many jobs, read by the tests below ------------------------------------------------


@dataclass
class Loaded:
    sandbox: Sandbox
    database: Path
    warnings: list[str]


SHARED_JOBS = [
    "batch-completed",  # 7 events over three pages
    "batch-partial",  # FAILED with 4 imported events and 5 errors
    "batch-processing",  # PROCESSING for its first three requests
    "batch-failed",
    "batch-empty",
    "lagging",  # imports answer 202 three times after the job says it finished
    "looping",  # the page token repeats
    "short",  # total_records says 2 more than there are
]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    """Most tests read one load: a pipeline run costs most of a second, whatever it holds."""
    workdir = tmp_path_factory.mktemp("batch")
    capture = _Capture()
    logger = logging.getLogger("fullstory_source")  # batch_*.py and paging.py log below it
    with pytest.MonkeyPatch.context() as patch, Sandbox(api_key=API_KEY, workdir=str(workdir / "sb")) as sb:
        patch.setenv("DLT_DATA_DIR", str(workdir / "dlt"))
        sb.batch_jobs.add("lagging", imports=4, results_lag=3)
        sb.batch_jobs.add("looping", imports=8, repeat_token=True)
        sb.batch_jobs.add("short", imports=5, errors=1, total_records_delta=2)
        # and on the way: a rate limit and server errors, each answered by retries
        sb.faults.add(Fault("batch_imports", status=429, retry_after=1, segment_id="batch-empty"))
        sb.faults.add(Fault("batch_job", status=500, times=2, message="boom", segment_id="batch-failed"))
        sb.faults.add(Fault("batch_errors", status=503, segment_id="short"))
        logger.addHandler(capture)
        try:
            # a growing wait that is easy to measure: 0.05, 0.075, 0.1125 s
            # an id given twice (once with blanks) is loaded once
            job_ids = [*SHARED_JOBS, " batch-completed "]
            run(sb, workdir / "warehouse.duckdb", job_ids, poll_interval=0.05, poll_max_interval=1.0)
        finally:
            logger.removeHandler(capture)
        yield Loaded(sb, workdir / "warehouse.duckdb", capture.messages)


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_multi_page_job_loads_every_event_flattened_with_its_job(loaded: Loaded) -> None:
    sb, database = loaded.sandbox, loaded.database
    expected = expected_events(sb, "batch-completed")
    assert len(expected) == 7  # three pages: 3 + 3 + 1
    assert loaded_events(database, "batch-completed") == expected
    # listed twice, fetched and loaded once
    assert len(sb.requests("GET", "/v2/events/batch/batch-completed/imports")) == 3
    assert job_row(database, "batch-completed") == (
        "COMPLETED",
        datetime(2026, 10, 1, 12, 0, tzinfo=UTC),
        datetime(2026, 10, 1, 12, 1, 35, tzinfo=UTC),
        7,
        0,
    )
    assert audit(database, "batch-completed", "imports") == {
        "job_status": "COMPLETED",
        "status_count": 7,
        "total_records": 7,
        "loaded": 7,
        "pages": 3,
        "token_repeated": False,
        "matches": True,
    }
    assert audit(database, "batch-completed", "errors")["loaded"] == 0
    assert audit(database, "batch-completed", "errors")["matches"] is True
    assert tables(database) >= BATCH_TABLES
    assert not [t for t in tables(database) if "__" in t]  # nothing exploded into child tables


def test_every_job_is_loaded_and_audited(loaded: Loaded) -> None:
    database = loaded.database
    for job_id in SHARED_JOBS:
        if job_id != "looping":
            assert loaded_events(database, job_id) == expected_events(loaded.sandbox, job_id), job_id
    jobs = query(
        database, "SELECT job_id, status, imports, errors FROM fullstory.batch_import_jobs ORDER BY 1"
    )
    assert jobs == [
        ("batch-completed", "COMPLETED", 7, 0),
        ("batch-empty", "COMPLETED", 0, 0),
        ("batch-failed", "FAILED", 0, 2),
        ("batch-partial", "FAILED", 4, 5),
        ("batch-processing", "COMPLETED", 5, 0),
        ("lagging", "COMPLETED", 4, 0),
        ("looping", "COMPLETED", 8, 0),
        ("short", "FAILED", 5, 1),
    ]
    mismatched = "SELECT job_id, kind FROM fullstory.batch_import_audit WHERE NOT matches ORDER BY 1, 2"
    assert query(database, mismatched) == [("looping", "imports"), ("short", "errors"), ("short", "imports")]
    assert query(database, "SELECT count(*) FROM fullstory.batch_import_audit") == [(2 * len(SHARED_JOBS),)]


def test_timestamps_are_utc_timestamps_and_nested_objects_stay_json(loaded: Loaded) -> None:
    database = loaded.database
    events = column_types(database, "batch_imported_events")
    errors = column_types(database, "batch_import_errors")
    jobs = column_types(database, "batch_import_jobs")
    assert events["timestamp"] == errors["timestamp"] == "TIMESTAMP WITH TIME ZONE"
    assert jobs["created"] == jobs["finished"] == "TIMESTAMP WITH TIME ZONE"
    for column in ("properties", "context_device", "context_mobile", "schema"):
        assert events[column] == "JSON", column
    for column in ("properties", "event", "shared"):
        assert errors[column] == "JSON", column
    assert events["ordinal"] == events["page"] == jobs["imports"] == "BIGINT"
    assert not [c for c in events if c.startswith("properties_") or "__" in c]
    # a JSON value can be queried as such
    assert query(
        database,
        "SELECT properties->>'$.customer.plan', json_array_length(properties->'$.tags') "
        "FROM fullstory.batch_imported_events WHERE job_id = 'batch-completed' AND ordinal = 0",
    ) == [("pro", 2)]


def test_a_job_that_is_still_processing_is_waited_for(loaded: Loaded) -> None:
    sb, database = loaded.sandbox, loaded.database
    assert loaded_events(database, "batch-processing") == expected_events(sb, "batch-processing")
    assert len(sb.requests("GET", "/v2/events/batch/batch-processing")) >= 4  # three said PROCESSING
    assert job_row(database, "batch-processing")[0] == "COMPLETED"
    assert audit(database, "batch-processing", "imports")["matches"] is True


def test_http_202_is_retried_with_growing_intervals_until_the_results_are_ready(loaded: Loaded) -> None:
    sb = loaded.sandbox
    assert loaded_events(loaded.database, "lagging") == expected_events(sb, "lagging")
    imports = sb.requests("GET", "/v2/events/batch/lagging/imports")
    assert [r.status for r in imports] == [202, 202, 202, 200, 200]
    gaps = [later.time - earlier.time for earlier, later in zip(imports, imports[1:4], strict=False)]
    # the wait grows 1.5x each time: lower bounds only (a loaded machine makes gaps longer, never
    # shorter), so the third gap of at least 2.25x the first interval shows the growth
    assert [gap >= 0.045 * 1.5**i for i, gap in enumerate(gaps)] == [True, True, True], gaps


def test_a_job_with_errors_loads_them_beside_its_imported_events(loaded: Loaded) -> None:
    sb, database = loaded.sandbox, loaded.database
    assert job_row(database, "batch-partial")[0::3] == ("FAILED", 4)  # a partial failure
    assert job_row(database, "batch-partial")[4] == 5
    assert loaded_events(database, "batch-partial") == expected_events(sb, "batch-partial")
    expected_errors = sb.batch_jobs.expected_errors("batch-partial")
    rows = query(
        database,
        "SELECT ordinal, page, message, code, user_id, user_uid, name, timestamp, event, shared "
        "FROM fullstory.batch_import_errors WHERE job_id = 'batch-partial' ORDER BY ordinal",
    )
    assert len(rows) == len(expected_errors) == 5
    for (ordinal, page, message, code, user_id, user_uid, name, stamp, event, shared), error in zip(
        rows, expected_errors, strict=True
    ):
        assert page == ordinal // 3
        assert (message, code) == (error["message"], error["code"])
        assert (user_id, user_uid, name) == (
            error["event"]["user"].get("id"),
            error["event"]["user"].get("uid"),
            error["event"]["name"],
        )
        assert stamp == utc(error["event"]["timestamp"])  # None where FullStory refused the time...
        assert json.loads(event) == error["event"]  # ...whose raw value is kept here
        assert json.loads(shared) == error["shared"]
    assert [r[7] for r in rows].count(None) == 2
    assert audit(database, "batch-partial", "errors") == {
        "job_status": "FAILED",
        "status_count": 5,
        "total_records": 5,
        "loaded": 5,
        "pages": 2,
        "token_repeated": False,
        "matches": True,
    }
    failed = "SELECT count(*) FROM fullstory.batch_import_errors WHERE job_id = 'batch-failed'"
    assert query(database, failed) == [(2,)]


def test_a_repeated_page_token_stops_paging_and_is_reported(loaded: Loaded) -> None:
    sb, database = loaded.sandbox, loaded.database
    assert len(sb.requests("GET", "/v2/events/batch/looping/imports")) == 2
    assert loaded_events(database, "looping") == expected_events(sb, "looping")[:6]
    assert audit(database, "looping", "imports") == {
        "job_status": "COMPLETED",
        "status_count": 8,
        "total_records": 8,
        "loaded": 6,
        "pages": 2,
        "token_repeated": True,
        "matches": False,
    }
    assert any("repeated next_page_token" in m and "'looping'" in m for m in loaded.warnings)
    assert (
        "batch import job 'looping': loaded 6 imported events but FullStory's total_records says 8 "
        "(the page token repeated, so paging stopped early); recorded in table batch_import_audit"
    ) in loaded.warnings


def test_a_total_records_mismatch_is_logged_and_recorded(loaded: Loaded) -> None:
    database = loaded.database
    assert audit(database, "short", "imports") == {
        "job_status": "FAILED",
        "status_count": 5,
        "total_records": 7,
        "loaded": 5,
        "pages": 2,
        "token_repeated": False,
        "matches": False,
    }
    assert audit(database, "short", "errors")["matches"] is False
    warned = sorted(m for m in loaded.warnings if m.startswith("batch import job 'short'"))
    assert warned == [
        "batch import job 'short': loaded 1 errors but FullStory's total_records says 3; "
        "recorded in table batch_import_audit",
        "batch import job 'short': loaded 5 imported events but FullStory's total_records says 7; "
        "recorded in table batch_import_audit",
    ]


def test_rate_limits_and_server_errors_are_retried(loaded: Loaded) -> None:
    sb = loaded.sandbox
    failed = [(r.path, r.status) for r in sb.requests("GET", "/v2/events/batch/") if r.status >= 400]
    assert sorted(failed) == [
        ("/v2/events/batch/batch-empty/imports", 429),
        ("/v2/events/batch/batch-failed", 500),
        ("/v2/events/batch/batch-failed", 500),
        ("/v2/events/batch/short/errors", 503),
    ]
    imports = sb.requests("GET", "/v2/events/batch/batch-empty/imports")
    assert [r.status for r in imports] == [429, 200]
    assert imports[1].time - imports[0].time >= 0.95  # Retry-After: 1 was honoured
    assert job_row(loaded.database, "batch-failed")[0] == "FAILED"
    assert audit(loaded.database, "short", "errors")["loaded"] == 1


# -- more loads -----------------------------------------------------------------------------------


def test_loading_again_replaces_each_job_without_duplicates(live_sandbox: Sandbox, database: Path) -> None:
    run(live_sandbox, database, ["batch-completed", "batch-partial"])
    assert query(database, "SELECT count(schema) FROM fullstory.batch_imported_events") == [(0,)]
    sent = {r.query.get("include_schema", [""])[0] for r in live_sandbox.requests("GET", "/v2/events/")}
    assert sent == {"", "false"}  # the status and errors calls have no such parameter

    # batch-partial now answers fewer rows: its old rows must all go, batch-completed's stay single
    live_sandbox.batch_jobs.add("batch-partial", imports=2, errors=1)
    live_sandbox.clear_log()
    run(live_sandbox, database, ["batch-completed", "batch-partial"], include_schema=True)

    counts = "SELECT job_id, count(*) FROM fullstory.{} GROUP BY job_id ORDER BY job_id"
    assert query(database, counts.format("batch_imported_events")) == [
        ("batch-completed", 7),
        ("batch-partial", 2),
    ]
    assert query(database, counts.format("batch_import_errors")) == [("batch-partial", 1)]
    assert query(database, counts.format("batch_import_jobs")) == [
        ("batch-completed", 1),
        ("batch-partial", 1),
    ]
    assert query(database, counts.format("batch_import_audit")) == [
        ("batch-completed", 2),
        ("batch-partial", 2),
    ]
    assert loaded_events(database, "batch-partial") == expected_events(live_sandbox, "batch-partial")

    # include_schema is passed through
    imports = live_sandbox.requests("GET", "/v2/events/batch/batch-completed/imports")
    assert {r.query["include_schema"][0] for r in imports} == {"true"}
    schemas = query(database, "SELECT DISTINCT schema FROM fullstory.batch_imported_events")
    expected = live_sandbox.batch_jobs.expected_imports("batch-completed", include_schema=True)[0]["schema"]
    assert [json.loads(s) for (s,) in schemas] == [expected]


def test_the_jobs_table_alone_loads_alone_and_records_a_job_still_processing(
    live_sandbox: Sandbox, database: Path
) -> None:
    live_sandbox.batch_jobs.add("slow", polls=10_000)
    client = FullStoryClient(API_KEY, live_sandbox.base_url, backoff_factor=0.01)
    resources = {
        r.name: r for r in batch_import_resources(client, ["batch-partial", "slow"], wait_timeout=0.1, **FAST)
    }
    assert list(resources) == ["batch_import_jobs", "batch_imported_events", "batch_import_errors"]
    make_pipeline(database).run(resources["batch_import_jobs"])

    assert tables(database) & BATCH_TABLES == {"batch_import_jobs"}
    assert {r.path for r in live_sandbox.requests()} == {
        "/v2/events/batch/batch-partial",
        "/v2/events/batch/slow",
    }
    assert job_row(database, "batch-partial")[0] == "FAILED"
    assert job_row(database, "slow") == ("PROCESSING", datetime(2026, 10, 1, 12, 5, tzinfo=UTC), None, 0, 0)


# -- waiting runs out -----------------------------------------------------------------------------


def test_a_job_still_processing_at_the_timeout_fails_clearly_and_loads_nothing(
    live_sandbox: Sandbox, database: Path
) -> None:
    live_sandbox.batch_jobs.add("slow", polls=10_000)
    error = fails(live_sandbox, database, ["batch-completed", "slow"], wait_timeout=0.3)
    # FAST's waits (0.01 s growing 1.5x, capped at 0.05 s) fill 0.3 s after 9 sleeps: 10 polls,
    # plus one for each other resource that asks after the deadline. Waits that did not grow, or
    # a deadline not kept, would poll far more often.
    assert 2 <= len(live_sandbox.requests("GET", "/v2/events/batch/slow")) <= 12
    assert isinstance(error, BatchJobStillProcessingError)
    text = str(error)
    assert "batch import job 'slow' is still processing after waiting" in text
    assert "wait_timeout=0.3 s" in text
    assert "Run the pipeline again once the job has finished" in text
    assert error.waited >= 0.3  # the whole wait_timeout was waited
    assert tables(database) & BATCH_TABLES == set()


def test_results_still_answering_202_at_the_timeout_fail_clearly(
    live_sandbox: Sandbox, database: Path
) -> None:
    live_sandbox.batch_jobs.add("stuck", imports=3, results_lag=10_000)
    error = fails(live_sandbox, database, ["stuck"], wait_timeout=0.3)
    assert isinstance(error, BatchJobStillProcessingError)
    assert "'stuck' is still processing" in str(error)
    assert "/v2/events/batch/stuck/" in str(error)
    assert tables(database) & BATCH_TABLES == set()


# -- errors ---------------------------------------------------------------------------------------


def test_an_unknown_job_id_is_a_clear_error_and_nothing_loads(live_sandbox: Sandbox, database: Path) -> None:
    error = fails(live_sandbox, database, ["batch-completed", "no-such-job"])
    assert isinstance(error, UnknownBatchJobError)
    assert isinstance(error, ConfigurationError) and isinstance(error, FullStoryAPIError)
    assert error.status == 404
    assert "Unknown FullStory batch import job id 'no-such-job'" in str(error)
    assert "resource_not_found" in str(error)
    assert "batch_import_job_ids" in str(error)
    assert tables(database) & BATCH_TABLES == set()


def test_a_wrong_api_key_is_a_clear_401(live_sandbox: Sandbox, database: Path) -> None:
    error = fails(live_sandbox, database, ["batch-completed"], key="wrong-key")
    assert isinstance(error, FullStoryAPIError)
    assert error.status == 401
    assert "HTTP 401" in str(error) and "Check the API key" in str(error)
    assert "batch import job 'batch-completed'" in str(error)
    assert "wrong-key" not in str(error)
    assert tables(database) & BATCH_TABLES == set()


def test_retries_running_out_give_a_clear_error(live_sandbox: Sandbox, database: Path) -> None:
    live_sandbox.faults.add(Fault("batch_imports", status=500, times=50, message="boom"))
    error = fails(live_sandbox, database, ["batch-completed"])
    assert isinstance(error, FullStoryAPIError)
    assert error.status == 500
    assert "GET /v2/events/batch/batch-completed/imports answered HTTP 500" in str(error)
    assert tables(database) & BATCH_TABLES == set()


# -- job ids --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("job_ids", "expected"),
    [
        (["ok", ""], "job id #2 is ''"),
        (["  "], "job id #1 is '  '"),
        ([None], "job id #1 is None"),
        ([42], "job id #1 is 42"),
        ("job1", "must be a list of job ids"),
    ],
)
def test_bad_job_ids_are_a_configuration_error(live_sandbox: Sandbox, job_ids: Any, expected: str) -> None:
    client = FullStoryClient(API_KEY, live_sandbox.base_url)
    with pytest.raises(ConfigurationError) as raised:
        batch_import_resources(client, job_ids)
    assert expected in str(raised.value)
    assert live_sandbox.requests() == []


def test_no_job_ids_fail_only_when_a_resource_runs(live_sandbox: Sandbox, database: Path) -> None:
    client = FullStoryClient(API_KEY, live_sandbox.base_url)
    resources = batch_import_resources(client, [])  # building them is fine: they may stay unselected
    with pytest.raises(Exception) as raised:  # noqa: B017
        make_pipeline(database).run(resources)
    error = root_cause(raised.value)
    assert isinstance(error, ConfigurationError)
    assert "SOURCES__FULLSTORY__BATCH_IMPORT_JOB_IDS" in str(error) and "--batch-job" in str(error)
