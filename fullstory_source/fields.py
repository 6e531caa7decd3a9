"""Column types from FullStory field names.

FullStory exports carry no schema. Inferring types from the data goes wrong in ways that split
or corrupt columns (a `_real` whose first values are whole numbers looks like an integer, a
timestamp with milliseconds looks like a string), so the type comes from the name: the known
export fields by name, custom variables by their suffix.
"""

from __future__ import annotations

TIMESTAMP = "TIMESTAMPTZ"
BIGINT = "BIGINT"
DOUBLE = "DOUBLE"
BOOLEAN = "BOOLEAN"
VARCHAR = "VARCHAR"

_KNOWN: dict[str, str] = {
    # ids are int64 and can exceed 2**53: never let them pass through a double
    **dict.fromkeys(["IndvId", "UserId", "SessionId", "PageId"], BIGINT),
    **dict.fromkeys(
        [
            "EventStart",
            "UserCreated",
            "SessionStart",
            "PageStart",
            "Created",
            "LastSessionStart",
            "LastEventStart",
        ],
        TIMESTAMP,
    ),
    **dict.fromkeys(
        [
            "EventModFrustrated",
            "EventModDead",
            "EventModError",
            "EventModSuspicious",
            "EventDuration",
            "EventPageOffset",
            "EventSessionOffset",
            "PageDuration",
            "PageActiveDuration",
            "PageScreenWidth",
            "PageScreenHeight",
            "PageViewportWidth",
            "PageViewportHeight",
            "PageNumInfos",
            "PageNumWarnings",
            "PageNumErrors",
            "LoadDomContentTime",
            "LoadEventTime",
            "LoadFirstPaintTime",
            "ReqStatus",
            "NumSessions",
            "NumPages",
            "NumEvents",
            "TotalSec",
            "ActiveSec",
            "PageClusterId",
        ],
        BIGINT,
    ),
    "AvgSessionSec": DOUBLE,
    # text, whatever the values look like (a JSON export writes "128.0", a CSV export 128.0)
    **dict.fromkeys(
        [
            "EventType",
            "EventSubType",
            "EventCustomName",
            "EventTargetText",
            "EventTargetSelectorTok",
            "UserAppKey",
            "UserDisplayName",
            "UserEmail",
            "PageUrl",
            "PageRefererUrl",
            "PageIp",
            "PageLatLong",
            "PageUserAgent",
            "PageBrowser",
            "PageBrowserVersion",
            "PageDevice",
            "PagePlatform",
            "PageOperatingSystem",
            "ReqUrl",
            "ReqMethod",
            "AppName",
            "AppPackageName",
            "AppDeviceModel",
            "AppDeviceVendor",
            "AppVersion",
            "AppOsVersion",
            "AppViewName",
            "Uid",
            "DisplayName",
            "Email",
            "LastPage",
            "LastIp",
            "LastBrowser",
            "LastDevice",
            "LastPlatform",
            "LastOperatingSystem",
        ],
        VARCHAR,
    ),
}

_SUFFIXES: dict[str, str] = {
    "_str": VARCHAR,
    "_int": BIGINT,
    "_real": DOUBLE,
    "_bool": BOOLEAN,
    "_date": TIMESTAMP,
    "_strs": f"{VARCHAR}[]",
    "_ints": f"{BIGINT}[]",
    "_reals": f"{DOUBLE}[]",
    "_bools": f"{BOOLEAN}[]",
    "_dates": f"{TIMESTAMP}[]",
}
_CUSTOM_PREFIXES = ("user_", "evt_", "page_")


def declared_type(field: str) -> str | None:
    """The DuckDB type a FullStory field must have, or None when its name does not say (the
    readers then keep it as text)."""
    if field in _KNOWN:
        return _KNOWN[field]
    if field.startswith(_CUSTOM_PREFIXES):
        for suffix, sql_type in _SUFFIXES.items():
            if field.endswith(suffix):
                return sql_type
    return None
