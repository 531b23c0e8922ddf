"""Benchmark: the hub's validate-and-load path against a raw PostgreSQL COPY of the same rows.

    make bench            # 1,000,000 work orders
    make bench N=200000

Generates conformed 12345 work orders in chunks (about 5% of them dirty in the
ways the simulator's are), and for each chunk, on the same rows:
- baseline: pyarrow CSV + COPY into a plain table with core.event's columns;
- hub: validation (rules), quarantine, personal-data hashing and masking, COPY to
  staging and the merge into core.event, with ops.run kept, as the pipeline does.
Times are taken in the same run so the ratio survives a noisy machine. Peak memory
is the process's maximum RSS: the chunking keeps it flat as N grows.

Runs in its own database (`hub_bench`) on the configured warehouse server and
drops it afterwards.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
import pyarrow as pa

BENCH_DB = "hub_bench"


def _point_at_bench_database() -> str:
    """Create the bench database next to the configured warehouse and use it."""
    from warehouse import db

    admin = db.conninfo()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {BENCH_DB}")
    info = psycopg.conninfo.conninfo_to_dict(admin)
    info["dbname"] = BENCH_DB
    os.environ["HUB_WAREHOUSE_URL"] = psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]
    os.environ.setdefault("HUB_PII_KEY", "bench-only-key")
    from hub.config import settings

    settings.cache_clear()
    db.conninfo.cache_clear()
    return admin


def generate(n: int, offset: int, rng: np.random.Generator, ids: np.ndarray,
             phones: np.ndarray, city: dict[str, np.ndarray]) -> pa.Table:
    """n conformed core.event rows; about 5% carry a defect a rule catches."""
    from conform.base import build
    from schemas.model import EVENT

    base = datetime(2026, 11, 1, tzinfo=UTC).timestamp()
    accepted = base + rng.uniform(0, 20 * 86400, n)
    dispatched = accepted + rng.uniform(600, 7200, n)
    resolved = dispatched + rng.uniform(3600, 3 * 86400, n)
    dirt = rng.random(n)
    resolved = np.where(dirt < 0.01, accepted - 3600, resolved)  # finish before accept
    lon = rng.uniform(121.5, 122.4, n)
    lat = rng.uniform(40.7, 41.4, n)
    lon, lat = np.where(dirt > 0.99, lat, lon), np.where(dirt > 0.99, lon, lat)  # swapped
    categories = np.where((dirt > 0.02) & (dirt < 0.03), "unmapped",
                          rng.choice(city["categories"], n))
    with_id = rng.random(n) < 0.4
    id_numbers = np.where(with_id, rng.choice(ids, n), None)
    district = rng.integers(0, len(city["districts"]), n)

    def ts(seconds: np.ndarray) -> pa.Array:
        return pa.array((seconds * 1e6).astype("int64"), pa.timestamp("us", tz="UTC"))

    texts = np.array(["路边占道经营，影响通行", "小区门口垃圾无人清运😡", "路灯不亮\n请尽快处理",
                      "'; DROP TABLE core.event; --", "噪声扰民，晚上十点后仍在施工"])
    return build(EVENT, {
        "source_id": pa.array(np.char.add("B", (np.arange(n) + offset).astype(str))),
        "channel": pa.array(rng.choice(np.array(["电话", "网站", "微信", "APP"]), n)),
        "appeal_type": pa.array(rng.choice(np.array(["投诉", "求助", "咨询", "建议"]), n)),
        "category_code": pa.array(categories),
        "source_category": pa.array(categories),
        "status": pa.array(rng.choice(np.array(["dispatched", "in_progress", "resolved"]), n)),
        "source_status": pa.scalar("办理中"),
        "title": pa.scalar("市民反映"),
        "description": pa.array(rng.choice(texts, n)),
        "address": pa.scalar("盘锦市兴隆台区兴隆大街100号"),
        "division_code": pa.array(city["districts"][district]),
        "street_code": pa.array(city["streets"][rng.integers(0, len(city["streets"]), n)]),
        "longitude": pa.array(lon),
        "latitude": pa.array(lat),
        "is_urgent": pa.array(rng.random(n) < 0.05),
        "reported_at": ts(accepted),
        "accepted_at": ts(accepted),
        "dispatched_at": ts(dispatched),
        "resolved_at": ts(resolved),
        "deadline_at": ts(accepted + 5 * 86400),
        "handling_org": pa.scalar("盘锦市城市管理综合行政执法局"),
        "reporter_name_masked": pa.scalar("张**"),
        "reporter_phone": pa.array(rng.choice(phones, n)),
        "reporter_id_number": pa.array(id_numbers, pa.string()),
        "source_updated_at": ts(resolved + 60),
    }, n)


def _city() -> dict[str, np.ndarray]:
    from conform.mappings import category_mapping
    from schemas.reference_data import street_codes

    streets = np.array(sorted(c for c in street_codes() if c.startswith("2111")))
    return {
        "districts": np.array(["211102", "211103", "211104", "211122"]),
        "streets": streets,
        "categories": np.array(sorted(set(category_mapping("hotline12345").values()))),
    }


def _pools(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct valid ID numbers and phones, as many as a real city's callers."""
    from sandbox.city import citizen_id

    birth0 = datetime(1950, 1, 1)
    ids = np.array([citizen_id("211103", (birth0 + timedelta(days=int(d))).date(), i, i % 2 == 0)
                    for i, d in enumerate(rng.integers(0, 365 * 55, size))])
    phones = np.array([f"1{p}" for p in rng.integers(3_000_000_000, 9_999_999_999, size)])
    return ids, phones


