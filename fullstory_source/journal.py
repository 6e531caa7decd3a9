"""A durable record of export operations in flight, so a crashed run resumes them.

dlt state is committed only together with a load, so it cannot remember an export created a
second before the process was killed. This journal can: every created operation is written to a
small JSON file (atomically, at once) and removed once the extract holding its window's rows
is committed (the next run sees that in dlt state). The next
run looks its windows up here first and resumes polling or downloading the same operation
instead of asking FullStory to build the export again.

It lives in the pipeline's working directory. On a fresh machine (a CI runner with an empty
working dir) it is empty: interrupted exports are then created again, which costs FullStory
time but never rows (windows are replaced exactly). Point `operations_journal_dir` at storage
that outlives the runner to keep it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .exports import ExportJob
from .windows import format_time, parse_time

logger = logging.getLogger(__name__)

JOURNAL_FILE = "fullstory_operations.json"
# FullStory keeps an export's results for about a day; older operations are not worth resuming
MAX_AGE = timedelta(hours=20)


class OperationJournal:
    def __init__(self, directory: Path | None, fingerprint: str) -> None:
        """`fingerprint` names everything besides the job that shapes an export (host, API
        shape, format, request fields): an operation is only resumed for the same request."""
        self.path = directory / JOURNAL_FILE if directory else None
        self.fingerprint = fingerprint
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, Any]] = self._read()

    def key(self, job: ExportJob) -> str:
        text = "|".join(
            [
                self.fingerprint,
                job.segment_id,
                job.export_type,
                format_time(job.window.start),
                format_time(job.window.end),
            ]
        )
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def get(self, job: ExportJob) -> str | None:
        with self._lock:
            entry = self._entries.get(self.key(job))
        return str(entry["operation_id"]) if entry else None

    def record(self, job: ExportJob, operation_id: str) -> None:
        with self._lock:
            self._entries[self.key(job)] = {
                "operation_id": operation_id,
                "created_at": format_time(datetime.now(UTC)),
                "job": str(job),
                "export_type": job.export_type,
            }
            self._write()

    def mark_extracted(self, job: ExportJob, extract_id: str) -> None:
        """The window's rows are in extract `extract_id`, not yet committed: until that extract
        is known to be committed the entry stays, so a run killed before the commit resumes
        the same operation instead of creating the export again."""
        with self._lock:
            entry = self._entries.get(self.key(job))
            if entry is not None:
                entry["extracted_in"] = extract_id
                self._write()

    def forget_committed(self, export_type: str, extract_id: str | None) -> None:
        """Drop the entries of `export_type` whose windows extract `extract_id` extracted: it was
        committed (its id is in the committed resource state), so they are done."""
        if extract_id is None:
            return
        with self._lock:
            done = [
                key
                for key, entry in self._entries.items()
                if entry.get("extracted_in") == extract_id and entry.get("export_type") == export_type
            ]
            for key in done:
                del self._entries[key]
            if done:
                self._write()

    def forget(self, job: ExportJob) -> None:
        with self._lock:
            if self._entries.pop(self.key(job), None) is not None:
                self._write()

    def _read(self) -> dict[str, dict[str, Any]]:
        if self.path is None or not self.path.exists():
            return {}
        try:
            entries = json.loads(self.path.read_text())["operations"]
        except (ValueError, KeyError, TypeError) as error:
            logger.warning("ignoring unreadable operations journal %s: %s", self.path, error)
            return {}
        oldest = datetime.now(UTC) - MAX_AGE
        return {k: v for k, v in entries.items() if parse_time(v["created_at"], "created_at") >= oldest}

    def _write(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # write aside, flush to disk, then rename: a crash leaves the old file or the new one
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".journal-")
        with os.fdopen(handle, "w") as out:
            json.dump({"version": 1, "operations": self._entries}, out, indent=1)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.path)
