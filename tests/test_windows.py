"""The UTC window grid: durations, times, alignment, and which windows a run exports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from fullstory_source import ConfigurationError, pending_windows
from fullstory_source.config import Windows, windows
from fullstory_source.plans import WindowPlan
from fullstory_source.windows import (
    Window,
    align_down,
    align_up,
    format_time,
    grid_windows,
    newest_window_end,
    parse_duration,
    parse_time,
    parse_window,
)

NOW = datetime(2026, 10, 3, 10, 17, 42, tzinfo=UTC)
DAY1 = datetime(2026, 10, 1, tzinfo=UTC)
H = timedelta(hours=1)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def settings(**overrides: Any) -> Windows:
    args: dict[str, Any] = {
        "start_date": "2026-10-01T00:00:00Z",
        "end_date": None,
        "window": "6h",
        "export_delay": "3h",
        **overrides,
    }
    return windows(args, NOW)


def bounds(windows: Any) -> list[tuple[str, str]]:
    return [(format_time(w.start), format_time(w.end)) for w in windows]


def pending(cursor: str | None, config: Windows) -> list[tuple[str, str]]:
    newest = newest_window_end(NOW, config.export_delay, config.window, config.end_date)
    return bounds(pending_windows(cursor, config, newest))


# -- durations and windows ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("15m", timedelta(minutes=15)),
        ("1h", timedelta(hours=1)),
        ("6h", timedelta(hours=6)),
        ("1d", timedelta(days=1)),
        ("3600s", timedelta(hours=1)),
        (" 2H ", timedelta(hours=2)),
        (3600, timedelta(hours=1)),
        (timedelta(minutes=30), timedelta(minutes=30)),
    ],
)
def test_valid_windows(value: Any, expected: timedelta) -> None:
    assert parse_window(value) == expected
    assert parse_duration(value, "export_delay") == expected


@pytest.mark.parametrize("value", ["7h", "0m", "2d", "25h", "7m", -3600])
def test_windows_that_do_not_divide_a_day_are_refused(value: Any) -> None:
    with pytest.raises(ConfigurationError) as raised:
        parse_window(value)
    message = str(raised.value)
    assert f"window={value!r}" in message
    assert "does not divide 24 hours" in message
    assert "pick a length like" in message and "6h" in message


@pytest.mark.parametrize("value", ["5m", "10m", "1m", "20m", "300s"])
def test_windows_that_are_not_whole_quarter_hours_are_refused(value: Any) -> None:
    """Events are replaced per 15-minute bucket: a 5m window would delete its neighbours' rows."""
    with pytest.raises(ConfigurationError) as raised:
        parse_window(value)
    message = str(raised.value)
    assert f"window={value!r}" in message and "15-minute buckets" in message


@pytest.mark.parametrize("value", ["abc", "", "1.5h", "h", "10 minutes", "1w"])
def test_non_durations_are_refused_with_what_to_write(value: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        parse_window(value)
    message = str(raised.value)
    assert f"window={value!r}" in message
    assert "is not a duration" in message
    assert "use a number with a unit" in message and "'1h'" in message


def test_duration_errors_name_the_setting() -> None:
    with pytest.raises(ConfigurationError, match=r"export_delay='soon' is not a duration"):
        parse_duration("soon", "export_delay")


def test_configuration_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_window("abc")


# -- times --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-10-01T00:00:00Z", datetime(2026, 10, 1, tzinfo=UTC)),
        ("2026-10-01t06:30:00z", datetime(2026, 10, 1, 6, 30, tzinfo=UTC)),
        ("2026-10-01T12:00:00.250Z", datetime(2026, 10, 1, 12, 0, 0, 250000, tzinfo=UTC)),
        ("2026-10-01T02:00:00+02:00", datetime(2026, 10, 1, 0, 0, tzinfo=UTC)),
        ("2026-09-30T22:15:00-05:00", datetime(2026, 10, 1, 3, 15, tzinfo=UTC)),
        ("2026-10-01", datetime(2026, 10, 1, tzinfo=UTC)),
        ("  2026-10-01T00:00:00Z  ", datetime(2026, 10, 1, tzinfo=UTC)),
    ],
)
def test_times_are_parsed_into_utc(text: str, expected: datetime) -> None:
    parsed = parse_time(text, "start_date")
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)
    assert parsed.tzinfo == UTC


