"""One audit row per (job, kind): FullStory's `total_records` against the rows actually loaded.

A mismatch is logged as a warning and kept in `batch_import_audit` with `matches = false`, so an
audit is one query."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .batch_rows import count
from .batch_tables import AUDIT_TABLE

logger = logging.getLogger(__name__)


@dataclass
class Audit:
    job_id: str
    kind: str  # "imports" or "errors"
    total_records: int | None = None
    loaded: int = 0
    pages: int = 0
    token_repeated: bool = False

    def note_total(self, total: Any) -> None:
        """The first page's `total_records` (a string in the API) is the one compared."""
        if self.total_records is not None or total in (None, ""):
            return
        self.total_records = count(total)
        if self.total_records is None:
            logger.warning(
                "batch import job %r: total_records %r of %s is not a number", self.job_id, total, self.kind
            )

    def row(self, job_status: str | None, status_count: int | None) -> dict[str, Any]:
        matches = None if self.total_records is None else self.loaded == self.total_records
        if matches is False:
            logger.warning(
                "batch import job %r: loaded %d %s but FullStory's total_records says %d%s; "
                "recorded in table %s",
                self.job_id,
                self.loaded,
                "imported events" if self.kind == "imports" else "errors",
                self.total_records,
                " (the page token repeated, so paging stopped early)" if self.token_repeated else "",
                AUDIT_TABLE,
            )
        return {
            "job_id": self.job_id,
            "kind": self.kind,
            "job_status": job_status,
            "status_count": status_count,
            "total_records": self.total_records,
            "loaded": self.loaded,
            "pages": self.pages,
            "token_repeated": self.token_repeated,
            "matches": matches,
            "checked_at": datetime.now(UTC),
        }
