"""The API key never leaves for anywhere but the FullStory API, and never lands in logs (any
level), errors, tracebacks, state or files; presigned links are logged without their signature."""

from __future__ import annotations

import json
import logging
import os
import traceback
from pathlib import Path

import pytest

from fullstory_sandbox import Fault, Sandbox
from fullstory_source.windows import format_time
from pipelines.fullstory_pipeline import main

from .support import API_KEY, DAY1, DAY2, make_pipeline, source


def test_the_key_is_nowhere_after_a_run_with_failures_at_debug_level(
    live_sandbox: Sandbox,
    database: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("SOURCES__FULLSTORY__API_KEY", API_KEY)
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(database))
    monkeypatch.setenv("RUNTIME__LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("SOURCES__FULLSTORY__POLL_INTERVAL", "0.01")
    monkeypatch.setenv("SOURCES__FULLSTORY__BACKOFF_FACTOR", "0.01")
    monkeypatch.setenv("SOURCES__FULLSTORY__MAX_CREATES_PER_MINUTE", "60000")
    caplog.set_level(logging.DEBUG)
    live_sandbox.faults.fail_operations(error_details="boom", segment_id="everyone")
    live_sandbox.faults.add(Fault("download", status=403))  # an expired link: fetched again

    code = main(
        ["-v", "run", "--base-url", live_sandbox.base_url, "--segment", "everyone", "--window", "6h",
         "--start", format_time(DAY1), "--end", format_time(DAY2)]
    )  # fmt: skip
    assert code == 1  # one window failed on purpose

    captured = capsys.readouterr()
    logs = captured.out + captured.err + caplog.text
    assert "GET /download/" in logs or "/download/" in logs  # downloads were logged...
    assert "signature=" not in logs  # ...without their signature
    assert API_KEY not in logs

    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name.endswith(".duckdb") for p in written) and any("pipelines" in p.parts for p in written)
    assert [p for p in written if API_KEY.encode() in p.read_bytes()] == []
    state = make_pipeline(database, "fullstory_pipeline").state
    assert API_KEY not in json.dumps(state, default=str)

    api = [r for r in live_sandbox.requests() if not r.path.startswith("/download/")]
    assert api and all(r.headers.get("Authorization") == f"Basic {API_KEY}" for r in api)
    downloads = live_sandbox.requests(path_prefix="/download/")
    assert downloads and all("Authorization" not in r.headers for r in downloads)


def test_errors_and_tracebacks_do_not_carry_the_key(live_sandbox: Sandbox, database: Path) -> None:
    live_sandbox.faults.fail_operations(error_details="boom")
    with pytest.raises(Exception) as raised:
        make_pipeline(database).run(
            source(
                live_sandbox,
                segment_ids=["everyone"],
                start_date=format_time(DAY1),
                end_date=format_time(DAY2),
            )
        )
    text = "".join(traceback.format_exception(raised.value))
    assert "boom" in text
    assert API_KEY not in text
    assert API_KEY not in repr(raised.value.__dict__)
    assert os.environ.get("SOURCES__FULLSTORY__API_KEY") is None


@pytest.mark.parametrize(
    "key", ["secretpartone\nsecretparttwo", "secretpartone secretparttwo", "secretpartoneé"]
)
def test_a_key_that_cannot_be_a_header_is_refused_before_any_request_and_never_shown(
    live_sandbox: Sandbox,
    database: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    key: str,
) -> None:
    monkeypatch.setenv("SOURCES__FULLSTORY__API_KEY", key)
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(database))
    for command in (["run", "--window", "6h", "--start", format_time(DAY1), "--end", format_time(DAY2)],
                    ["segments"]):  # fmt: skip
        assert main([*command, "--base-url", live_sandbox.base_url]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: the FullStory API key has "), err
        assert "secretpart" not in err[0]
    assert live_sandbox.requests() == []
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert [p for p in written if b"secretpart" in p.read_bytes()] == []
