"""The column that makes window replacement exact for events.

Events have no unique key, so a re-exported window must replace exactly the rows of that window.
Keying the merge on the window itself breaks as soon as a window of another length covers the
same time (a backfill with 1d windows over data loaded in 1h windows, a changed `window`
setting): the old rows carry other window bounds and would stay, duplicated. So every event row
carries `event_bucket`, the 15-minute bucket of its `EventStart`, and events merge
(delete-insert) on (segment_id, event_bucket). Every window is a whole number of buckets, so
loading a window deletes exactly the buckets it holds, whatever window length loaded them before.
The merge keys of every export type are in registry.py.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from .windows import QUARTER_HOUR

BUCKET = QUARTER_HOUR  # every window is a whole number of these
BUCKET_COLUMN = "event_bucket"
EVENT_TIME = "EventStart"


def with_bucket(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Append `event_bucket` (EventStart floored to 15 minutes) to a batch of events."""
    minutes = int(BUCKET.total_seconds() // 60)
    bucket = pc.floor_temporal(batch.column(EVENT_TIME), multiple=minutes, unit="minute")
    field = pa.field(BUCKET_COLUMN, bucket.type, nullable=False)
    return batch.append_column(field, bucket)
