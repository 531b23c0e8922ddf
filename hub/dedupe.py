"""The batch's first stage: a record seen twice is loaded once; two records under one
key are kept for the rules to quarantine.

What arrives twice under one key in one batch is one of three things:
- a re-read: the same record with the same content (a shifted page, the overlap
  window, a QoS 1 redelivery) — one copy is kept, the others are counted as re-read;
- an older version: the platform updated the record while it was being read, so
  it came once with each update time — the latest stands, the older is counted as
  re-read (it was superseded before it could be loaded);
- a conflict: two different records with the same update time (or in a stream
  without one, such as a file snapshot) — both are kept, and the blocking rule
  `source_key_unique` sends every one of them to quarantine. Keeping the last
  would drop a resident without a trace.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa


def drop_rereads(records: pa.Table, key: str, updated: str | None = None) -> tuple[pa.Table, int]:
    """`records` without re-reads and superseded versions, in arrival order; and how many
    rows went. Rows without a key are all kept (the rules judge them)."""
    if records.num_rows < 2:
        return records, 0
    keys = records[key].to_pandas()
    repeated = keys.duplicated(keep=False) & keys.notna()
    if not repeated.any():
        return records, 0
    rows = np.flatnonzero(repeated.to_numpy())
    subset = records.take(pa.array(rows)).to_pandas()
    content = pd.util.hash_pandas_object(subset, index=False).to_numpy()
    frame = pd.DataFrame({"key": subset[key].to_numpy(), "content": content, "row": rows})
    drop = frame.duplicated(["key", "content"], keep="first").to_numpy().copy()
    if updated is not None:
        # Local time strings of one format sort as they compare in time.
        stamp = subset[updated].fillna("").to_numpy(dtype=object)
        latest = pd.Series(stamp).groupby(frame["key"].to_numpy()).transform("max").to_numpy()
        drop |= np.asarray(stamp < latest, dtype=bool)
    if not drop.any():
        return records, 0
    keep = np.ones(records.num_rows, dtype=bool)
    keep[rows[drop]] = False
    return records.filter(pa.array(keep)), int(drop.sum())
