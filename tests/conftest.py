"""Fixtures: a real sandbox server over HTTP, and an isolated dlt data dir for every test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fullstory_sandbox import Sandbox

from .support import API_KEY


@pytest.fixture(autouse=True)
def isolated_dlt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own dlt data dir and runs where no real secrets can be found."""
    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "dlt"))
    monkeypatch.delenv("SOURCES__FULLSTORY__API_KEY", raising=False)
    for name in (
        "DESTINATION__DUCKDB__CREDENTIALS",
        "DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG",
        "FULLSTORY_PIPELINE__DUCKDB_MEMORY_LIMIT",
        "LOAD__RAISE_ON_MAX_RETRIES",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(params=["live", "spec"])
def flavor(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def sandbox(flavor: str, tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(api_key=API_KEY, flavor=flavor, operation_polls=2, workdir=str(tmp_path / "sb")) as sb:
        yield sb


@pytest.fixture
def live_sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    """For tests whose subject does not depend on the API shape."""
    with Sandbox(api_key=API_KEY, flavor="live", operation_polls=2, workdir=str(tmp_path / "sb")) as sb:
        yield sb


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "warehouse.duckdb"


@pytest.fixture
def command_env(monkeypatch: pytest.MonkeyPatch, database: Path) -> Path:
    """How a user configures a scheduled run: environment variables only. Returns the DuckDB
    file the command loads into; subprocesses inherit the same environment."""
    for name, value in {
        "SOURCES__FULLSTORY__API_KEY": API_KEY,
        "DESTINATION__DUCKDB__CREDENTIALS": str(database),
        "SOURCES__FULLSTORY__POLL_INTERVAL": "0.02",
        "SOURCES__FULLSTORY__POLL_MAX_INTERVAL": "0.2",
        "SOURCES__FULLSTORY__BACKOFF_FACTOR": "0.02",
        "SOURCES__FULLSTORY__MAX_CREATES_PER_MINUTE": "60000",
    }.items():
        monkeypatch.setenv(name, value)
    return database
