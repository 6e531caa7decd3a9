"""One run per pipeline at a time.

Two runs of the same pipeline (a cron schedule that overlaps a slow run) would create every
export twice and collide in dlt's working dir and the DuckDB file. `pipeline_lock` takes an
exclusive lock on `<dlt pipelines dir>/.<pipeline>.lock` for the whole run; a second run fails
at once with one line naming the process that holds it. The operating system drops the lock
when its process ends, however it ends (kill -9 included), so a lock is never left stale.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dlt.common.pipeline import get_dlt_pipelines_dir

from fullstory_source import FullStoryError


class PipelineBusyError(FullStoryError):
    """Another run of the same pipeline is in progress."""


def lock_path(pipeline_name: str) -> Path:
    return Path(get_dlt_pipelines_dir()) / f".{pipeline_name}.lock"


@contextmanager
def pipeline_lock(pipeline_name: str) -> Iterator[None]:
    path = lock_path(pipeline_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise PipelineBusyError(
                f"another run of pipeline '{pipeline_name}' is in progress (pid {holder}, lock {path}); "
                "nothing was done: run again when it has finished"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
