"""The release artifacts: the sdist and wheel build, pass `twine check`, carry the version of
pyproject.toml and CHANGELOG.md, and the wheel works outside the checkout: installed into a new
virtualenv in a temporary directory, its `fullstory-pipeline demo` loads the sandbox into DuckDB
from the installed package, not from this repository. The source also works vendored into a dlt
project (docs/release.md)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

from fullstory_sandbox import Sandbox
from fullstory_source.windows import format_time

from .support import API_KEY, DAY1, DAY2, query

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
        names = archive.namelist()
        top = {name.split("/")[0] for name in names}
        metadata = archive.read(f"fullstory_dlt-{VERSION}.dist-info/METADATA").decode()
        entry_points = archive.read(f"fullstory_dlt-{VERSION}.dist-info/entry_points.txt").decode()
    packages = {"fullstory_source", "fullstory_sandbox", "pipelines", "fullstory_analytics"}
    assert top == packages | {f"fullstory_dlt-{VERSION}.dist-info"}
    # the dbt project ships inside the package (`fullstory-pipeline models`)
    assert {"fullstory_analytics/dbt_project.yml", "fullstory_analytics/models/sessions.sql",
            "fullstory_analytics/profiles/profiles.yml"} <= set(names)  # fmt: skip
    assert "fullstory-pipeline = pipelines.fullstory_pipeline:main" in entry_points
    for extra in ("bigquery", "snowflake", "motherduck", "models", "models-bigquery", "models-snowflake"):
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


VENDORED_PIPELINE = """\
import dlt
import fullstory_source
from fullstory_source import fullstory_source as source

print(fullstory_source.__file__)
destination = dlt.destinations.duckdb("warehouse.duckdb")
pipeline = dlt.pipeline("fullstory", destination=destination, dataset_name="fullstory")
pipeline.run(source())
"""


def test_the_source_vendored_into_a_dlt_project(live_sandbox: Sandbox, tmp_path: Path) -> None:
    """docs/release.md, "Vendoring": `fullstory_source/` copied into a dlt project next to its
    pipeline script, with our .dlt/config.toml, runs from there (not from this checkout)."""
    project = tmp_path / "my_dlt_project"
    shutil.copytree(REPO / "fullstory_source", project / "fullstory_source")
    shutil.copytree(REPO / ".dlt", project / ".dlt", ignore=shutil.ignore_patterns("secrets.toml"))
    (project / "fullstory_pipeline.py").write_text(VENDORED_PIPELINE)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "DLT_DATA_DIR": str(tmp_path / "dlt"),
        "SOURCES__FULLSTORY__API_KEY": API_KEY,
        "SOURCES__FULLSTORY__BASE_URL": live_sandbox.base_url,
        "SOURCES__FULLSTORY__SEGMENT_IDS": '["everyone"]',
        "SOURCES__FULLSTORY__START_DATE": format_time(DAY1),
        "SOURCES__FULLSTORY__END_DATE": format_time(DAY2),
        "SOURCES__FULLSTORY__POLL_INTERVAL": "0.01",
    }
    done = subprocess.run(
        [sys.executable, "fullstory_pipeline.py"], cwd=project, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[0] == str(project / "fullstory_source" / "__init__.py")
    loaded = query(project / "warehouse.duckdb", "SELECT count(*) FROM fullstory.events")[0][0]
    assert loaded == len(live_sandbox.expected_rows("events", "everyone", DAY1, DAY2))


def test_dockerfile_installs_the_wheel_of_what_the_package_holds() -> None:
    """Not a docker build (no daemon here; docs/release.md): the image's build context is the
    package's files, its command is the package's, and no secret or database gets in."""
    dockerfile = (REPO / "Dockerfile").read_text()
    copied = [c.rstrip("/") for c in re.findall(r"^COPY (?!--from)(\S+)", dockerfile, re.M)]
    packages = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    assert sorted(copied) == sorted(["pyproject.toml", *[p.rstrip("*") for p in packages["include"]]])
    allowed = re.findall(r"^!(\S+?)/?$", (REPO / ".dockerignore").read_text(), re.M)
    assert "COPY pyproject.toml README.md ./" in dockerfile  # README.md: pyproject's readme
    assert set(allowed) == {*copied, "README.md"}
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    assert {"*", "**/secrets.toml", "**/*.duckdb"} <= set(ignored)
    assert 'ENTRYPOINT ["fullstory-pipeline"]' in dockerfile
    assert "USER fullstory" in dockerfile