def test_aware_datetimes_are_converted_to_utc() -> None:
    moment = datetime(2026, 10, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))
    parsed = parse_time(moment, "start_date")
    assert parsed == DAY1 and parsed.tzinfo == UTC
    assert format_time(parsed) == "2026-10-01T00:00:00Z"


@pytest.mark.parametrize("text", ["2026-10-01T00:00:00", "2026-10-01 00:00:00", "2026-10-01T06:00"])
def test_a_datetime_without_a_zone_is_refused(text: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        parse_time(text, "start_date")
    message = str(raised.value)
    assert f"start_date={text!r}" in message
    assert "no time zone" in message and "add 'Z'" in message


def test_a_naive_datetime_object_is_refused() -> None:
    # a naive datetime means "some local time": guessing UTC would shift every window silently
    with pytest.raises(ConfigurationError) as raised:
        parse_time(datetime(2026, 10, 1, 6, 0), "start_date")
    assert "start_date=" in str(raised.value) and "time zone" in str(raised.value)


@pytest.mark.parametrize("text", ["garbage", "2026-13-01T00:00:00Z", "yesterday", "2026/10/01"])
def test_garbage_times_are_refused(text: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        parse_time(text, "end_date")
    message = str(raised.value)
    assert f"end_date={text!r}" in message
    assert "not an RFC 3339 time" in message and "2026-10-01T00:00:00Z" in message


# -- the grid -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "window", "down", "up"),
    [
        ("2026-10-01T10:17:42Z", "6h", "2026-10-01T06:00:00Z", "2026-10-01T12:00:00Z"),
        ("2026-10-01T06:00:00Z", "6h", "2026-10-01T06:00:00Z", "2026-10-01T06:00:00Z"),
        ("2026-10-01T23:59:59Z", "1d", "2026-10-01T00:00:00Z", "2026-10-02T00:00:00Z"),
        ("2026-10-01T10:17:42Z", "15m", "2026-10-01T10:15:00Z", "2026-10-01T10:30:00Z"),
        ("2026-10-01T10:00:00.001Z", "1h", "2026-10-01T10:00:00Z", "2026-10-01T11:00:00Z"),
        ("2026-10-01T01:00:00Z", "8h", "2026-10-01T00:00:00Z", "2026-10-01T08:00:00Z"),
    ],
)
def test_align_down_and_up(moment: str, window: str, down: str, up: str) -> None:
    length = parse_window(window)
    assert align_down(at(moment), length) == at(down)
    assert align_up(at(moment), length) == at(up)


def test_grid_lines_are_anchored_to_utc_midnight_on_every_day() -> None:
    for day in range(0, 400, 37):
        midnight = DAY1 + timedelta(days=day)
        for window in ("15m", "1h", "3h", "8h", "1d"):
            assert align_down(midnight, parse_window(window)) == midnight
            assert align_down(midnight + timedelta(seconds=1), parse_window(window)) == midnight


def test_grid_windows_are_whole_contiguous_and_end_by_the_limit() -> None:
    windows = list(grid_windows(at("2026-10-01T03:00:00Z"), at("2026-10-02T05:00:00Z"), 6 * H))
    assert bounds(windows) == [
        ("2026-10-01T00:00:00Z", "2026-10-01T06:00:00Z"),
        ("2026-10-01T06:00:00Z", "2026-10-01T12:00:00Z"),
        ("2026-10-01T12:00:00Z", "2026-10-01T18:00:00Z"),
        ("2026-10-01T18:00:00Z", "2026-10-02T00:00:00Z"),
    ]
    assert all(isinstance(w, Window) and w.end - w.start == 6 * H for w in windows)


def test_grid_windows_end_exactly_at_an_on_grid_limit() -> None:
    windows = list(grid_windows(DAY1, DAY1 + timedelta(days=1), H))
    assert len(windows) == 24
    assert windows[-1].end == DAY1 + timedelta(days=1)
    assert list(grid_windows(DAY1, DAY1 + 59 * timedelta(minutes=1), H)) == []


def test_window_text_is_start_inclusive_end_exclusive() -> None:
    assert str(Window(DAY1, DAY1 + H)) == "[2026-10-01T00:00:00Z, 2026-10-01T01:00:00Z)"


def test_newest_window_end_is_now_minus_delay_on_the_grid() -> None:
    assert newest_window_end(NOW, 3 * H, 6 * H, None) == at("2026-10-03T06:00:00Z")
    assert newest_window_end(NOW, 3 * H, H, None) == at("2026-10-03T07:00:00Z")
    assert newest_window_end(NOW, 24 * H, timedelta(days=1), None) == at("2026-10-02T00:00:00Z")


def test_newest_window_end_uses_end_date_when_given() -> None:
    assert newest_window_end(NOW, 3 * H, 6 * H, at("2026-10-02T05:00:00Z")) == at("2026-10-02T00:00:00Z")
    assert newest_window_end(NOW, 3 * H, 6 * H, at("2026-10-02T12:00:00Z")) == at("2026-10-02T12:00:00Z")


# -- settings -----------------------------------------------------------------------------------


def test_settings_parse_times_and_durations() -> None:
    config = settings(start_date="2026-10-01T02:00:00+02:00", window="1h", export_delay="90m")
    assert config.start_date == DAY1
    assert config.window == H
    assert config.export_delay == timedelta(minutes=90)
    assert config.end_date is None


def test_default_start_is_thirty_days_before_now() -> None:
    assert settings(start_date=None).start_date == NOW - timedelta(days=30)


def test_a_start_after_the_newest_end_is_refused_where_no_cursor_exists() -> None:
    config = settings(start_date="2026-10-03T09:00:00Z")  # now minus 3h is 07:17
    newest = newest_window_end(NOW, config.export_delay, config.window, None)
    with pytest.raises(ConfigurationError) as raised:
        WindowPlan("events", {}, config, ["everyone"], newest, now=NOW)
    message = str(raised.value)
    assert "segment 'everyone', events: no cursor yet" in message
    assert "2026-10-03T09:00:00Z" in message and "export_delay 3h" in message
    assert "pick an earlier start" in message


def test_the_initial_start_is_not_checked_where_a_cursor_exists() -> None:
    """`run --end` alone after earlier runs: the default start (30 days ago) is not used."""
    config = settings(start_date=None, end_date="2026-10-04T00:00:00Z")
    state = {"cursors": {"everyone": "2026-10-03T00:00:00Z"}}
    plan = WindowPlan("events", state, config, ["everyone"], at("2026-10-04T00:00:00Z"), now=NOW)
    assert [str(job.window.start) for job in list(plan.jobs())] == [
        "2026-10-03 00:00:00+00:00", "2026-10-03 06:00:00+00:00",
        "2026-10-03 12:00:00+00:00", "2026-10-03 18:00:00+00:00",
    ]  # fmt: skip


def test_an_explicit_start_after_an_explicit_end_is_refused_at_once() -> None:
    with pytest.raises(ConfigurationError, match="is not before the end 2026-10-02T00:00:00Z"):
        settings(start_date="2026-10-03T00:00:00Z", end_date="2026-10-02T00:00:00Z")


def test_a_bad_window_in_settings_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="window='7h'"):
        settings(window="7h")


