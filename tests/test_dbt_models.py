"""The analytics models, built by real dbt on DuckDB over what `fullstory-pipeline run` loaded
from the sandbox, checked against what the sandbox generated (counted here, independently).

One scenario for the whole module (dbt starts slowly): three overlapping segments (not
`everyone`, so the same event is loaded up to three times) with late-arriving events.
  A. load day 1 while its last hours still miss late events; build the models (a full build);
  B. load day 2 and backfill day 1's last windows (the late events arrive); build again
     (incremental: sessions spanning the refreshed windows are rebuilt whole);
  C. load day 3; build again (incremental: day 1's sessions are left alone);
  then a --full-refresh build must equal the incremental one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from fullstory_sandbox import Sandbox
from fullstory_sandbox.data import LateData
from fullstory_source.windows import format_time
from pipelines.fullstory_pipeline import main

from .support import API_KEY, DAY1, DAY2, DAY3

REPO = Path(__file__).resolve().parents[1]

SEGMENTS = ["power-users", "frustrated-mobile", "checkout-abandoners"]
EVENTS_PER_HOUR = 40
DAY4 = DAY3 + timedelta(days=1)
Row = dict[str, Any]
FUNNEL = [("viewed_product", "/p/"), ("viewed_cart", "/cart"), ("started_checkout", "/checkout?"),
          ("completed_order", "/checkout/complete")]  # fmt: skip


@dataclass
class Stage:
    """What the sandbox says was visible at a stage, and the models as built then."""

    events: list[Row]  # one per event, counted once across segments
    segments_of: dict[tuple[int, int], set[str]]  # which segments exported each session
    sessions: dict[tuple[int, int], dict[str, Any]]
    page_views: dict[tuple[int, int, int], dict[str, Any]]
    users: dict[int, dict[str, Any]]
    daily: dict[date, dict[str, Any]]
    funnel: dict[tuple[int, int], dict[str, Any]]


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def millis(value: datetime) -> int:
    return round(value.timestamp() * 1000)


def oracle(sb: Sandbox, end: datetime, as_of: datetime) -> tuple[list[Row], dict[tuple[int, int], set[str]]]:
    """The distinct events of all segments over [DAY1, end) as the sandbox exported them at
    `as_of`: an event in several segments once, identical events as often as one segment has them."""
    best: dict[str, list[Row]] = {}
    segments_of: dict[tuple[int, int], set[str]] = defaultdict(set)
    for segment in SEGMENTS:
        copies: dict[str, list[Row]] = defaultdict(list)
        for row in sb.expected_rows("events", segment, DAY1, end, as_of=as_of):
            copies[json.dumps(row, sort_keys=True)].append(row)
            segments_of[(row["IndvId"], row["SessionId"])].add(segment)
        for key, rows in copies.items():
            if len(rows) > len(best.get(key, [])):
                best[key] = rows
    return [row for rows in best.values() for row in rows], dict(segments_of)


def table(database: Path, sql: str) -> Iterator[dict[str, Any]]:
    with duckdb.connect(str(database), read_only=True) as con:
        cursor = con.execute(sql)
        names = [d[0] for d in cursor.description]
        for values in cursor.fetchall():
            yield dict(zip(names, values, strict=True))


def snapshot(database: Path, events: list[Row], segments_of: dict[tuple[int, int], set[str]]) -> Stage:
    def rows(model: str, *key: str) -> dict[Any, dict[str, Any]]:
        found = table(database, f"SELECT * FROM fullstory_analytics.{model}")
        return {tuple(r[k] for k in key) if len(key) > 1 else r[key[0]]: r for r in found}

    return Stage(
        events=events,
        segments_of=segments_of,
        sessions=rows("sessions", "indv_id", "session_id"),
        page_views=rows("page_views", "indv_id", "session_id", "page_id"),
        users=rows("users", "indv_id"),
        daily=rows("daily_activity", "activity_date"),
        funnel=rows("checkout_funnel", "indv_id", "session_id"),
    )


@pytest.fixture(scope="module")
def stages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Stage]:
    workdir = tmp_path_factory.mktemp("dbt")
    database = workdir / "warehouse.duckdb"
    with (
        pytest.MonkeyPatch.context() as env,
        Sandbox(
            api_key=API_KEY, flavor="live", events_per_hour=EVENTS_PER_HOUR, workdir=str(workdir / "sb")
        ) as sb,
    ):
        # the command as a scheduled job runs it: everything from the environment, defaults elsewhere
        for name, value in {
            "DLT_DATA_DIR": str(workdir / "dlt"),
            "SOURCES__FULLSTORY__API_KEY": API_KEY,
            "DESTINATION__DUCKDB__CREDENTIALS": str(database),
            "SOURCES__FULLSTORY__POLL_INTERVAL": "0.02",
            "SOURCES__FULLSTORY__MAX_CREATES_PER_MINUTE": "60000",
        }.items():
            env.setenv(name, value)
        env.chdir(workdir)
        segments = [arg for segment in SEGMENTS for arg in ("--segment", segment)]
        common = ["--base-url", sb.base_url, "--types", "events", "--window", "6h", *segments]
        first = ["--start", format_time(DAY1)]  # only the initial start: later runs follow the cursor
        sb.late_data = LateData(fraction=0.25, age=timedelta(hours=4))
        out: dict[str, Stage] = {}

        sb.clock = DAY2 + timedelta(hours=1)  # day 1's last hours still miss a quarter of their events
        assert main(["run", *common, *first, "--end", format_time(DAY2)]) == 0
        assert main(["models"]) == 0
        out["A"] = snapshot(database, *oracle(sb, DAY2, sb.clock))

        sb.clock = DAY3 + timedelta(hours=6)  # everything up to day 3 has arrived
        assert main(["run", *common, *first, "--end", format_time(DAY3)]) == 0
        backfill = ["backfill", *common, "--start", format_time(DAY2 - timedelta(hours=12))]
        assert main([*backfill, "--end", format_time(DAY2)]) == 0
        assert main(["models"]) == 0
        out["B"] = snapshot(database, *oracle(sb, DAY3, sb.clock))

        sb.clock = DAY4 + timedelta(hours=6)
        assert main(["run", *common, *first, "--end", format_time(DAY4)]) == 0
        assert main(["models"]) == 0
        out["C"] = snapshot(database, *oracle(sb, DAY4, sb.clock))

        assert main(["models", "--full-refresh"]) == 0
        out["full"] = snapshot(database, *oracle(sb, DAY4, sb.clock))
    return out


def expected_sessions(stage: Stage) -> dict[tuple[int, int], dict[str, Any]]:
    by_session: dict[tuple[int, int], list[Row]] = defaultdict(list)
    for row in stage.events:
        by_session[(row["IndvId"], row["SessionId"])].append(row)
    out = {}
    for key, rows in by_session.items():
        pages: dict[int, Row] = {}
        for row in rows:
            pages.setdefault(row["PageId"], row)
        by_start = sorted(pages.values(), key=lambda row: (moment(row["PageStart"]), row["PageId"]))
        clicks = [row for row in rows if row["EventType"] == "click"]
        out[key] = {
            "events": len(rows),
            "click_events": len(clicks),
            "rage_clicks": sum(row["EventModFrustrated"] for row in clicks),
            "dead_clicks": sum(row["EventModDead"] for row in clicks),
            "error_clicks": sum(row["EventModError"] for row in clicks),
            "page_views": len(pages),
            "started_at": millis(moment(rows[0]["SessionStart"])),
            "ended_at": max(millis(moment(row["EventStart"])) for row in rows),
            "entry_url": by_start[0]["PageUrl"],
            "exit_url": by_start[-1]["PageUrl"],
            "segments": ",".join(sorted(stage.segments_of[key])),
            "session_date": moment(rows[0]["SessionStart"]).date(),
        }
    return out


def built_sessions(stage: Stage) -> dict[tuple[int, int], dict[str, Any]]:
    out = {}
    for key, row in stage.sessions.items():
        out[key] = {
            name: millis(row[name]) if name in ("started_at", "ended_at") else row[name]
            for name in (
                "events", "click_events", "rage_clicks", "dead_clicks", "error_clicks", "page_views",
                "started_at", "ended_at", "entry_url", "exit_url", "segments", "session_date",
            )
        }  # fmt: skip
    return out


@pytest.mark.parametrize("name", ["A", "B", "C", "full"])
def test_sessions_are_exactly_what_the_sandbox_generated(stages: dict[str, Stage], name: str) -> None:
    stage = stages[name]
    expected = expected_sessions(stage)
    assert built_sessions(stage) == expected
    assert sum(row["events"] for row in stage.sessions.values()) == len(stage.events)


def test_the_scenario_exercises_what_it_claims(stages: dict[str, Stage]) -> None:
    a, b = stages["A"], stages["B"]
    # segments overlap: events were loaded several times, and sessions show several segments
    assert any(len(found) > 1 for found in b.segments_of.values())
    # late events arrived in the backfilled windows, so day 1 grew between A and B
    day1 = [row for row in b.events if moment(row["EventStart"]) < DAY2]
    assert len(a.events) < len(day1)
    # sessions of several pages and many events, returning visitors
    assert sum(s["page_views"] for s in b.sessions.values()) / len(b.sessions) > 2
    assert sum(s["events"] for s in b.sessions.values()) / len(b.sessions) > 8
    assert any(u["sessions"] > 2 for u in b.users.values())
    # some sessions span the boundary between day 1's refreshed windows and day 2's
    assert any(s["started_at"] < DAY2 <= s["ended_at"] for s in b.sessions.values())


def test_an_incremental_build_rebuilds_only_the_days_a_load_touched(stages: dict[str, Stage]) -> None:
    b, c = stages["B"], stages["C"]
    # day 3's windows changed nothing of the sessions that started before day 2: their rows are
    # the ones build B wrote (same load id), while day 3's sessions come from build C
    untouched = {key: row for key, row in c.sessions.items() if row["session_date"] < DAY2.date()}
    assert untouched and untouched == {key: b.sessions[key] for key in untouched}
    built_by_b = {row["_fullstory_loaded_at"] for row in b.sessions.values()}
    day3 = [row for row in c.sessions.values() if row["session_date"] == DAY3.date()]
    assert day3 and all(row["_fullstory_loaded_at"] not in built_by_b for row in day3)


def test_an_incremental_build_equals_a_full_refresh(stages: dict[str, Stage]) -> None:
    c, full = stages["C"], stages["full"]

    def without_build_mark(rows: dict[Any, dict[str, Any]]) -> dict[Any, dict[str, Any]]:
        mark = "_fullstory_loaded_at"
        return {key: {k: v for k, v in row.items() if k != mark} for key, row in rows.items()}

    assert without_build_mark(c.sessions) == without_build_mark(full.sessions)
    assert without_build_mark(c.page_views) == without_build_mark(full.page_views)
    assert c.users == full.users and c.daily == full.daily


@pytest.mark.parametrize("name", ["A", "C"])
def test_page_views_are_exactly_the_generated_pages(stages: dict[str, Stage], name: str) -> None:
    stage = stages[name]
    expected: dict[tuple[int, int, int], dict[str, Any]] = {}
    for row in stage.events:
        key = (row["IndvId"], row["SessionId"], row["PageId"])
        page = expected.setdefault(
            key,
            {"url": row["PageUrl"], "events": 0, "duration_seconds": row["PageDuration"] / 1000,
             "started_at": millis(moment(row["PageStart"]))},
        )  # fmt: skip
        page["events"] += 1
    built = {
        key: {"url": r["url"], "events": r["events"], "duration_seconds": float(r["duration_seconds"]),
              "started_at": millis(r["started_at"])}
        for key, r in stage.page_views.items()
    }  # fmt: skip
    assert built == expected
    # page numbers run 1..n within each session, entry and exit pages marked once
    numbers: dict[tuple[int, int], list[int]] = defaultdict(list)
    for (indv, session, _), row in stage.page_views.items():
        numbers[(indv, session)].append(row["page_number"])
    assert all(sorted(found) == list(range(1, len(found) + 1)) for found in numbers.values())
    assert sum(row["is_entry"] for row in stage.page_views.values()) == len(stage.sessions)
    assert sum(row["is_exit"] for row in stage.page_views.values()) == len(stage.sessions)


def test_url_parts(stages: dict[str, Stage]) -> None:
    parts = {
        (r["url"], r["url_host"], r["url_path"], r["url_query"], r["url_fragment"])
        for r in stages["C"].page_views.values()
    }
    checkout = "https://shop.example.com/checkout?step=2"
    assert (checkout, "shop.example.com", "/checkout", "step=2", None) in parts
    assert ("https://shop.example.com/account#/orders?page=2", "shop.example.com", "/account", None,
            "/orders?page=2") in parts  # fmt: skip
    assert ("https://shop.example.com/", "shop.example.com", "/", None, None) in parts


def test_users_and_daily_activity_add_up(stages: dict[str, Stage]) -> None:
    stage = stages["C"]
    sessions = expected_sessions(stage)
    per_person: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for (indv, _), session in sessions.items():
        per_person[indv].append(session)
    assert {indv: (u["sessions"], u["events"]) for indv, u in stage.users.items()} == {
        indv: (len(found), sum(s["events"] for s in found)) for indv, found in per_person.items()
    }
    identities = {(row["IndvId"], row["UserEmail"], row["UserAppKey"]) for row in stage.events}
    assert {(indv, u["user_email"], u["user_app_key"]) for indv, u in stage.users.items()} <= identities
    assert all(u["user_plan_str"] in ("free", "pro", "enterprise") for u in stage.users.values())

    first_day = {indv: min(s["session_date"] for s in found) for indv, found in per_person.items()}
    per_day: dict[date, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    for (indv, _), session in sessions.items():
        per_day[session["session_date"]].append((indv, session))
    assert {
        day: (r["sessions"], r["active_users"], r["new_users"], r["events"]) for day, r in stage.daily.items()
    } == {
        day: (
            len(found),
            len({indv for indv, _ in found}),
            len({indv for indv, _ in found if first_day[indv] == day}),
            sum(s["events"] for _, s in found),
        )
        for day, found in per_day.items()
    }


def test_the_checkout_funnel_follows_steps_in_order_within_sessions(stages: dict[str, Stage]) -> None:
    stage = stages["C"]
    by_session: dict[tuple[int, int], list[Row]] = defaultdict(list)
    for row in stage.events:
        by_session[(row["IndvId"], row["SessionId"])].append(row)
    expected = {}
    for key, rows in by_session.items():
        rows = sorted(rows, key=lambda row: moment(row["EventStart"]))
        reached: list[datetime] = []
        for _, needle in FUNNEL:
            after = reached[-1] if reached else None
            hit = next(
                (moment(r["EventStart"]) for r in rows
                 if needle in r["PageUrl"] and (after is None or moment(r["EventStart"]) > after)),
                None,
            )  # fmt: skip
            if hit is None:
                break
            reached.append(hit)
        if reached:
            expected[key] = [millis(at) for at in reached]
    built = {
        key: [millis(row[f"{name}_at"]) for name, _ in FUNNEL if row[f"{name}_at"] is not None]
        for key, row in stage.funnel.items()
    }
    assert built == expected
    assert Counter(len(steps) for steps in expected.values())[4] > 0  # some sessions order


def test_replay_urls_name_the_device_and_session(stages: dict[str, Stage]) -> None:
    user_ids = {(row["IndvId"], row["SessionId"]): row["UserId"] for row in stages["C"].events}
    for key, row in stages["C"].sessions.items():
        assert (
            row["replay_url"] == f"https://app.fullstory.com/ui/YOUR_ORG_ID/session/{user_ids[key]}:{key[1]}"
        )


def test_models_without_a_load_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["models"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: dataset 'fullstory' of pipeline 'fullstory_pipeline' has no loaded FullStory events yet; run "
        "`fullstory-pipeline run` first (or pass the --pipeline-name, --dataset-name and --destination "
        "it loaded with)"
    ]


def test_make_demo_ends_with_the_models(tmp_path: Path) -> None:
    """What `make demo` runs, as commands: the demo load, then the models of its pipeline."""
    env = {**os.environ, "DLT_DATA_DIR": str(tmp_path / "dlt")}
    env.pop("DESTINATION__DUCKDB__CREDENTIALS", None)
    for command in (["demo"], ["models", "--pipeline-name", "fullstory_demo"]):
        result = subprocess.run(
            [sys.executable, "-m", "pipelines.fullstory_pipeline", *command],
            cwd=tmp_path, env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "A few sessions" in result.stdout
    database = tmp_path / "fullstory_demo.duckdb"
    with duckdb.connect(str(database), read_only=True) as con:
        # everyone holds every event once, the other segments repeat some: the models count each once
        everyone_sql = "SELECT count(*) FROM fullstory.events WHERE segment_id = 'everyone'"
        ((everyone,),) = con.execute(everyone_sql).fetchall()
        ((counted, sessions, multi),) = con.execute(
            "SELECT sum(events), count(*), count(*) FILTER (WHERE segment_count > 1) "
            "FROM fullstory_analytics.sessions"
        ).fetchall()
    assert counted == everyone and multi > 0
    assert everyone / sessions > 8  # sessions of many events


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--vars", "{not json"], "error: --vars is not JSON"),
        (["--vars", "[1, 2]"], "error: --vars must be a JSON object of dbt vars"),
        (
            ["--destination", "filesystem"],
            "error: models are built for duckdb, bigquery or snowflake, not 'filesystem'",
        ),
    ],
)
def test_bad_models_input_is_one_clear_line(
    args: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["models", *args]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(message)
