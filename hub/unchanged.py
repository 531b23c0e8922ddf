"""A re-sent snapshot's unchanged records, told before they are conformed.

A city's daily snapshots (residents, houses, organizations) are nearly all the
records of the day before. Conforming, validating and merging them again only finds
that out at the end. Each snapshot record loaded leaves a digest of itself as the
platform sent it (warehouse.record_digest); a record arriving with the same key and
digest, on the same *basis*, would conform to the very row the base holds, and is
counted loaded and unchanged without going through the stages.

The basis is everything besides the record that decides its row: the code that
conforms and checks it, the source's settings and the city's, the key of the keyed
hashes, and the reference data it is mapped and judged against (divisions, grids,
the conformer's lookups). When any of them changes, every record is taken through
the pipeline again once, and leaves a digest on the new basis.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import fields
from functools import cache
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.compute as pc

from base.pii import keyed_hash
from conform.base import Conformer
from connectors.base import Stream
from connectors.files import row_hashes

# The packages whose code turns a platform record into checked model rows.
BASIS_PACKAGES = ("base", "schemas", "conform", "quality")
ROOT = Path(__file__).resolve().parent.parent

# The reference data a record is mapped and judged against, as it stands.
REFERENCE_DIGEST = """
SELECT (SELECT md5(coalesce(string_agg(concat_ws('|', code, level, retired_on, replaced_by,
                                                  valid_from), ',' ORDER BY code), ''))
          FROM core.division WHERE valid_to IS NULL),
       (SELECT md5(coalesce(string_agg(concat_ws('|', grid_code, valid_from), ','
                                       ORDER BY grid_code, valid_from), ''))
          FROM core.grid WHERE valid_to IS NULL)
"""


@cache
def code_digest() -> bytes:
    """A digest of the conform and rule code (and its data files) this process runs."""
    h = hashlib.sha256()
    for package in BASIS_PACKAGES:
        for path in sorted((ROOT / package).rglob("*")):
            if path.suffix in {".py", ".yaml", ".yml", ".csv", ".json"} and path.is_file():
                h.update(str(path.relative_to(ROOT)).encode())
                h.update(path.read_bytes())
    return h.digest()


def basis(conn: psycopg.Connection, conformer: Conformer) -> int:
    """The basis a stream's records are conformed and checked on now, as 64 bits."""
    h = hashlib.sha256(code_digest())
    h.update(conformer.settings.model_dump_json().encode())
    h.update(conformer.city.model_dump_json().encode())
    h.update(keyed_hash("record digest basis").encode())
    row = conn.execute(REFERENCE_DIGEST).fetchone()
    h.update(repr(row).encode())
    for lookup in fields(conformer.lookups):
        table = getattr(conformer.lookups, lookup.name)
        h.update(lookup.name.encode())
        if table is not None:
            h.update(_table_bytes(table))
    return int.from_bytes(h.digest()[:8], "big", signed=True)


def _table_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def record_digests(raw: pa.Table, stream: Stream) -> pa.Array:
    """Each record's 64-bit digest over the stream's fields, as sent (int64 bits)."""
    names = [f for f in stream.fields if f in raw.column_names]
    return row_hashes(raw, names).view(pa.int64())


def skippable(unchanged: pa.Array, keys: pa.Array | pa.ChunkedArray,
              conflicting: Mapping[str, int]) -> pa.Array:
    """Records to skip: unchanged, with a key, and not one of the keys the snapshot
    holds twice (those go to quarantine together, whatever the digests say)."""
    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks()
    keys = keys.cast(pa.string())
    mask = pc.and_(unchanged, pc.fill_null(pc.not_equal(keys, ""), False))
    if conflicting:
        held_twice = pc.is_in(keys, value_set=pa.array(sorted(conflicting), pa.string()))
        mask = pc.and_(mask, pc.invert(held_twice))
    return mask


def held_digests(keys: pa.Array, conflicting: Mapping[str, int]) -> pa.Array:
    """Each record's key's digest where the snapshot holds the key twice (the digest of
    the records it holds, `Extract.conflicting_keys`); null for every other record."""
    if not conflicting:
        return pa.nulls(len(keys), pa.int64())
    names = sorted(conflicting)
    at = pc.index_in(keys.cast(pa.string()), value_set=pa.array(names, pa.string()))
    return pc.take(pa.array([conflicting[k] for k in names], pa.int64()), at)
