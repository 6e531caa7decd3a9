"""The release artifacts: the sdist and wheel build, pass `twine check`, carry the version of
pyproject.toml and CHANGELOG.md, and the wheel works outside the checkout: installed into a new
virtualenv in a temporary directory, its `fullstory-pipeline demo` loads the sandbox into DuckDB
from the installed package, not from this repository."""

from __future__ import annotations

import re
import subprocess
import sys
import sysconfig
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

from .support import query

REPO = Path(__file__).resolve().parents[1]
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the release workflow builds: an sdist, and the wheel built from it."""
    out = tmp_path_factory.mktemp("dist")
    # no isolation: setuptools comes from the dev venv, so the build needs no network
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(REPO)],
        check=True,
        capture_output=True,
    )
    return out


def test_sdist_and_wheel_pass_twine_check(dist: Path) -> None:
    names = sorted(p.name for p in dist.iterdir())
    assert names == [f"fullstory_dlt-{VERSION}-py3-none-any.whl", f"fullstory_dlt-{VERSION}.tar.gz"]
    done = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, dist.iterdir())],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_wheel_holds_the_packages_and_nothing_else(dist: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        top = {name.split("/")[0] for name in archive.namelist()}
        metadata = archive.read(f"fullstory_dlt-{VERSION}.dist-info/METADATA").decode()
        entry_points = archive.read(f"fullstory_dlt-{VERSION}.dist-info/entry_points.txt").decode()
    assert top == {"fullstory_source", "fullstory_sandbox", "pipelines", f"fullstory_dlt-{VERSION}.dist-info"}
    assert "fullstory-pipeline = pipelines.fullstory_pipeline:main" in entry_points
    for extra in ("bigquery", "snowflake", "motherduck"):
        assert f"Provides-Extra: {extra}" in metadata


def test_changelog_has_the_version() -> None:
    """Dated when released (the release workflow refuses a tag whose entry is not dated)."""
    changelog = (REPO / "CHANGELOG.md").read_text()
    heading = rf"^## \[{re.escape(VERSION)}\] - (\d{{4}}-\d{{2}}-\d{{2}}|Unreleased)$"
    assert re.search(heading, changelog, re.M)


def test_the_installed_wheel_runs_outside_the_checkout(dist: Path, tmp_path: Path) -> None:
    """A new venv in a temp dir gets the wheel; its dependencies come from the dev venv's
    site-packages as a plain path (so this needs no network, and the checkout's editable install
    is not visible: its finder is not loaded from an added path). Then the installed command
    runs from another directory."""
    (wheel,) = dist.glob("*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)  # ensurepip: offline
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", str(wheel)],
        check=True,
        capture_output=True,
    )
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (site / "dev-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run_dir = tmp_path / "elsewhere"
    run_dir.mkdir()

    where = subprocess.run(
        [str(python), "-c", "import fullstory_source, pipelines; print(fullstory_source.__file__)"],
        cwd=run_dir,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert where == str(site / "fullstory_source" / "__init__.py")

    database = run_dir / "demo.duckdb"
    done = subprocess.run(
        [str(env_dir / "bin" / "fullstory-pipeline"), "demo", "--output", str(database)],
        cwd=run_dir,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DLT_DATA_DIR": str(tmp_path / "dlt")},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert query(database, "SELECT count(*) FROM fullstory.events")[0][0] > 0
    assert not (REPO / "demo.duckdb").exists()
