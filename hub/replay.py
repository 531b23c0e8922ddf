"""Replaying quarantine: after a mapping or rule fix, run the held records again.

Each open entry holding a platform record (`payload_kind = 'source'`) goes back
through the same conform, validate and load steps as a fresh extract, as one
recorded run per source (trigger 'replay'). Records that pass now are loaded and
their entries marked 'replayed'; records that still fail stay open with today's
verdict. Nothing leaves quarantine without being loaded: both happen in one
transaction per batch. The record replayed is the sealed one, opened with the hub's
key (`payload` holds it masked, for people to read).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from base.pii import unseal_payload
from base.settings import load_sources, settings
from connectors.base import Extract, Stream, records_table
from hub.pipeline import Progress, Run, RunSummary, execute
from warehouse.db import Role, connect
from warehouse.migrate import require_current


def replay(
    source: str | None = None,
    rule: str | None = None,
    sources_path: Path | str | None = None,
    *,
    progress: Progress | None = None,
) -> list[RunSummary]:
    """Replay open quarantine entries, optionally of one source and/or one rule.

    Like any run, it needs a migrated warehouse (`hub migrate`)."""
    require_current()
    config = load_sources(sources_path)
    with connect(Role.LOADER) as conn:
        pending = conn.execute(
            "SELECT DISTINCT source_system FROM quality.quarantine WHERE state = 'open'"
            " AND payload_kind = 'source' AND (%(source)s::text IS NULL"
            " OR source_system = %(source)s) AND (%(rule)s::text IS NULL OR rule = %(rule)s)"
            " ORDER BY 1",
            {"source": source, "rule": rule},
        ).fetchall()
    missing = [s for (s,) in pending if s not in config.sources]
    if missing:
        raise KeyError(f"quarantine holds records of {', '.join(missing)}, which the sources "
                       "file does not configure; pass the sources file that does (--config)")
    summaries = []
    for (name,) in pending:
        def body(run: Run) -> None:
            for stream in run.connector.streams:
                conformer = run.open_stream(stream)
                for batch in _held(run.src.name, stream, rule):
                    run.load_batch(stream, conformer, batch, replay=True)

        summaries.append(execute(name, body, sources_path, trigger="replay", progress=progress))
    return summaries


def _held(source: str, stream: Stream, rule: str | None) -> Iterator[Extract]:
    """The stream's open entries as platform records, in batches, oldest first."""
    after = 0
    size = settings().batch_rows
    while True:
        with connect(Role.LOADER) as conn:
            rows = conn.execute(
                "SELECT quarantine_id, payload_sealed, payload FROM quality.quarantine"
                " WHERE state = 'open' AND payload_kind = 'source' AND source_system = %s"
                " AND stream = %s AND (%s::text IS NULL OR rule = %s) AND quarantine_id > %s"
                " ORDER BY quarantine_id LIMIT %s",
                (source, stream.name, rule, rule, after, size),
            ).fetchall()
        if not rows:
            return
        after = rows[-1][0]
        yield Extract(records_table(stream, [_record(sealed, payload)
                                             for _, sealed, payload in rows]), cursor={})


def _record(sealed: bytes | None, payload: Any) -> Any:
    """The platform's record of a quarantine entry: its sealed payload opened. An entry
    written before payloads were sealed (none is left once `hub migrate` has run) still
    holds its record in `payload`."""
    return payload if sealed is None else unseal_payload(sealed)
