"""Helpers for the tests: real dlt pipelines into DuckDB files, and comparisons of what they
loaded with the rows the sandbox says a window holds."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dlt
import duckdb
from dlt.common.normalizers.naming.snake_case import NamingConvention

from fullstory_sandbox import Sandbox
from fullstory_source import duckdb_destination, fullstory_source
from fullstory_source.fields import TIMESTAMP, declared_type

API_KEY = "test-key-7f3a9c"
DAY1 = datetime(2026, 10, 1, tzinfo=UTC)
DAY2 = datetime(2026, 10, 2, tzinfo=UTC)
DAY3 = datetime(2026, 10, 3, tzinfo=UTC)

# fast polls and retries: the sandbox answers at once
FAST = {
    "poll_interval": 0.01,
    "poll_max_interval": 0.05,
    "backoff_factor": 0.01,
    "max_creates_per_minute": 60_000,
}

_naming = NamingConvention()


def make_pipeline(database: Path, name: str = "fullstory_test") -> dlt.Pipeline:
    return dlt.pipeline(
        pipeline_name=name,
        destination=duckdb_destination.duckdb(str(database)),
        dataset_name="fullstory",
    )


def source(sb: Sandbox, **overrides: Any) -> Any:
    args: dict[str, Any] = {
        "api_key": API_KEY,
        "base_url": sb.base_url,
        "api_flavor": sb.flavor,
        "window": "6h",
        **FAST,
        **overrides,
    }
    return fullstory_source(**args)


def query(database: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(database), read_only=True) as con:
        return con.execute(sql).fetchall()


def tables(database: Path) -> set[str]:
    if not database.exists():
        return set()
    rows = query(
        database, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'fullstory'"
    )
    return {r[0] for r in rows}


def cursors(pipeline: dlt.Pipeline, resource: str) -> dict[str, str]:
    state = pipeline.state.get("sources", {}).get("fullstory", {}).get("resources", {})
    return dict(state.get(resource, {}).get("cursors", {}))


def canonical(value: Any, sql_type: str | None = None) -> Any:
    """One spelling per value, whatever the export format carried."""
    if value is None or value == "":
        return None  # CSV cannot tell an empty string from a missing value
    if isinstance(value, list):
        element = sql_type[:-2] if sql_type and sql_type.endswith("[]") else None
        return tuple(canonical(v, element) for v in value)
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds")
    if sql_type == TIMESTAMP and isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00")).isoformat(timespec="microseconds")
    if isinstance(value, bool):
        return str(value).lower()
    if sql_type == "DOUBLE" or isinstance(value, float):
        return repr(float(value))
    return str(value)


def expected_multiset(rows: list[dict[str, Any]], extra: dict[str, Any]) -> Counter[str]:
    """`rows`: one window's export, in order. `extra`: the columns the source adds (segment and
    window); events also get their 15-minute `event_bucket` and their position `window_row`."""
    out: Counter[str] = Counter()
    for position, row in enumerate(rows):
        item = {_naming.normalize_identifier(k): canonical(v, declared_type(k)) for k, v in row.items()}
        item.update({k: canonical(v) for k, v in extra.items()})
        if "EventStart" in row:
            start = datetime.fromisoformat(row["EventStart"].replace("Z", "+00:00"))
            item["event_bucket"] = canonical(
                start.replace(minute=start.minute // 15 * 15, second=0, microsecond=0)
            )
            item["window_row"] = canonical(position)
        out[repr(sorted((k, v) for k, v in item.items() if v is not None))] += 1
    return out


def _json_list(value: Any) -> Any:
    """dlt stores list columns as JSON: read them back as lists."""
    if isinstance(value, str) and value.startswith("[") and value.endswith("]"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def loaded_multiset(database: Path, table: str, where: str = "TRUE") -> Counter[str]:
    with duckdb.connect(str(database), read_only=True) as con:
        cursor = con.execute(f"SELECT * FROM fullstory.{table} WHERE {where}")
        names = [d[0] for d in cursor.description]
        out: Counter[str] = Counter()
        for values in cursor.fetchall():
            item = {
                n: canonical(_json_list(v))
                for n, v in zip(names, values, strict=True)
                if not n.startswith("_dlt")
            }
            out[repr(sorted((k, v) for k, v in item.items() if v is not None))] += 1
    return out


@contextmanager
def stub_server(answer: Callable[[str, str], tuple[int, Any]]) -> Iterator[tuple[str, list[str]]]:
    """A tiny local API that answers every request with answer(method, path) as JSON."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _reply(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            seen.append(self.path)
            status, body = answer(self.command, self.path)
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = _reply  # noqa: N815
        do_POST = _reply  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def csv_cell(value: Any) -> str:
    """How a FullStory CSV export spells a value: empty when missing, JSON for lists, true/false."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
