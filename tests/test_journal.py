"""The operations journal: what a crashed run leaves for the next one to resume."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fullstory_source.exports import ExportJob
from fullstory_source.journal import JOURNAL_FILE, OperationJournal
from fullstory_source.windows import Window, format_time

DAY1 = datetime(2026, 10, 1, tzinfo=UTC)
JOB = ExportJob("everyone", "events", Window(DAY1, DAY1 + timedelta(hours=6)))
OTHER = ExportJob("everyone", "individuals", JOB.window)


def test_a_recorded_operation_is_found_by_the_next_run(tmp_path: Path) -> None:
    OperationJournal(tmp_path, "req").record(JOB, "op-1")
    again = OperationJournal(tmp_path, "req")
    assert again.get(JOB) == "op-1"
    assert again.get(OTHER) is None


def test_forgotten_operations_are_gone_from_the_file(tmp_path: Path) -> None:
    journal = OperationJournal(tmp_path, "req")
    journal.record(JOB, "op-1")
    journal.record(OTHER, "op-2")
    journal.forget(JOB)
    again = OperationJournal(tmp_path, "req")
    assert (again.get(JOB), again.get(OTHER)) == (None, "op-2")


def test_an_operation_is_resumed_only_for_the_same_request(tmp_path: Path) -> None:
    OperationJournal(tmp_path, '{"format": "json"}').record(JOB, "op-1")
    assert OperationJournal(tmp_path, '{"format": "csv"}').get(JOB) is None


def test_old_operations_are_not_resumed(tmp_path: Path) -> None:
    journal = OperationJournal(tmp_path, "req")
    journal.record(JOB, "op-1")
    data = json.loads((tmp_path / JOURNAL_FILE).read_text())
    for entry in data["operations"].values():
        entry["created_at"] = format_time(datetime.now(UTC) - timedelta(hours=21))
    (tmp_path / JOURNAL_FILE).write_text(json.dumps(data))
    assert OperationJournal(tmp_path, "req").get(JOB) is None


def test_an_unreadable_journal_is_ignored(tmp_path: Path) -> None:
    (tmp_path / JOURNAL_FILE).write_text("{not json")
    journal = OperationJournal(tmp_path, "req")
    assert journal.get(JOB) is None
    journal.record(JOB, "op-9")  # and replaced by a good one
    assert OperationJournal(tmp_path, "req").get(JOB) == "op-9"


def test_without_a_directory_nothing_is_written(tmp_path: Path) -> None:
    journal = OperationJournal(None, "req")
    journal.record(JOB, "op-1")
    assert journal.get(JOB) == "op-1"
    assert list(tmp_path.iterdir()) == []
