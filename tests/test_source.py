"""End to end: sandbox over HTTP -> fullstory_source -> dlt -> DuckDB, in both API shapes."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from dlt.pipeline.helpers import pipeline_drop

from fullstory_sandbox import Sandbox
from fullstory_source import ConfigurationError, ExportFailedError, RunReport
from fullstory_source.errors import root_cause
from fullstory_source.windows import format_time

from .support import (
    API_KEY,
    DAY1,
    DAY2,
    DAY3,
    cursors,
    expected_multiset,
    loaded_multiset,
    make_pipeline,
    query,
    source,
    tables,
)

SEGMENT = "everyone"


def window_rows(sb: Sandbox, export_type: str, segment: str, start, end, step: timedelta):
    """Expected rows of every window in [start, end), each with its segment and window bounds."""
    expected = []
    moment = start
    while moment < end:
        extra = {"segment_id": segment, "window_start": moment, "window_end": moment + step}
        expected.append((sb.expected_rows(export_type, segment, moment, moment + step), extra))
        moment += step
    return expected


def expected_events(sb: Sandbox, segment: str, start, end, step=timedelta(hours=6)):
    total = None
    for rows, extra in window_rows(sb, "events", segment, start, end, step):
        part = expected_multiset(rows, extra)
        total = part if total is None else total + part
    return total


@pytest.mark.parametrize("export_format", ["json", "ndjson", "csv"])
def test_events_load_exactly_the_rows_of_each_window(
    sandbox: Sandbox, database: Path, export_format: str
) -> None:
    pipeline = make_pipeline(database)
    pipeline.run(
        source(
            sandbox,
            segment_ids=[SEGMENT],
            export_types=["events"],
            export_format=export_format,
            start_date=format_time(DAY1),
            end_date=format_time(DAY2),
        )
    )
    expected = expected_events(sandbox, SEGMENT, DAY1, DAY2)
    assert sum(expected.values()) > 20
    assert loaded_multiset(database, "events") == expected
    assert len(sandbox.created_exports()) == 4  # four 6h windows
    assert cursors(pipeline, "events") == {SEGMENT: "2026-10-02T00:00:00Z"}


@pytest.mark.parametrize("export_format", ["json", "ndjson", "csv"])
def test_individuals_load_exactly(sandbox: Sandbox, database: Path, export_format: str) -> None:
    pipeline = make_pipeline(database)
    pipeline.run(
        source(
            sandbox,
            segment_ids=[SEGMENT],
            export_types=["individuals"],
            export_format=export_format,
            window="1d",
            start_date=format_time(DAY1),
            end_date=format_time(DAY2),
        )
    )
    rows = sandbox.expected_rows("individuals", SEGMENT, DAY1, DAY2)
    extra = {"segment_id": SEGMENT, "window_start": DAY1, "window_end": DAY2}
    assert len(rows) > 5
    assert loaded_multiset(database, "individuals") == expected_multiset(rows, extra)


def test_column_types_come_from_field_names(live_sandbox: Sandbox, database: Path) -> None:
    make_pipeline(database).run(
        source(live_sandbox, segment_ids=[SEGMENT], start_date=format_time(DAY1), end_date=format_time(DAY2))
    )
    types = dict(
        query(
            database,
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'fullstory' AND table_name = 'events'",
        )
    )
    assert types["event_start"] == "TIMESTAMP WITH TIME ZONE"
    assert types["user_signup_date"] == "TIMESTAMP WITH TIME ZONE"
    assert types["window_start"] == "TIMESTAMP WITH TIME ZONE"
    for column in ("indv_id", "user_id", "session_id", "page_id", "user_seats_int"):
        assert types[column] == "BIGINT", column
    assert types["user_ltv_real"] == "DOUBLE"  # its first values are whole numbers
    assert types["evt_order_items_real"] == "DOUBLE"
    assert types["user_beta_bool"] == "BOOLEAN"
    assert not [c for c in types if "__v_" in c]  # no variant columns


def test_consecutive_runs_load_adjacent_windows_without_gap_or_duplicate(
    live_sandbox: Sandbox, database: Path
) -> None:
    pipeline = make_pipeline(database)
    first = dict(segment_ids=[SEGMENT], export_types=["events"], start_date=format_time(DAY1))
    pipeline.run(source(live_sandbox, **first, end_date=format_time(DAY2)))
    live_sandbox.clear_log()

    pipeline.run(source(live_sandbox, **first, end_date="2026-10-02T06:00:00Z"))

    created = live_sandbox.created_exports()
    assert [c["timeRange"] for c in created] == [
        {"start": "2026-10-02T00:00:00Z", "end": "2026-10-02T06:00:00Z"}
    ]
    end = DAY2 + timedelta(hours=6)
    assert loaded_multiset(database, "events") == expected_events(live_sandbox, SEGMENT, DAY1, end)
    assert cursors(pipeline, "events") == {SEGMENT: "2026-10-02T06:00:00Z"}


def test_start_is_only_the_initial_value(live_sandbox: Sandbox, database: Path) -> None:
    pipeline = make_pipeline(database)
    pipeline.run(
        source(
            live_sandbox,
            segment_ids=[SEGMENT],
            export_types=["events"],
            start_date=format_time(DAY1),
            end_date=format_time(DAY2),
        )
    )
    live_sandbox.clear_log()
    # an earlier start on a later run must not re-export windows that already loaded
    pipeline.run(
        source(
            live_sandbox,
            segment_ids=[SEGMENT],
            export_types=["events"],
            start_date="2026-09-01T00:00:00Z",
            end_date=format_time(DAY2),
        )
    )
    assert live_sandbox.created_exports() == []


def test_reloading_a_window_replaces_it_exactly(live_sandbox: Sandbox, database: Path) -> None:
    args = dict(
        segment_ids=[SEGMENT],
        export_types=["events"],
        start_date=format_time(DAY1),
        end_date=format_time(DAY2),
    )
    make_pipeline(database).run(source(live_sandbox, **args))
    # a second pipeline with its own (empty) state writes the same windows into the same tables
    make_pipeline(database, name="fullstory_again").run(source(live_sandbox, **args))
    assert loaded_multiset(database, "events") == expected_events(live_sandbox, SEGMENT, DAY1, DAY2)


def test_changing_the_window_bridges_to_the_new_grid(live_sandbox: Sandbox, database: Path) -> None:
    pipeline = make_pipeline(database)
    args = dict(segment_ids=[SEGMENT], export_types=["events"], start_date=format_time(DAY1))
    pipeline.run(source(live_sandbox, **args, window="6h", end_date="2026-10-01T06:00:00Z"))
    live_sandbox.clear_log()
    pipeline.run(source(live_sandbox, **args, window="1d", end_date=format_time(DAY3)))
    ranges = sorted((c["timeRange"]["start"], c["timeRange"]["end"]) for c in live_sandbox.created_exports())
    assert ranges == [
        ("2026-10-01T06:00:00Z", "2026-10-02T00:00:00Z"),
        ("2026-10-02T00:00:00Z", "2026-10-03T00:00:00Z"),
    ]
    total = query(database, "SELECT count(*) FROM fullstory.events")[0][0]
    assert total == len(live_sandbox.expected_rows("events", SEGMENT, DAY1, DAY3))


def test_individuals_keep_the_newest_row_per_person(live_sandbox: Sandbox, database: Path) -> None:
    make_pipeline(database).run(
        source(
            live_sandbox,
            segment_ids=[SEGMENT],
            export_types=["individuals"],
            start_date=format_time(DAY1),
            end_date=format_time(DAY2),
        )
    )
    newest: dict[int, str] = {}
    for hour in range(0, 24, 6):
        start = DAY1 + timedelta(hours=hour)
        for row in live_sandbox.expected_rows("individuals", SEGMENT, start, start + timedelta(hours=6)):
            newest[row["IndvId"]] = format_time(start + timedelta(hours=6))
    loaded = query(
        database, "SELECT indv_id, strftime(window_end, '%Y-%m-%dT%H:%M:%SZ') FROM fullstory.individuals"
    )
    assert dict(loaded) == newest
    assert len(loaded) == len(newest)  # one row per person


def test_segments_are_listed_and_merged(sandbox: Sandbox, database: Path) -> None:
    pipeline = make_pipeline(database)
    for _ in range(2):
        pipeline.run(
            source(sandbox, end_date=format_time(DAY2), start_date=format_time(DAY1)).with_resources(
                "segments"
            )
        )
    rows = query(database, "SELECT id, name FROM fullstory.segments ORDER BY id")
    assert sorted(s["id"] for s in sandbox.segments) == [r[0] for r in rows]


def test_all_segments_are_exported_when_none_are_configured(live_sandbox: Sandbox, database: Path) -> None:
    pipeline = make_pipeline(database)
    pipeline.run(
        source(
            live_sandbox,
            export_types=["events"],
            window="1d",
            start_date=format_time(DAY1),
            end_date=format_time(DAY2),
        )
    )
    loaded = {r[0] for r in query(database, "SELECT DISTINCT segment_id FROM fullstory.events")}
    assert loaded == {s["id"] for s in live_sandbox.segments}
    assert set(cursors(pipeline, "events")) == loaded


def test_failed_operation_fails_the_run_and_moves_no_cursor(live_sandbox: Sandbox, database: Path) -> None:
    pipeline = make_pipeline(database)
    live_sandbox.faults.fail_operations(error_details="query too large", segment_id=SEGMENT)
    with pytest.raises(Exception) as raised:
        pipeline.run(
            source(
                live_sandbox,
                segment_ids=[SEGMENT],
                export_types=["events"],
                start_date=format_time(DAY1),
                end_date=format_time(DAY2),
            )
        )
    message = str(raised.value)
    assert "query too large" in message and SEGMENT in message and "events, window [2026-10-01T" in message
    assert isinstance(root_cause(raised.value), ExportFailedError)
    assert cursors(pipeline, "events") == {}
    assert "events" not in tables(database)


def test_recording_window_errors_lets_other_segments_load(live_sandbox: Sandbox, database: Path) -> None:
    pipeline = make_pipeline(database)
    broken, healthy = "everyone", "power-users"
    live_sandbox.faults.fail_operations(error_details="boom", segment_id=broken)
    report = RunReport()
    args = dict(
        segment_ids=[broken, healthy],
        export_types=["events"],
        start_date=format_time(DAY1),
        end_date=format_time(DAY2),
    )
    pipeline.run(source(live_sandbox, events=report, on_window_error="record", **args))

    # windows run concurrently, so any one of the four windows of `broken` may be the failed one
    assert len(report.failures) == 1
    failed = report.failures[0].job
    assert failed.segment_id == broken and "boom" in report.failures[0].error
    expected_cursors = {healthy: "2026-10-02T00:00:00Z"}
    if failed.window.start > DAY1:  # the windows before the failed one moved the cursor up to it
        expected_cursors[broken] = format_time(failed.window.start)
    assert cursors(pipeline, "events") == expected_cursors
    all_rows = expected_events(live_sandbox, healthy, DAY1, DAY2) + expected_events(
        live_sandbox, broken, DAY1, DAY2
    )
    missing = expected_events(live_sandbox, broken, failed.window.start, failed.window.end)
    assert loaded_multiset(database, "events") == all_rows - missing
    runs = query(database, "SELECT segment_id, start_at, status, error FROM fullstory.export_runs")
    assert len(runs) == 8
    assert [(s, t) for s, t, status, _ in runs if status == "Failed"] == [(broken, failed.window.start)]
    assert all(error is None for *_, status, error in runs if status == "Completed")

    # the next run retries the failed segment from its first window and ends exact
    pipeline.run(source(live_sandbox, on_window_error="record", **args))
    assert loaded_multiset(database, "events") == all_rows
    statuses = query(database, "SELECT status, count(*) FROM fullstory.export_runs GROUP BY 1")
    assert statuses == [("Completed", 8)]


# -- bad input: a clear error, and nothing loaded -------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"start_date": "2026-10-02T00:00:00Z", "end_date": "2026-10-01T00:00:00Z"}, "is not before the end"),
        ({"export_types": ["events", "sessions"]}, "unknown export type(s) ['sessions']"),
        ({"export_format": "parquet"}, "export_format='parquet' is unknown"),
        ({"window": "7h"}, "window='7h' does not divide 24 hours"),
        ({"base_url": "http://api.example.com"}, "plain http:// to a non-loopback host"),
        ({"api_flavor": "v3"}, "api_flavor='v3' is unknown"),
        ({"start_date": "yesterday"}, "start_date='yesterday' is not an RFC 3339 time"),
        ({"fields": ["EventStart", "IndvId", "EventStart"]}, "fields lists ['EventStart'] more than once"),
        ({"timezone": "Mars/Olympus"}, "not an IANA time zone"),
        ({"max_concurrent_exports": 0}, "max_concurrent_exports=0 must be a whole number, at least 1"),
        ({"poll_interval": -1}, "poll_interval=-1 must be greater than 0"),
        ({"on_window_error": "ignore"}, "on_window_error='ignore' is unknown"),
    ],
)
def test_bad_configuration_is_refused_before_any_request(
    live_sandbox: Sandbox, overrides: dict[str, object], expected: str
) -> None:
    args = {"start_date": format_time(DAY1), "end_date": format_time(DAY2), **overrides}
    with pytest.raises(ConfigurationError) as raised:
        source(live_sandbox, **args)
    assert expected in str(raised.value)
    assert live_sandbox.requests() == []


def test_building_the_source_starts_nothing(live_sandbox: Sandbox, tmp_path: Path) -> None:
    # new threads only: one of an earlier test may still be ending
    threads = set(threading.enumerate())
    source(live_sandbox, download_dir=str(tmp_path / "downloads"), start_date=format_time(DAY1))
    assert set(threading.enumerate()) - threads == set()
    assert not (tmp_path / "downloads").exists()
    assert live_sandbox.requests() == []


def test_export_runs_is_its_own_table_and_survives_dropping_an_export_table(
    live_sandbox: Sandbox, database: Path
) -> None:
    pipeline = make_pipeline(database)
    args = dict(segment_ids=[SEGMENT], start_date=format_time(DAY1), end_date=format_time(DAY2))
    pipeline.run(source(live_sandbox, **args))
    schema = pipeline.default_schema
    runs = schema.tables["export_runs"]
    assert runs["resource"] == "export_runs"
    # none of the export tables' hints leak into it
    assert not any(c.get("merge_key") or c.get("dedup_sort") for c in runs["columns"].values())
    assert {c for c, col in runs["columns"].items() if col.get("primary_key")} == {"id"}

    pipeline_drop(pipeline, resources=["individuals"])()  # `dlt pipeline <name> drop individuals`
    assert "individuals" not in tables(database)
    assert {"events", "export_runs"} <= tables(database)
    assert query(database, "SELECT count(*) FROM fullstory.export_runs") == [(8,)]


def test_unknown_segment_fails_before_any_export(live_sandbox: Sandbox, database: Path) -> None:
    pipeline = make_pipeline(database)
    with pytest.raises(Exception) as raised:
        pipeline.run(
            source(
                live_sandbox,
                segment_ids=[SEGMENT, "no-such-segment"],
                export_types=["events"],
                start_date=format_time(DAY1),
                end_date=format_time(DAY2),
            )
        )
    assert "unknown segment id(s) ['no-such-segment']" in str(raised.value)
    assert live_sandbox.created_exports() == []
    assert "events" not in tables(database)
    assert cursors(pipeline, "events") == {}


def test_wrong_key_gets_a_clear_error_without_the_key(live_sandbox: Sandbox, database: Path) -> None:
    pipeline = make_pipeline(database)
    with pytest.raises(Exception) as raised:
        pipeline.run(
            source(
                live_sandbox,
                api_key="wrong-key-123",
                segment_ids=[SEGMENT],
                start_date=format_time(DAY1),
                end_date=format_time(DAY2),
            )
        )
    message = str(raised.value)
    assert "HTTP 401" in message and "Check the API key" in message
    assert "wrong-key-123" not in message
    assert tables(database) <= {"_dlt_loads", "_dlt_pipeline_state", "_dlt_version"}


def test_live_request_fields_are_passed_through(database: Path, tmp_path: Path) -> None:
    with Sandbox(api_key=API_KEY, flavor="live", workdir=str(tmp_path / "sb")) as sb:
        make_pipeline(database).run(
            source(
                sb,
                segment_ids=[SEGMENT],
                export_types=["events"],
                window="1d",
                start_date=format_time(DAY1),
                end_date=format_time(DAY2),
                fields=["EventStart", "EventType", "user_*"],
                timezone="Europe/Berlin",
                # membership is evaluated over this range (the sandbox since issue 16): it holds the window
                segment_time_range={"start": "2026-09-01T00:00:00Z", "end": "2026-10-02T00:00:00Z"},
            )
        )
        body = sb.created_exports()[0]
    assert body["fields"] == ["EventStart", "EventType", "user_*"]
    assert body["timezone"] == "Europe/Berlin"
    assert body["segmentTimeRange"] == {"start": "2026-09-01T00:00:00Z", "end": "2026-10-02T00:00:00Z"}
    columns = {
        r[0]
        for r in query(
            database,
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = 'fullstory' AND table_name = 'events'",
        )
    }
    assert {"event_start", "event_type", "user_ltv_real", "segment_id"} <= columns
    assert "page_url" not in columns


def test_hourly_windows_with_columns_that_come_and_go_load_outside_the_repo(
    live_sandbox: Sandbox, database: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Some hourly windows carry a list-typed custom variable and others do not; run from a
    directory without this repo's .dlt/config.toml, as an installed command or a DAG would."""
    monkeypatch.chdir(tmp_path)
    pipeline = make_pipeline(database)
    for end in (DAY2, DAY3):  # the second run also meets the column typed by the first
        pipeline.run(
            source(live_sandbox, segment_ids=[SEGMENT], export_types=["events"], window="1h",
                   start_date=format_time(DAY1), end_date=format_time(end))
        )  # fmt: skip
    assert loaded_multiset(database, "events") == expected_events(
        live_sandbox, SEGMENT, DAY1, DAY3, timedelta(hours=1)
    )


def test_segments_whose_ids_differ_only_in_slash_underscore_or_space_load_their_own_rows(
    tmp_path: Path, database: Path
) -> None:
    ids = ["team/a", "team_a", "team a"]
    segments = [{"id": sid, "name": sid, "creator": "qa@example.com"} for sid in ids]
    with Sandbox(api_key=API_KEY, flavor="live", segments=segments, workdir=str(tmp_path / "sb")) as sb:
        sb.download_chunk_delay = 0.3  # the three downloads of a window overlap
        make_pipeline(database).run(
            source(sb, segment_ids=ids, export_types=["events"], window="1d",
                   start_date=format_time(DAY1), end_date=format_time(DAY2))
        )  # fmt: skip
        for sid in ids:
            where = "segment_id = '" + sid + "'"
            expected = expected_events(sb, sid, DAY1, DAY2, step=timedelta(days=1))
            assert loaded_multiset(database, "events", where) == expected, sid