def _rss_mb() -> float:
    """Resident memory now (Linux), to show it stays flat batch after batch."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=None, help="rows per batch (HUB_BATCH_ROWS)")
    args = parser.parse_args(argv)

    admin = _point_at_bench_database()
    from hub.config import CityConfig, settings
    from hub.pipeline import store_validated
    from quality.context import rule_context
    from quality.validate import validate
    from schemas.model import EVENT
    from warehouse import ops
    from warehouse.db import connect
    from warehouse.loader import copy_arrow
    from warehouse.migrate import migrate

    chunk = args.chunk or settings().batch_rows
    migrate()
    city_cfg = CityConfig(code="2111", extent=(121.42, 40.65, 122.52, 41.45))
    rng = np.random.default_rng(20261126)
    ids, phones = _pools(rng, min(200_000, max(1000, args.rows // 5)))
    city = _city()
    with connect() as conn:
        # The equivalent table: core.event's columns, keys and indexes.
        conn.execute("CREATE TABLE public.raw_copy (LIKE core.event INCLUDING ALL)")
        ctx = rule_context(conn, city_cfg)
        run_id = ops.start_run(conn, "bench", "bench", "bench")

    from psycopg import sql

    from hub.pii import protect

    raw_s = validate_s = load_s = 0.0
    rss_mb: list[float] = []
    loaded = quarantined = 0
    done = 0
    while done < args.rows:
        n = min(chunk, args.rows - done)
        conformed = generate(n, done, rng, ids, phones, city)

        # The same rows as core.event holds them: hashed personal data, lineage columns.
        as_loaded = protect(EVENT, conformed)
        as_loaded = as_loaded.append_column("source_system", pa.array(["raw"] * n)).append_column(
            "valid_from", pa.array([datetime.now(UTC)] * n, pa.timestamp("us", tz="UTC")))
        started = time.perf_counter()
        with connect() as conn:
            copy_arrow(conn, as_loaded, sql.Identifier("public", "raw_copy"))
        raw_s += time.perf_counter() - started
        del as_loaded

        started = time.perf_counter()
        checked = validate(EVENT, conformed, ctx)
        validated_at = time.perf_counter()
        with connect() as conn:
            store_validated(conn, EVENT, checked, source="bench", stream="workorders",
                            run_id=run_id, payload=None)
            batch_loaded = int((~checked.quarantine).sum())
            ops.add_batch(conn, run_id, {
                "extracted": n, "loaded": batch_loaded, "quarantined": n - batch_loaded,
                "reread": 0, "inserted": batch_loaded, "updated": 0, "unchanged": 0, "closed": 0,
            }, {})
        finished = time.perf_counter()
        validate_s += validated_at - started
        load_s += finished - validated_at
        loaded += batch_loaded
        quarantined += n - batch_loaded
        done += n
        rss_mb.append(_rss_mb())
        print(f"\r{done:,}/{args.rows:,} rows, RSS {rss_mb[-1]:,.0f} MB", end="",
              file=sys.stderr, flush=True)
    print(file=sys.stderr)
    ops.finish_run(run_id, "succeeded")

    hub_s = validate_s + load_s
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"rows: {args.rows:,} in batches of {chunk:,}; loaded {loaded:,}, "
          f"quarantined {quarantined:,}")
    print(f"raw COPY (baseline):  {args.rows / raw_s:>10,.0f} rows/s  ({raw_s:.2f} s)")
    print(f"hub validate + load:  {args.rows / hub_s:>10,.0f} rows/s  ({hub_s:.2f} s:"
          f" validate {validate_s:.2f} s, quarantine+hash+COPY+merge {load_s:.2f} s)")
    print(f"ratio hub / raw COPY: {raw_s / hub_s:.2f}   (target >= 0.50)")
    print(f"validation share:     {validate_s / load_s:.0%} of load time (target <= 30%)")
    settled = rss_mb[min(2, len(rss_mb) - 1)]
    print(f"peak memory (RSS):    {peak_mb:,.0f} MB; after batch 3 {settled:,.0f} MB,"
          f" after the last {rss_mb[-1]:,.0f} MB")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
