"""Deterministic FullStory-shaped export rows, with no server involved.

Every value is derived from a blake2b hash of stable inputs (never Python's salted ``hash()``), so the
same call returns the same rows in every process. Rows are generated per UTC hour and then filtered
on EventStart, which is what makes any split of a range into windows yield exactly the rows of the
whole range.

One organisation: a pool of people visits in sessions of several pages (planned independently of
hours, so sessions span windows), and each segment is a subset of `everyone` (`segment_rule`), so
the same event is exported by every segment that holds its person.
"""

from __future__ import annotations

import hashlib
import random
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
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
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

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
# A small shop. Sessions walk it the way visitors do (home -> search -> product -> cart ->
# checkout -> complete), so page views have entry and exit pages and funnels have something to find.
_HOME = "https://shop.example.com/"
_SEARCH = "https://shop.example.com/search?q=gr%C3%BC%C3%9Fe,caf%C3%A9"
_PRODUCT = "https://shop.example.com/p/1234-deluxe"
_CART = "https://shop.example.com/cart"
_CHECKOUT = "https://shop.example.com/checkout?step=2"
_COMPLETE = "https://shop.example.com/checkout/complete"
_ACCOUNT = "https://shop.example.com/account#/orders?page=2"
_URLS = [_HOME, _SEARCH, _PRODUCT, _CART, _CHECKOUT, _COMPLETE, _ACCOUNT]
_ENTRY_PAGES = [_HOME, _HOME, _SEARCH, _PRODUCT]
_NEXT_PAGES = {
    _HOME: [_SEARCH, _PRODUCT, _ACCOUNT],
    _SEARCH: [_PRODUCT, _PRODUCT, _SEARCH],
    _PRODUCT: [_CART, _PRODUCT, _SEARCH],
    _CART: [_CHECKOUT, _CHECKOUT, _PRODUCT],
    _CHECKOUT: [_COMPLETE, _CART],
    _COMPLETE: [_HOME, _ACCOUNT],
    _ACCOUNT: [_HOME, _PRODUCT],
}
_REFERERS = ["", "https://www.google.com/", 'https://news.example.org/a,b?c="d"']
_SECTIONS = {_HOME: "home", _SEARCH: "catalog", _PRODUCT: "catalog", _CART: "checkout", _CHECKOUT: "checkout"}
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


_PEOPLE_BY_ID: dict[int, _Person] = {}


