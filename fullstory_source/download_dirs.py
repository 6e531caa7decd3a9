"""The directories downloads wait in, one per run, and the clean-up of those a run left behind.

A run downloads into `<download_dir>/run-<pid>-<random>` and removes it when its last export
resource finishes, whether it succeeded or failed. A run that was killed (kill -9, a full
disk that killed the process, a machine restart) cannot; so every run first removes the run
directories whose process is gone. Directories of runs still alive, on this machine, are left
alone. Directories without a process id (older versions) are removed after a day.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from pathlib import Path

logger = logging.getLogger(__name__)

PREFIX = "run-"
UNOWNED_MAX_AGE = 24 * 3600.0


def new_run_dir(base: Path) -> Path:
    """A directory name for this run under `base` (created by the first download), after
    removing what dead runs left there."""
    remove_abandoned(base)
    return base / f"{PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}"


def remove_abandoned(base: Path) -> list[Path]:
    if not base.is_dir():
        return []
    removed = []
    for directory in base.glob(f"{PREFIX}*"):
        if directory.is_dir() and _abandoned(directory):
            shutil.rmtree(directory, ignore_errors=True)
            removed.append(directory)
    if removed:
        logger.info("removed %d download directories that killed runs left in %s", len(removed), base)
    return removed


def _abandoned(directory: Path) -> bool:
    owner = directory.name[len(PREFIX) :].split("-", 1)[0]
    if not owner.isdigit():
        try:
            return time.time() - directory.stat().st_mtime > UNOWNED_MAX_AGE
        except OSError:
            return False
    try:
        os.kill(int(owner), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, someone else's
    return False