# -- pending windows ----------------------------------------------------------------------------


def test_first_run_exports_from_start_to_now_minus_delay() -> None:
    assert pending(None, settings()) == [
        ("2026-10-01T00:00:00Z", "2026-10-01T06:00:00Z"),
        ("2026-10-01T06:00:00Z", "2026-10-01T12:00:00Z"),
        ("2026-10-01T12:00:00Z", "2026-10-01T18:00:00Z"),
        ("2026-10-01T18:00:00Z", "2026-10-02T00:00:00Z"),
        ("2026-10-02T00:00:00Z", "2026-10-02T06:00:00Z"),
        ("2026-10-02T06:00:00Z", "2026-10-02T12:00:00Z"),
        ("2026-10-02T12:00:00Z", "2026-10-02T18:00:00Z"),
        ("2026-10-02T18:00:00Z", "2026-10-03T00:00:00Z"),
        ("2026-10-03T00:00:00Z", "2026-10-03T06:00:00Z"),
    ]


def test_end_date_bounds_the_windows() -> None:
    config = settings(end_date="2026-10-02T00:00:00Z", window="12h")
    assert pending(None, config) == [
        ("2026-10-01T00:00:00Z", "2026-10-01T12:00:00Z"),
        ("2026-10-01T12:00:00Z", "2026-10-02T00:00:00Z"),
    ]