@lru_cache(maxsize=65536)
def _person(index: int) -> _Person:
    """The organisation's `index`-th visitor: the same person whatever the pool size, so a larger
    `events_per_hour` only adds people."""
    rng = _rng("person", index)
    # Every third IndvId is above 2**53 (and odd) so a float64 round trip visibly corrupts it.
    indv_id = 2**53 + 2 * rng.randrange(2**40) + 1 if index % 3 == 0 else rng.randrange(10**9, 2**53)
    created = _USERS_EPOCH + timedelta(seconds=rng.randrange(400 * 86400), milliseconds=rng.choice([0, 417]))
    signup = created + timedelta(days=rng.randrange(30))
    person = _Person(
        indv_id=indv_id,
        user_id=rng.randrange(2**62, 2**63),
        uid=f"user-{_seed('uid', index) % 100000:05d}",
        display_name=_DISPLAY_NAMES[index % len(_DISPLAY_NAMES)],
        email=f"user{index}@example.com",
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
    _PEOPLE_BY_ID[indv_id] = person
    return person


# Segments are subsets of `everyone`, decided per person, so a person's events appear in every
# segment that holds the person (as in FullStory, where one event can match several segments).
_SEGMENT_RULES: dict[str, Callable[[_Person], bool]] = {
    "everyone": lambda person: True,
    "power-users": lambda person: person.plan != "free",
    "frustrated-mobile": lambda person: person.client[3] == "Mobile",
    "checkout-abandoners": lambda person: _seed("checkout-abandoners", person.indv_id) % 5 < 2,
}


def segment_rule(segment_id: str) -> Callable[[_Person], bool]:
    """Who belongs to a segment: the rules above, and about half of everyone for any other id."""
    rule = _SEGMENT_RULES.get(segment_id)
    if rule is None:
        return lambda person: _seed(segment_id, person.indv_id) % 2 == 0
    return rule


def in_segment(segment_id: str, indv_id: int) -> bool:
    """Whether an individual the generator has produced belongs to the segment."""
    person = _PEOPLE_BY_ID.get(indv_id)
    return person is not None and segment_rule(segment_id)(person)


# Sessions. Each of `_lanes(eph)` lanes carries back-to-back sessions of random people, planned in
# 6-hour blocks that start at a different minute per lane, so sessions cross hour, window and day
# boundaries. An event at time t belongs to the session its lane runs at t: events of any hour are
# generated from that hour alone, and an hour holds exactly as many events as before sessions existed.
# Sessions last about 25 minutes (one in ten lasts 1-3 hours), so a lane of 30 events an hour gives
# sessions of a dozen events over several pages.
_BLOCK_MS = 6 * 3_600_000
_EVENTS_PER_LANE_HOUR = 30
_MEAN_SESSION_MS = 25 * 60_000
_MIN_SESSION_MS = 5 * 60_000


def _lanes(events_per_hour: int) -> int:
    return max(1, round(events_per_hour / _EVENTS_PER_LANE_HOUR))


def _pool_size(events_per_hour: int) -> int:
    """Few enough people that most come back for several sessions."""
    return 12 + 6 * _lanes(events_per_hour)


def _lane_offset_ms(lane: int) -> int:
    return (157 + 97 * lane) % 360 * 60_000


@dataclass(frozen=True)
class _Page:
    page_id: int
    start_ms: int
    start_text: str
    url: str
    referer: str
    duration: int
    active: int
    infos: int
    warnings: int
    errors: int
    cluster: int
    section: str | None


@dataclass(frozen=True)
class _Session:
    session_id: int
    person: _Person
    start_ms: int
    start: str  # SessionStart as exported
    page_starts: tuple[int, ...]
    pages: tuple[_Page, ...]

    def page_at(self, moment_ms: int) -> _Page:
        return self.pages[bisect_right(self.page_starts, moment_ms) - 1]


def _text(epoch_ms: int) -> str:
    return format_ts(_EPOCH + timedelta(milliseconds=epoch_ms))


def _pages(rng: random.Random, session_id: int, start_ms: int, end_ms: int) -> tuple[_Page, ...]:
    count = max(1, min(rng.randint(2, 7), (end_ms - start_ms) // 60_000))
    starts = [start_ms, *sorted(rng.sample(range(start_ms + 1, end_ms), count - 1))]
    ends = [*starts[1:], end_ms]
    pages: list[_Page] = []
    url = rng.choice(_ENTRY_PAGES)
    referer = rng.choice(_REFERERS)
    for number, (page_start, page_end) in enumerate(zip(starts, ends, strict=True)):
        if number:
            referer, url = url, rng.choice(_NEXT_PAGES[url])
        duration = page_end - page_start
        pages.append(
            _Page(
                page_id=_seed("page", session_id, number) % 2**63,
                start_ms=page_start,
                start_text=_text(page_start),
                url=url,
                referer=referer,
                duration=duration,
                active=duration * rng.randrange(10, 100) // 100,
                infos=rng.randrange(5),
                warnings=rng.randrange(3),
                errors=rng.randrange(2),
                cluster=rng.randrange(1, 40),
                section=None if rng.random() < 0.3 else _SECTIONS.get(url),  # sparse: absent on some pages
            )
        )
    return tuple(pages)


@lru_cache(maxsize=65536)
def _block(lane: int, block_ms: int, events_per_hour: int) -> tuple[tuple[int, ...], tuple[_Session, ...]]:
    """The sessions lane `lane` runs in the block starting at `block_ms`, and their start times."""
    rng = _rng("block", lane, block_ms, events_per_hour)
    pool = _pool_size(events_per_hour)
    block_end = block_ms + _BLOCK_MS
    sessions: list[_Session] = []
    start = block_ms
    while start < block_end:
        if rng.random() < 0.1:
            length = rng.randrange(3_600_000, 3 * 3_600_000)
        else:
            length = int(_MEAN_SESSION_MS * rng.uniform(0.3, 1.7))
        end = start + length
        if end + _MIN_SESSION_MS > block_end:
            end = block_end
        session_id = _seed("session", lane, block_ms, len(sessions)) % 2**63
        person = _person(rng.randrange(pool))
        pages = _pages(rng, session_id, start, end)
        sessions.append(
            _Session(session_id, person, start, _text(start), tuple(page.start_ms for page in pages), pages)
        )
        start = end
    return tuple(s.start_ms for s in sessions), tuple(sessions)


def _session_at(lane: int, moment_ms: int, events_per_hour: int) -> _Session:
    offset = _lane_offset_ms(lane)
    block_ms = (moment_ms - offset) // _BLOCK_MS * _BLOCK_MS + offset
    starts, sessions = _block(lane, block_ms, events_per_hour)
    return sessions[bisect_right(starts, moment_ms) - 1]


def _hours(start: datetime, end: datetime) -> Iterator[datetime]:
    hour = start.replace(minute=0, second=0, microsecond=0)
    while hour < end:
        yield hour
        hour += HOUR


def _hour_events(hour: datetime, events_per_hour: int) -> list[tuple[datetime, _Person, Row]]:
    """All events of one UTC hour (of everyone), sorted by EventStart, independent of any window."""
    rng = _rng("everyone", hour.isoformat())
    # The first draw decides the hour's size: bench/cache.py predicts export sizes from it.
    count = rng.randint(events_per_hour // 2, events_per_hour * 3 // 2)
    lanes = _lanes(events_per_hour)
    drafts: list[tuple[int, int]] = []
    for _ in range(count):
        offset_ms = rng.randrange(3_600_000)
        if rng.random() < 0.5:
            offset_ms -= offset_ms % 1000  # real exports mix whole-second and millisecond timestamps
        drafts.append((offset_ms, rng.randrange(lanes)))
    drafts.sort()

    hour_ms = int((hour - _EPOCH).total_seconds()) * 1000
    rows: list[tuple[datetime, _Person, Row]] = []
    for offset_ms, lane in drafts:
        moment_ms = hour_ms + offset_ms
        session = _session_at(lane, moment_ms, events_per_hour)
        page = session.page_at(moment_ms)
        when = hour + timedelta(milliseconds=offset_ms)
        row = _event_row(
            rng,
            when=when,
            person=session.person,
            session=session,
            page=page,
            page_start=page.start_text,
            session_offset=moment_ms - session.start_ms,
            page_offset=moment_ms - page.start_ms,
        )
        rows.append((when, session.person, row))
    return rows


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
        # rage clicks (frustrated), dead clicks and error clicks: the frustration signals sessions count
        "EventModFrustrated": int(kind == "thrash" or (kind == "click" and rng.random() < 0.06)),
        "EventModDead": int(kind == "click" and rng.random() < 0.05),
        "EventModError": int(kind == "exception" or (kind == "click" and rng.random() < 0.03)),
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
    member = segment_rule(segment_id)
    for hour in _hours(start, end):
        for when, person, row in _hour_events(hour, events_per_hour):
            if start <= when < end and member(person):
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
    for indv_id in sorted(counts):
        person = _PEOPLE_BY_ID[indv_id]
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
