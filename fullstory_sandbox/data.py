"""Deterministic FullStory-shaped export rows, with no server involved.

Every value is derived from a blake2b hash of stable inputs (never Python's salted ``hash()``), so the
same call returns the same rows in every process. Rows are generated per UTC hour and then filtered
on EventStart, which is what makes any split of a range into windows yield exactly the rows of the
whole range.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from .timefmt import format_ts, require_utc

Row = dict[str, Any]

DEFAULT_SEGMENTS: list[dict[str, str]] = [
    # Built-in segments have no "created" (as in the live API).
    {"id": "everyone", "name": "Everyone", "creator": "support@fullstory.com"},
    {
        "id": "checkout-abandoners",
        "name": "Checkout abandoners",
        "creator": "ana.silva@example.com",
        "created": "2025-03-14T09:26:53Z",
    },
    {
        "id": "power-users",
        "name": "Power users",
        "creator": "kenji.tanaka@example.com",
        "created": "2025-06-02T17:45:10.250Z",
    },
    {
        "id": "frustrated-mobile",
        "name": "Frustrated mobile visitors",
        "creator": "lena.mueller@example.com",
        "created": "2025-09-21T06:03:00Z",
    },
]

HOUR = timedelta(hours=1)
_USERS_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)

# Values that break naive parsers: commas, quotes, newlines, non-Latin scripts, emoji.
_DISPLAY_NAMES = [
    "Ada Lovelace",
    'Zoë "Zed" O\'Brien, Jr.',
    "山田 太郎",
    "Grüße 🛒 Kundin",
    "Line one\nLine two",
    "Smith, John",
    "María José Ñúñez",
]
_TARGET_TEXTS = [
    "Add to cart",
    'Add to cart, "Deluxe"\nfree shipping',
    "Grüße 🛒",
    "購入手続きへ進む",
    "Checkout",
    "Save",
    "",
]
_CUSTOM_NAMES = ["Order Completed", "Coupon Applied", 'Said "hi", then\nleft', "カート追加"]
_SELECTORS = ["button.add-to-cart", "a.nav-link", "input#email", "div.checkout > button", "select#size"]
_URLS = [
    "https://shop.example.com/",
    "https://shop.example.com/cart",
    "https://shop.example.com/checkout?step=2",
    "https://shop.example.com/search?q=gr%C3%BC%C3%9Fe,caf%C3%A9",
    "https://shop.example.com/p/1234-deluxe",
]
_SECTIONS = ["home", "catalog", "checkout", "account"]
_TAGS = ["sale", "new", "sale, 50%", 'say "cheese"', "日本"]
_PLANS = ["free", "pro", "enterprise"]
_CLIENTS = [
    # (user agent, browser, version, device, platform, operating system, screen, viewport)
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/128.0 Safari/537.36",
        "Chrome",
        "128.0",
        "Desktop",
        "web",
        "Windows",
        (1920, 1080),
        (1880, 950),
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Version/17.5 Mobile",
        "Mobile Safari",
        "17.5",
        "Mobile",
        "web",
        "iOS",
        (390, 844),
        (390, 664),
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5; rv:127.0) Gecko/20100101 Firefox/127.0",
        "Firefox",
        "127.0",
        "Desktop",
        "web",
        "Mac OS X",
        (2560, 1440),
        (1440, 800),
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/128.0 Mobile Safari/537.36",
        "Chrome Mobile",
        "128.0",
        "Mobile",
        "web",
        "Android",
        (412, 915),
        (412, 780),
    ),
]
# Weighted like real traffic: mostly clicks, few rare types.
_EVENT_TYPES = (
    ["click"] * 7
    + ["navigate"] * 2
    + ["change"] * 2
    + ["load", "custom", "custom", "pageview", "request"]
    + ["thrash", "copy", "paste", "exception", "console_message"]
)
_SUBTYPES = {"navigate": "pushState", "load": "domContentLoaded", "request": "xhr", "console_message": "warn"}


def _seed(*parts: object) -> int:
    """A stable 64-bit number for the given parts."""
    key = "|".join(str(part) for part in parts).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big")


def _rng(*parts: object) -> random.Random:
    return random.Random(_seed(*parts))


@dataclass(frozen=True)
class _Person:
    indv_id: int
    user_id: int
    uid: str
    display_name: str
    email: str
    created: datetime
    plan: str
    seats: int
    ltv_halves: int  # lifetime value in units of 0.5, so some values are whole and some are x.5
    beta: bool | None  # None: the person never had the variable set (key absent, not null)
    signup: datetime
    created_text: str  # formatted once: timestamps are costly to format per row
    signup_text: str
    ip: str
    latlong: str
    client: tuple[Any, ...]

    @property
    def ltv(self) -> float:
        return self.ltv_halves / 2


@lru_cache(maxsize=256)
def _people(segment_id: str) -> tuple[_Person, ...]:
    """A small fixed pool per segment so the same individuals recur across windows."""
    size = 20 + _seed(segment_id, "pool") % 31
    people: list[_Person] = []
    used: set[int] = set()
    for index in range(size):
        rng = _rng(segment_id, "person", index)
        # Every third IndvId is above 2**53 (and odd) so a float64 round trip visibly corrupts it.
        indv_id = 2**53 + 2 * rng.randrange(2**40) + 1 if index % 3 == 0 else rng.randrange(10**9, 2**53)
        while indv_id in used:
            indv_id += 2
        used.add(indv_id)
        created = _USERS_EPOCH + timedelta(
            seconds=rng.randrange(400 * 86400), milliseconds=rng.choice([0, 417])
        )
        signup = created + timedelta(days=rng.randrange(30))
        people.append(
            _Person(
                indv_id=indv_id,
                user_id=rng.randrange(2**62, 2**63),
                uid=f"user-{_seed(segment_id, index) % 100000:05d}",
                display_name=_DISPLAY_NAMES[index % len(_DISPLAY_NAMES)],
                email=f"user{index}+{segment_id}@example.com",
                created=created,
                plan=rng.choice(_PLANS),
                seats=rng.randrange(1, 250),
                ltv_halves=rng.randrange(0, 2000),
                beta=None if index % 4 == 3 else rng.random() < 0.5,
                signup=signup,
                created_text=format_ts(created),
                signup_text=format_ts(signup),
                ip=f"203.0.113.{rng.randrange(1, 255)}",
                latlong=f"{rng.uniform(-60, 60):.4f},{rng.uniform(-150, 150):.4f}",
                client=rng.choice(_CLIENTS),
            )
        )
    return tuple(people)


@lru_cache(maxsize=256)
def _people_by_id(segment_id: str) -> dict[int, _Person]:
    return {person.indv_id: person for person in _people(segment_id)}


@dataclass(frozen=True)
class _Page:
    page_id: int
    url: str
    referer: str
    duration: int
    active: int
    infos: int
    warnings: int
    errors: int
    cluster: int
    section: str | None


def _page(segment_id: str, person: _Person, hour: datetime, number: int) -> _Page:
    rng = _rng(segment_id, person.indv_id, hour.isoformat(), "page", number)
    duration = rng.randrange(5_000, 900_000)
    return _Page(
        page_id=rng.randrange(2**63),
        url=rng.choice(_URLS),
        referer=rng.choice(["", "https://www.google.com/", 'https://news.example.org/a,b?c="d"']),
        duration=duration,
        active=duration * rng.randrange(10, 100) // 100,
        infos=rng.randrange(5),
        warnings=rng.randrange(3),
        errors=rng.randrange(2),
        cluster=rng.randrange(1, 40),
        section=None if number == 2 else _SECTIONS[number + rng.randrange(2)],  # sparse: absent on some pages
    )


def _hours(start: datetime, end: datetime) -> Iterator[datetime]:
    hour = start.replace(minute=0, second=0, microsecond=0)
    while hour < end:
        yield hour
        hour += HOUR


def _hour_events(segment_id: str, hour: datetime, events_per_hour: int) -> list[tuple[datetime, Row]]:
    """All events of one UTC hour, sorted by EventStart, independent of any window."""
    rng = _rng(segment_id, hour.isoformat())
    count = rng.randint(events_per_hour // 2, events_per_hour * 3 // 2)
    pool = _people(segment_id)
    drafts: list[tuple[int, _Person, int]] = []
    for _ in range(count):
        offset_ms = rng.randrange(3_600_000)
        if rng.random() < 0.5:
            offset_ms -= offset_ms % 1000  # real exports mix whole-second and millisecond timestamps
        drafts.append((offset_ms, rng.choice(pool), rng.randrange(3)))
    drafts.sort(key=lambda draft: draft[0])

    # A session is one person's activity in this hour; it and its pages start at their first event.
    session_start: dict[int, int] = {}
    page_start: dict[tuple[int, int], int] = {}
    pages: dict[tuple[int, int], _Page] = {}
    for offset_ms, person, number in drafts:
        session_start.setdefault(person.indv_id, offset_ms)
        page_start.setdefault((person.indv_id, number), offset_ms)
        if (person.indv_id, number) not in pages:
            pages[(person.indv_id, number)] = _page(segment_id, person, hour, number)

    # Per-session values computed once per hour: formatting and hashing dominate the cost per row.
    sessions = {
        indv_id: _Session(
            session_id=_seed(segment_id, indv_id, hour.isoformat(), "session") % 2**63,
            start=format_ts(hour + timedelta(milliseconds=offset_ms)),
        )
        for indv_id, offset_ms in session_start.items()
    }
    page_texts = {
        key: format_ts(hour + timedelta(milliseconds=offset_ms)) for key, offset_ms in page_start.items()
    }

    rows: list[tuple[datetime, Row]] = []
    for offset_ms, person, number in drafts:
        when = hour + timedelta(milliseconds=offset_ms)
        key = (person.indv_id, number)
        row = _event_row(
            rng,
            when=when,
            person=person,
            session=sessions[person.indv_id],
            page=pages[key],
            page_start=page_texts[key],
            session_offset=offset_ms - session_start[person.indv_id],
            page_offset=offset_ms - page_start[key],
        )
        rows.append((when, row))
    return rows


@dataclass(frozen=True)
class _Session:
    session_id: int
    start: str


def _event_row(
    rng: random.Random,
    *,
    when: datetime,
    person: _Person,
    session: _Session,
    page: _Page,
    page_start: str,
    session_offset: int,
    page_offset: int,
) -> Row:
    kind = rng.choice(_EVENT_TYPES)
    agent, browser, version, device, platform, system, screen, viewport = person.client
    row: Row = {
        "EventStart": format_ts(when),
        "EventType": kind,
        "EventSubType": _SUBTYPES.get(kind, ""),
        "EventCustomName": rng.choice(_CUSTOM_NAMES) if kind == "custom" else "",
        "EventTargetText": rng.choice(_TARGET_TEXTS) if kind in ("click", "change") else "",
        "EventTargetSelectorTok": rng.choice(_SELECTORS) if kind in ("click", "change", "thrash") else "",
        "EventModFrustrated": int(kind == "thrash" or rng.random() < 0.03),
        "EventModDead": int(kind == "click" and rng.random() < 0.05),
        "EventModError": int(kind == "exception"),
        "EventModSuspicious": int(rng.random() < 0.01),
        "EventDuration": rng.randrange(20, 3000) if kind in ("load", "request") else 0,
        "EventPageOffset": page_offset,
        "EventSessionOffset": session_offset,
        "IndvId": person.indv_id,
        "UserId": person.user_id,
        "SessionId": session.session_id,
        "PageId": page.page_id,
        "UserCreated": person.created_text,
        "UserAppKey": person.uid,
        "UserDisplayName": person.display_name,
        "UserEmail": person.email,
        "SessionStart": session.start,
        "PageStart": page_start,
        "PageDuration": page.duration,
        "PageActiveDuration": page.active,
        "PageUrl": page.url,
        "PageRefererUrl": page.referer,
        "PageIp": person.ip,
        "PageLatLong": person.latlong,
        "PageUserAgent": agent,
        "PageBrowser": browser,
        "PageBrowserVersion": version,
        "PageDevice": device,
        "PagePlatform": platform,
        "PageOperatingSystem": system,
        "PageScreenWidth": screen[0],
        "PageScreenHeight": screen[1],
        "PageViewportWidth": viewport[0],
        "PageViewportHeight": viewport[1],
        "PageNumInfos": page.infos,
        "PageNumWarnings": page.warnings,
        "PageNumErrors": page.errors,
        "PageClusterId": page.cluster,
        "user_plan_str": person.plan,
        "user_seats_int": person.seats,
        # A _real whose first values of a day are whole numbers written as JSON ints (`3`), later
        # doubles (`4.0`, `2.5`): type inference that trusts the first rows picks bigint and breaks.
        "user_ltv_real": int(person.ltv) if when.hour < 6 else person.ltv,
        "user_signup_date": person.signup_text,
    }
    if person.beta is not None:
        row["user_beta_bool"] = person.beta
    if page.section is not None:
        row["page_section_str"] = page.section
    if kind == "custom" and rng.random() < 0.6:
        row["evt_order.items_real"] = rng.randrange(1, 12) / 2
    if kind == "click" and rng.random() < 0.3:
        row["evt_tags_strs"] = rng.sample(_TAGS, rng.randrange(0, 3))
    if kind in ("exception", "request", "console_message"):
        row["evt_codes_ints"] = [rng.randrange(100, 600) for _ in range(rng.randrange(1, 4))]
    if when.hour % 2 == 1 and kind == "custom" and rng.random() < 0.5:
        row["evt_coupon_str"] = rng.choice(["SAVE10", "WELCOME, FRIEND"])  # a column that shows up late
    return row


def events(segment_id: str, start: datetime, end: datetime, events_per_hour: int = 6) -> Iterator[Row]:
    """Events of a segment with start <= EventStart < end, in EventStart order."""
    start, end = require_utc(start), require_utc(end)
    for hour in _hours(start, end):
        for when, row in _hour_events(segment_id, hour, events_per_hour):
            if start <= when < end:
                yield row


def individuals(segment_id: str, start: datetime, end: datetime, events_per_hour: int = 6) -> Iterator[Row]:
    """One row per individual with events in [start, end), ordered by IndvId."""
    counts: dict[int, int] = {}
    sessions: dict[int, set[int]] = {}
    pages: dict[int, set[int]] = {}
    last: dict[int, Row] = {}
    for row in events(segment_id, start, end, events_per_hour):
        indv_id = row["IndvId"]
        counts[indv_id] = counts.get(indv_id, 0) + 1
        sessions.setdefault(indv_id, set()).add(row["SessionId"])
        pages.setdefault(indv_id, set()).add(row["PageId"])
        last[indv_id] = row  # events arrive in EventStart order, so the latest one wins
    people = _people_by_id(segment_id)
    for indv_id in sorted(counts):
        person = people[indv_id]
        latest = last[indv_id]
        total_sec = sum(60 + session % 1800 for session in sessions[indv_id])
        yield {
            "IndvId": indv_id,
            "Uid": person.uid,
            "DisplayName": person.display_name,
            "Email": person.email,
            "Created": format_ts(person.created),
            "NumSessions": len(sessions[indv_id]),
            "NumPages": len(pages[indv_id]),
            "NumEvents": counts[indv_id],
            "TotalSec": total_sec,
            "ActiveSec": total_sec * 2 // 3,
            "AvgSessionSec": total_sec / len(sessions[indv_id]),
            "LastSessionStart": latest["SessionStart"],
            "LastEventStart": latest["EventStart"],
            "LastPage": latest["PageUrl"],
            "LastIp": latest["PageIp"],
            "LastBrowser": latest["PageBrowser"],
            "LastDevice": latest["PageDevice"],
            "LastPlatform": latest["PagePlatform"],
            "LastOperatingSystem": latest["PageOperatingSystem"],
            "user_plan_str": person.plan,
            "user_seats_int": person.seats,
            "user_ltv_real": person.ltv,
        }


def select_fields(rows: Iterable[Row], patterns: Sequence[str]) -> Iterator[Row]:
    """Keep only the keys named by patterns; a trailing '*' matches a prefix (live API `fields`)."""
    exact = {pattern for pattern in patterns if not pattern.endswith("*")}
    prefixes = tuple(pattern[:-1] for pattern in patterns if pattern.endswith("*"))
    for row in rows:
        yield {key: value for key, value in row.items() if key in exact or key.startswith(prefixes)}


@dataclass(frozen=True)
class LateData:
    """Some events reach FullStory late (page-unload beacons, mobile apps that sync later): a
    `fraction` of the events of any window become visible only `age` after their EventStart."""

    fraction: float
    age: timedelta

    def arrived(self, row: Row, as_of: datetime) -> bool:
        started = datetime.fromisoformat(str(row["EventStart"]).replace("Z", "+00:00"))
        if as_of >= started + self.age:
            return True
        draw = _seed("late", row["SessionId"], row["EventStart"], row["EventType"]) % 10_000
        return draw >= self.fraction * 10_000


def visible(rows: Iterable[Row], late: LateData | None, as_of: datetime | None) -> Iterator[Row]:
    """The rows FullStory can export at `as_of` (all of them when there is no late data)."""
    for row in rows:
        if late is None or as_of is None or late.arrived(row, as_of):
            yield row