def test_a_cursor_on_the_grid_continues_from_the_cursor() -> None:
    config = settings()
    assert pending("2026-10-02T12:00:00Z", config) == [
        ("2026-10-02T12:00:00Z", "2026-10-02T18:00:00Z"),
        ("2026-10-02T18:00:00Z", "2026-10-03T00:00:00Z"),
        ("2026-10-03T00:00:00Z", "2026-10-03T06:00:00Z"),
    ]


def test_a_cursor_at_the_newest_end_exports_nothing() -> None:
    assert pending("2026-10-03T06:00:00Z", settings()) == []


def test_a_cursor_before_start_date_is_not_rewound_to_start() -> None:
    # start_date is only the initial value: an existing cursor wins, earlier or later
    config = settings(start_date="2026-10-02T00:00:00Z", window="1d")
    assert pending("2026-10-01T00:00:00Z", config) == [
        ("2026-10-01T00:00:00Z", "2026-10-02T00:00:00Z"),
        ("2026-10-02T00:00:00Z", "2026-10-03T00:00:00Z"),
    ]


def test_a_cursor_off_the_grid_gets_a_bridging_window() -> None:
    # loaded with 1h windows up to 02:00, now configured with 6h windows
    config = settings(end_date="2026-10-02T00:00:00Z")
    windows = pending("2026-10-01T02:00:00Z", config)
    assert windows == [
        ("2026-10-01T02:00:00Z", "2026-10-01T06:00:00Z"),
        ("2026-10-01T06:00:00Z", "2026-10-01T12:00:00Z"),
        ("2026-10-01T12:00:00Z", "2026-10-01T18:00:00Z"),
        ("2026-10-01T18:00:00Z", "2026-10-02T00:00:00Z"),
    ]


def test_the_bridging_window_waits_until_its_grid_line_is_ready() -> None:
    # cursor 02:00, newest end 00:00 of the next grid line not reached: nothing to export yet
    config = settings(start_date="2026-09-30T00:00:00Z", end_date="2026-10-01T05:00:00Z")
    assert pending("2026-10-01T02:00:00Z", config) == []
    # exactly on the next grid line: only the bridge
    config = settings(end_date="2026-10-01T06:00:00Z")
    assert pending("2026-10-01T02:00:00Z", config) == [("2026-10-01T02:00:00Z", "2026-10-01T06:00:00Z")]


def test_a_cursor_with_an_offset_is_read_in_utc() -> None:
    config = settings(end_date="2026-10-01T12:00:00Z")
    assert pending("2026-10-01T08:00:00+02:00", config) == [
        ("2026-10-01T06:00:00Z", "2026-10-01T12:00:00Z"),
    ]


@pytest.mark.parametrize("cursor", [None, "2026-10-01T00:00:00Z", "2026-10-01T01:45:00Z"])
@pytest.mark.parametrize("window", ["15m", "1h", "6h", "1d"])
def test_pending_windows_never_overlap_and_leave_no_gap(cursor: str | None, window: str) -> None:
    config = settings(window=window)
    newest = newest_window_end(NOW, config.export_delay, config.window, config.end_date)
    windows = list(pending_windows(cursor, config, newest))
    assert windows, "there is always something to export in two days"
    first = parse_time(cursor, "cursor") if cursor else align_down(config.start_date, config.window)
    assert windows[0].start == first
    assert windows[-1].end == newest
    for previous, following in zip(windows, windows[1:], strict=False):
        assert previous.end == following.start
    for w in windows[1:]:
        assert w.end - w.start == config.window
        assert align_down(w.start, config.window) == w.start
