"""The measured cases. Each one runs in a fresh child process (see export_load.py), so that its
wall time and peak RSS are its own.

- pipeline: this project's source, the whole path: create -> poll -> download over HTTP from the
  sandbox -> parse -> a real dlt pipeline into a DuckDB file (window replace, as in production);
- duckdb: DuckDB alone, `CREATE TABLE AS SELECT * FROM read_json('<same file>')` (`read_csv` for
  CSV), no HTTP, no dlt, DuckDB's defaults; with `sample_size=-1` when DuckDB refuses the file
  without it (the late-key variant);
- duckdb_typed: the same with every column's type given up front (one pass, no inference);
- duckdb_exact: this project's own typed query (readers.exact_select: every value converted as
  the pipeline converts it, the window's columns added) loaded by DuckDB in one statement, with
  the keys given, no HTTP, no dlt: the floor of a loader that converts as this project does;
- naive: the resource a user would write first: the same HTTP calls with requests, then the stdlib
  parser yielding one dict per row into dlt with its default settings.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

CASES = ("pipeline", "duckdb", "duckdb_typed", "duckdb_exact", "naive")  # and "profile" (--profile)
REFERENCES = ("duckdb", "duckdb_typed", "duckdb_exact")  # DuckDB alone, run side by side with the pipeline
API_KEY = "bench-key"
START = "2026-10-01T00:00:00Z"
END = "2026-10-02T00:00:00Z"
# DuckDB's names of the types fields.py declares, as dlt creates them in a DuckDB destination
DUCKDB_TYPES = {
    "TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE",
    "BIGINT": "BIGINT",
    "DOUBLE": "DOUBLE",
    "BOOLEAN": "BOOLEAN",
    "VARCHAR": "VARCHAR",
}


def bench_source_args(spec: dict[str, Any], work: Path) -> dict[str, Any]:
    """The source as a benchmark case runs it: one segment, events, one day in one window
    (with the export's `fields` request for the early-keys variant)."""
    fields = {"fields": spec["fields"]} if spec.get("fields") else {}
    return {
        **fields,
        "api_key": API_KEY,
        "base_url": spec["base_url"],
        "api_flavor": "live",
        "segment_ids": [spec["segment"]],
        "export_types": ["events"],
        "export_format": spec["format"],
        "start_date": START,
        "end_date": END,
        "window": "1d",
        "poll_interval": 0.01,
        "poll_max_interval": 0.05,
        "download_dir": str(work / "downloads"),
    }


def bench_source(spec: dict[str, Any], work: Path) -> Any:
    from fullstory_source import fullstory_source  # imported late, like the cases that use it

    return fullstory_source(**bench_source_args(spec, work))


def bench_pipeline(name: str, database: Path, work: Path) -> Any:
    """A dlt pipeline into a DuckDB file, with its working dir inside the case's scratch dir."""
    import dlt

    from fullstory_source import duckdb_destination

    return dlt.pipeline(
        pipeline_name=name,
        destination=duckdb_destination.duckdb(str(database)),  # the command's DuckDB destination
        dataset_name="fullstory",
        pipelines_dir=str(work / "pipelines"),
    )


def step_seconds(pipeline: Any) -> dict[str, float]:
    """Seconds of each dlt step (extract, normalize, load) of the pipeline's last run."""
    steps = pipeline.last_trace.steps
    return {step.step: (step.finished_at - step.started_at).total_seconds() for step in steps}


def peak_rss_mb() -> float:
    """This process's peak resident set size (VmHWM), in MB."""
    return _status_mb("VmHWM:")


def rss_mb() -> float:
    """This process's resident set size now (VmRSS), in MB."""
    return _status_mb("VmRSS:")


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return 0.0


def reset_peak_rss() -> bool:
    """Restart VmHWM from the current RSS (Linux: clear_refs 5), to see the peak of one stage."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def run(spec: dict[str, Any]) -> dict[str, Any]:
    case = spec["case"]
    if case == "pipeline":
        return run_pipeline(spec)
    if case == "profile":
        return run_profile(spec)
    if case == "duckdb":
        return run_duckdb(spec)
    if case == "duckdb_typed":
        return run_duckdb_typed(spec)
    if case == "duckdb_exact":
        return run_duckdb_exact(spec)
    if case == "naive":
        return run_naive(spec)
    raise ValueError(f"unknown case {case!r}")


# -- pipeline -------------------------------------------------------------------------------------


def run_pipeline(spec: dict[str, Any]) -> dict[str, Any]:

    from pipelines.fullstory_pipeline import run_pipeline as run_command

    work = Path(spec["workdir"])
    database = work / "pipeline.duckdb"
    pipeline = bench_pipeline("fullstory_bench", database, work)
    started = time.perf_counter()
    # what `fullstory-pipeline run` does, its DuckDB memory cap included
    run_command(pipeline, interactive=False, **bench_source_args(spec, work))
    seconds = time.perf_counter() - started
    steps = step_seconds(pipeline)
    import duckdb

    with duckdb.connect(str(database), read_only=True) as con:
        rows = con.execute("SELECT count(*) FROM fullstory.events").fetchone()[0]
        types = dict(
            con.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'fullstory' AND table_name = 'events'"
            ).fetchall()
        )
    return {"rows": rows, "seconds": seconds, "steps": steps, "types": types}


# -- where the pipeline's time goes ----------------------------------------------------------------


def run_profile(spec: dict[str, Any]) -> dict[str, Any]:
    """The pipeline's stages one by one, each with its time and its own peak RSS: download
    (create, poll, HTTP, gzip check), gunzip alone, the JSON key scan alone, the exact parse
    (read_export: scan, then typed read), the read ahead as the pipeline does it (scan beside the
    typed read, into an Arrow IPC file), then the real source through dlt's extract, normalize
    and load steps called separately (extract repeats download and read ahead; extract minus
    both is dlt's writing of the batches)."""
    import zlib
    from contextlib import contextmanager

    from fullstory_source import readers
    from fullstory_source.client import FullStoryClient, download_session
    from fullstory_source.config import Polling
    from fullstory_source.events import ignore
    from fullstory_source.exports import ExportApi, ExportJob
    from fullstory_source.journal import OperationJournal
    from fullstory_source.key_scan import JSON_LAYOUTS, json_keys
    from fullstory_source.lifecycle import ExportServices, export_window
    from fullstory_source.read_ahead import read_ahead
    from fullstory_source.readers import read_export
    from fullstory_source.registry import LIVE
    from fullstory_source.scheduler import TokenBucket
    from fullstory_source.windows import Window, parse_time
    from pipelines.duckdb_memory import duckdb_memory

    work = Path(spec["workdir"])
    stages: dict[str, dict[str, float]] = {}

    @contextmanager
    def stage(name: str) -> Any:
        reset_peak_rss()
        started = time.perf_counter()
        yield
        stages[name] = {
            "seconds": time.perf_counter() - started,
            "peak_rss_mb": peak_rss_mb(),
            "rss_after_mb": rss_mb(),
        }

    import_rss = peak_rss_mb()
    readers.prefer_system_allocator()  # as the command does
    api = ExportApi(
        FullStoryClient(API_KEY, spec["base_url"]),
        download_session(60.0, 5, 1.0),
        LIVE,
        spec["format"],
        work / "profile",
    )
    services = ExportServices(
        api, OperationJournal(None, "bench"), ignore, TokenBucket(60, 8), Polling(0.01, 0.05), 3
    )
    window = Window(parse_time(START, "start"), parse_time(END, "end"))
    with stage("download"):
        export = export_window(ExportJob(spec["segment"], "events", window), services)
    with stage("gunzip (zlib, 1 thread)"):
        inflater = zlib.decompressobj(wbits=31)
        with export.path.open("rb") as raw:
            while chunk := raw.read(1 << 20):
                inflater.decompress(chunk)
    if spec["format"] in JSON_LAYOUTS:
        with stage("key scan alone (JSON)"):
            import duckdb

            config = {"threads": readers.KEY_SCAN_THREADS, "memory_limit": readers.MEMORY_LIMIT}
            with duckdb.connect(config=config) as con:
                json_keys(con, readers._literal(str(export.path)), JSON_LAYOUTS[spec["format"]])
    rows = 0
    constants = {"segment_id": spec["segment"], "window_start": window.start, "window_end": window.end}
    with stage("parse, scan then typed read (read_export)"):
        for batch in read_export(export.path, spec["format"], constants):
            rows += batch.num_rows
    with stage("read ahead, scan beside typed read, to IPC (read_ahead)"):
        read_ahead(
            read_export,
            export.path,
            spec["format"],
            constants,
            work / "ahead.arrow",
            what="bench",
            required=(),
        )
    (work / "ahead.arrow").unlink(missing_ok=True)
    export.path.unlink()

    pipeline = bench_pipeline("fullstory_profile", work / "profile.duckdb", work)
    source = bench_source(spec, work)
    with duckdb_memory(pipeline).applied():  # the command's cap on DuckDB, as in the pipeline case
        with stage("dlt extract"):
            pipeline.extract(source)
        if spec.get("release_after_extract"):
            with stage("release_memory()"):
                readers.release_memory()
        with stage("dlt normalize"):
            pipeline.normalize()
        with stage("dlt load"):
            pipeline.load()
    writing = stages["dlt extract"]["seconds"] - stages["download"]["seconds"]
    writing -= stages["read ahead, scan beside typed read, to IPC (read_ahead)"]["seconds"]
    stages["(extract - download - read ahead)"] = {
        "seconds": writing,
        "peak_rss_mb": 0.0,
        "rss_after_mb": 0.0,
    }
    return {
        "rows": rows,
        "seconds": sum(stages[f"dlt {s}"]["seconds"] for s in ("extract", "normalize", "load")),
        "import_rss_mb": import_rss,
        "stages": stages,
    }


# -- DuckDB alone ---------------------------------------------------------------------------------


def run_duckdb(spec: dict[str, Any]) -> dict[str, Any]:
    """`CREATE TABLE AS SELECT * FROM read_json('<file>')` (read_csv for CSV), as DuckDB users
    write it. When DuckDB refuses the file (its sampled schema misses a key that first appears
    later: "has unknown key ..."), the error is recorded and the reference becomes the read that
    loads the whole file, `sample_size=-1` (DuckDB infers the schema from every row)."""
    import duckdb

    path, export_format = spec["file"], spec["format"]
    reader = "read_csv" if export_format == "csv" else "read_json"
    attempts = [f"{reader}('{path}')", f"{reader}('{path}', sample_size=-1)"]
    database = Path(spec["workdir"]) / "reference.duckdb"
    refused = None
    for source in attempts:
        database.unlink(missing_ok=True)
        started = time.perf_counter()
        try:
            with duckdb.connect(str(database)) as con:
                con.execute(f"CREATE TABLE events AS SELECT * FROM {source}")
                seconds = time.perf_counter() - started
                rows = con.execute("SELECT count(*) FROM events").fetchone()[0]
        except duckdb.Error as error:
            refused = str(error).splitlines()[0].replace(path, "<file>")[:300]
            continue
        return {"rows": rows, "seconds": seconds, "sql": source.replace(path, "<file>"), "refused": refused}
    raise RuntimeError(f"DuckDB could not read {path}: {refused}")


def run_duckdb_typed(spec: dict[str, Any]) -> dict[str, Any]:
    """DuckDB told every column and its type up front (`spec["types"]`: the exact types this
    pipeline loads): one pass, no inference. DuckDB cannot do this without knowing the file's
    keys first; it is the ceiling of any loader that parses each row once."""
    import duckdb

    path, export_format = spec["file"], spec["format"]
    types = spec["types"]
    if export_format == "csv":
        types = {key: "VARCHAR" if sql_type.endswith("[]") else sql_type for key, sql_type in types.items()}
    struct = "{" + ", ".join(f"'{key}': '{sql_type}'" for key, sql_type in types.items()) + "}"
    if export_format == "csv":
        source = f"read_csv('{path}', header=true, types={struct})"
    else:
        layout = {"json": "array", "ndjson": "newline_delimited"}[export_format]
        source = f"read_json('{path}', format='{layout}', records=true, columns={struct})"
    database = Path(spec["workdir"]) / "reference.duckdb"
    started = time.perf_counter()
    with duckdb.connect(str(database)) as con:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"CREATE TABLE events AS SELECT * FROM {source}")
        seconds = time.perf_counter() - started
        rows = con.execute("SELECT count(*) FROM events").fetchone()[0]
    return {"rows": rows, "seconds": seconds}


def run_duckdb_exact(spec: dict[str, Any]) -> dict[str, Any]:
    """The pipeline's exact typed read and DuckDB's write in one `CREATE TABLE AS`, on both cores
    and uncapped, as the duckdb case runs: what is left when the download, the key scan, the
    Arrow hand-over and dlt's load file are taken away (`spec["types"]` names the keys)."""
    import duckdb

    from fullstory_source.readers import exact_select
    from fullstory_source.windows import parse_time

    path, export_format = Path(spec["file"]), spec["format"]
    window = {"window_start": parse_time(START, "start"), "window_end": parse_time(END, "end")}
    constants = {"segment_id": spec["segment"], **window}
    keys = None if export_format == "csv" else list(spec["types"])
    database = Path(spec["workdir"]) / "reference.duckdb"
    started = time.perf_counter()
    with duckdb.connect(str(database)) as con:
        con.execute("SET TimeZone = 'UTC'")
        query = exact_select(con, path, export_format, constants, keys)
        if query is None:
            raise RuntimeError(f"{path} has no rows")
        con.execute(f"SET threads = {os.cpu_count() or 1}")
        con.execute(f"CREATE TABLE events AS {query}")
        seconds = time.perf_counter() - started
        rows = con.execute("SELECT count(*) FROM events").fetchone()[0]
    return {"rows": rows, "seconds": seconds}


# -- naive ----------------------------------------------------------------------------------------


def _naive_download(
    base_url: str, segment: str, export_format: str, target: Path, fields: list[str] | None = None
) -> Path:
    """create -> poll -> link -> download, the way the FullStory docs show it."""
    import requests

    headers = {"Authorization": f"Basic {API_KEY}"}
    body = {
        "segmentId": segment,
        "type": "TYPE_EVENT",
        "format": {"json": "FORMAT_JSON", "ndjson": "FORMAT_NDJSON", "csv": "FORMAT_CSV"}[export_format],
        "timeRange": {"start": START, "end": END},
        **({"fields": fields} if fields else {}),
    }
    created = requests.post(f"{base_url}/segments/v1/exports", json=body, headers=headers, timeout=60)
    created.raise_for_status()
    operation_id = created.json()["operationId"]
    while True:
        operation = requests.get(
            f"{base_url}/operations/v1/{quote(operation_id, safe='')}", headers=headers, timeout=60
        )
        operation.raise_for_status()
        if operation.json()["state"] == "COMPLETED":
            break
        time.sleep(0.01)
    export_id = operation.json()["results"]["searchExportId"]
    results = requests.get(
        f"{base_url}/search/v1/exports/{quote(export_id, safe='')}/results", headers=headers, timeout=60
    )
    results.raise_for_status()
    with requests.get(results.json()["location"], stream=True, timeout=60) as download:
        download.raise_for_status()
        with target.open("wb") as out:
            shutil.copyfileobj(download.raw, out)
    return target


def run_naive(spec: dict[str, Any]) -> dict[str, Any]:
    import dlt

    work = Path(spec["workdir"])
    export_format = spec["format"]

    @dlt.resource(name="events", write_disposition="append")
    def events() -> Any:
        path = _naive_download(
            spec["base_url"],
            spec["segment"],
            export_format,
            work / f"export.{export_format}.gz",
            spec.get("fields"),
        )
        with gzip.open(path, "rt", encoding="utf-8", newline="") as text:
            if export_format == "json":
                yield from json.load(text)
            elif export_format == "ndjson":
                for line in text:
                    yield json.loads(line)
            else:
                yield from csv.DictReader(text)
        path.unlink()

    database = work / "naive.duckdb"
    pipeline = bench_pipeline("fullstory_naive", database, work)
    started = time.perf_counter()
    pipeline.run(events())
    seconds = time.perf_counter() - started
    steps = step_seconds(pipeline)
    import duckdb

    with duckdb.connect(str(database), read_only=True) as con:
        rows = con.execute("SELECT count(*) FROM fullstory.events").fetchone()[0]
    return {"rows": rows, "seconds": seconds, "steps": steps}


def child_main(spec_json: str) -> int:
    spec = json.loads(spec_json)
    result = run(spec)
    # the profile restarts VmHWM at each stage (reset_peak_rss): its peak is its stages' highest
    stage_peaks = [stage["peak_rss_mb"] for stage in result.get("stages", {}).values()]
    result["vmhwm_mb"] = max([peak_rss_mb(), *stage_peaks])
    out = io.StringIO()
    json.dump(result, out)
    os.write(1, b"\nBENCH_RESULT " + out.getvalue().encode() + b"\n")
    return 0
