"""A local FullStory-compatible export API with deterministic data, for tests, demos and benchmarks."""

from .data import DEFAULT_SEGMENTS, events, individuals, select_fields
from .encode import write_export
from .faults import Fault, Faults
from .log import LoggedRequest
from .server import Sandbox

__all__ = [
    "DEFAULT_SEGMENTS",
    "Fault",
    "Faults",
    "LoggedRequest",
    "Sandbox",
    "events",
    "individuals",
    "select_fields",
    "write_export",
]
