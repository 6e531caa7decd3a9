"""Column types from FullStory field names.

FullStory exports carry no schema. Inferring types from the data goes wrong in ways that split
or corrupt columns (a `_real` whose first values are whole numbers looks like an integer, a
timestamp with milliseconds looks like a string), so the type comes from the name: the known
export fields by name (this catalog), custom variables by their suffix.

Sources for the catalog (docs/fullstory-fields.md has the details): FullStory's "Export Fields"
reference (developer.fullstory.com/server/v1/segments/export-fields/), and the export schema of
FullStory's own warehouse sync tool, hauser (`warehouse/schema.go`: `EventCumulativeLayoutShift
float64`, `EventFirstInputDelay`, `LoadLargestPaintTime`, `PageMaxScrollDepthPercent int64`,
`PageNumEvents`/`PageNumDerivedEvents int32`, `EventTargetSelector` with the legacy
`EventTargetSelectorTok`).
"""

from __future__ import annotations

TIMESTAMP = "TIMESTAMPTZ"
BIGINT = "BIGINT"
DOUBLE = "DOUBLE"
BOOLEAN = "BOOLEAN"
VARCHAR = "VARCHAR"
# JSON text (objects of `_obj`/`_objs` variables); loaded as a text column holding JSON
JSON = "JSON"

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
    # whole numbers: counts, flags (0/1), milliseconds, pixels, seconds, percent
    **dict.fromkeys(
        [
            "EventModFrustrated",
            "EventModDead",
            "EventModError",
            "EventModSuspicious",
            "EventDuration",
            "EventSecondaryDuration",
            "EventFirstInputDelay",
            "EventPageOffset",
            "EventSessionOffset",
            "PageDuration",
            "PageActiveDuration",
            "PageScreenWidth",
            "PageScreenHeight",
            "PageViewportWidth",
            "PageViewportHeight",
            "PageNumEvents",
            "PageNumDerivedEvents",
            "PageNumInfos",
            "PageNumWarnings",
            "PageNumErrors",
            "PageMaxScrollDepthPercent",
            "PageClusterId",
            "LoadDomContentTime",
            "LoadEventTime",
            "LoadFirstPaintTime",
            "LoadLargestPaintTime",
            "ReqStatus",
            "NumSessions",
            "NumPages",
            "NumEvents",
            "TotalSec",
            "ActiveSec",
            "MaxSessionSec",
            "LastSessionNumPages",
            "LastSessionNumEvents",
            "LastSessionSec",
            "LastSessionActiveSec",
        ],
        BIGINT,
    ),
    # fractions: a layout-shift score, averages
    **dict.fromkeys(["EventCumulativeLayoutShift", "AvgSessionSec", "AvgSessionActiveSec"], DOUBLE),
    # text, whatever the values look like (a JSON export writes "128.0", a CSV export 128.0)
    **dict.fromkeys(
        [
            "EventType",
            "EventSubType",
            "EventCustomName",
            "EventTargetText",
            "EventTargetSelector",
            "EventTargetSelectorTok",  # the legacy name of EventTargetSelector
            "EventVarErrorKind",
            "EventVarFields",
            "EventWebSourceFileUrl",
            "EventMobileSourceFile",
            "UserAppKey",
            "UserDisplayName",
            "UserEmail",
            "PageName",
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
            "LastLatLong",
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
    "_obj": JSON,
    "_strs": f"{VARCHAR}[]",
    "_ints": f"{BIGINT}[]",
    "_reals": f"{DOUBLE}[]",
    "_bools": f"{BOOLEAN}[]",
    "_dates": f"{TIMESTAMP}[]",
    "_objs": JSON,  # a list of objects: kept as one JSON text
}
_CUSTOM_PREFIXES = ("user_", "evt_", "page_")


def declared_type(field: str) -> str | None:
    """The DuckDB type a FullStory field must have, or None when its name does not say (the
    readers then take a JSON number as a number and anything else as text; CSV: text)."""
    if field in _KNOWN:
        return _KNOWN[field]
    if is_custom_variable(field):
        for suffix, sql_type in _SUFFIXES.items():
            if field.endswith(suffix):
                return sql_type
    return None


def is_custom_variable(field: str) -> bool:
    """A user/event/page variable the customer named and typed (by its suffix)."""
    return field.startswith(_CUSTOM_PREFIXES)


def known_fields() -> dict[str, str]:
    """The catalog of FullStory's own export fields and their types."""
    return dict(_KNOWN)
