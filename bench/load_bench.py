"""Benchmark: the hub's validate-and-load path against a raw PostgreSQL COPY of the same rows.

    make bench            # 1,000,000 12345 work orders, then a 1,000,000-resident snapshot
    make bench N=200000

Two loads, each generated in chunks with about the dirt the simulators plant:
- workorders: conformed 12345 work orders merged into core.event (about 5% dirty);
- residents: a grid platform's full daily snapshot of residents into core.person,
  with the snapshot's keys noted and the records it lacks closed at the end.
For each chunk, on the same rows, in the same run (so the ratio survives a noisy
machine):
- baseline: pyarrow CSV + COPY into a table equivalent to the core table (same
  columns, keys and indexes: CREATE TABLE … (LIKE core.x INCLUDING ALL));
- hub: validation (rules), quarantine and findings, personal-data hashing and
  masking, the merge into the core table (COPY of new and changed rows), ops.run.
Memory is the process's RSS after each batch: the chunking keeps it flat as N grows.

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
import pyarrow.compute as pc

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
    from base.settings import settings

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
    # About 40% of callers give an ID number.
    id_numbers = pc.if_else(pa.array(with_id), pa.array(rng.choice(ids, n)),
                            pa.scalar(None, pa.string()))
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
        "reporter_id_number": id_numbers,
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


def generate_residents(n: int, offset: int, rng: np.random.Generator,
                       city: dict[str, np.ndarray]) -> pa.Table:
    """n conformed residents of a grid platform's daily snapshot; ~2% with a wrong
    check digit, as the grid platform's files carry them."""
    from base.pii import keyed_hash
    from conform.base import build
    from sandbox.city import SURNAMES, citizen_id, wrong_check_digit
    from schemas.model import PERSON

    # Distinct people: the k-th resident is born on day k mod 29,200 (80 years) with
    # sequence number k div 29,200, so no two share an ID number.
    k = np.arange(offset, offset + n)
    births = k % 29_200
    birth0 = datetime(1940, 1, 1)
    ids = [citizen_id(city["districts"][int(j) % 4], (birth0 + timedelta(days=int(d))).date(),
                      int(j) // 29_200, int(j) % 2 == 0) for j, d in zip(k, births, strict=True)]
    ids = [wrong_check_digit(x) if r < 0.02 else x for x, r in zip(ids, rng.random(n), strict=True)]
    names = np.char.add(rng.choice(np.array(list(SURNAMES)), n),
                        rng.choice(np.array(["伟", "芳", "娜", "秀英", "敏", "静", "强", "磊"]), n))
    grids = rng.integers(0, len(city["streets"]), n)
    return build(PERSON, {
        "source_id": pa.array([f"resident:{keyed_hash(x)[:32]}" for x in ids]),
        "name": pa.array(names),
        "gender": pa.array(np.where(np.arange(n) % 2 == 0, "男", "女")),
        "id_number": pa.array(ids),
        "birth_date": pa.array((np.datetime64("1940-01-01") + births).astype("datetime64[D]")),
        "ethnicity": pa.scalar("汉族"),
        "phone": pa.array(np.char.add("1", rng.integers(3_000_000_000, 9_999_999_999, n)
                                      .astype(str))),
        "household_address": pa.scalar("盘锦市兴隆台区兴隆大街100号"),
        "current_address": pa.scalar("盘锦市兴隆台区石油大街20号"),
        "population_type": pa.array(rng.choice(np.array(["户籍", "流动", "境外"]), n,
                                               p=[0.85, 0.14, 0.01])),
        "role": pa.scalar("resident"),
        "division_code": pa.array(city["streets"][grids].astype("U6")),
        "street_code": pa.array(city["streets"][grids]),
    }, n)


def _rss_mb() -> float:
    """Resident memory now (Linux), to show it stays flat batch after batch."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_kind(kind: str, rows: int, chunk: int) -> dict[str, float]:
    """Load `rows` of one kind both ways; returns the timings and counts."""
    from psycopg import sql

    from base.settings import CityConfig
    from conform.protect import protect
    from hub.pipeline import store_validated
    from quality.context import rule_context
    from quality.validate import validate
    from schemas.model import EVENT, PERSON
    from warehouse import ops
    from warehouse.db import Role, connect
    from warehouse.loader import close_missing, copy_arrow, record_seen

    entity = EVENT if kind == "workorders" else PERSON
    snapshot = kind == "residents"  # a full daily snapshot: keys noted, the missing closed
    # The raw COPY baseline's table lives in the raw schema (the owner's), loaded by the
    # same role as the hub's path: the pipeline's.
    raw_table = sql.Identifier("raw", f"bench_{entity.name}")
    city_cfg = CityConfig(code="2111", extent=(121.42, 40.65, 122.52, 41.45))
    rng = np.random.default_rng(20261126)
    city = _city()
    ids, phones = _pools(rng, min(200_000, max(1000, rows // 5))) if not snapshot else (None, None)
    with connect(Role.OWNER) as conn:
        # The equivalent table: the core table's columns, keys and indexes.
        conn.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(
            raw_table, sql.Identifier(*entity.table.split("."))))
    with connect(Role.LOADER) as conn:
        ctx = rule_context(conn, city_cfg)
        run_id = ops.start_run(conn, f"bench_{kind}", "bench", "bench")

    raw_s = validate_s = load_s = 0.0
    rss_mb: list[float] = []
    loaded = done = 0
    while done < rows:
        n = min(chunk, rows - done)
        if snapshot:
            conformed = generate_residents(n, done, rng, city)
        else:
            assert ids is not None and phones is not None
            conformed = generate(n, done, rng, ids, phones, city)

        # The same rows as the core table holds them: hashed personal data, lineage.
        as_loaded = protect(entity, conformed)
        as_loaded = as_loaded.append_column("source_system", pa.array(["raw"] * n)).append_column(
            "valid_from", pa.array([datetime.now(UTC)] * n, pa.timestamp("us", tz="UTC")))
        started = time.perf_counter()
        with connect(Role.LOADER) as conn:
            copy_arrow(conn, as_loaded, raw_table)
        raw_s += time.perf_counter() - started
        del as_loaded

        started = time.perf_counter()
        checked = validate(entity, conformed, ctx)
        validated_at = time.perf_counter()
        with connect(Role.LOADER) as conn:
            store_validated(conn, entity, checked, source=f"bench_{kind}", stream=kind,
                            run_id=run_id, payload=None)
            if snapshot:
                record_seen(conn, f"bench_{kind}", kind, "day1", conformed["source_id"])
                if done + n >= rows:
                    close_missing(conn, entity, f"bench_{kind}", kind, "day1")
            batch_loaded = int((~checked.quarantine).sum())
            ops.add_batch(conn, run_id, {
                "extracted": n, "loaded": batch_loaded, "quarantined": n - batch_loaded,
                "reread": 0, "inserted": batch_loaded, "updated": 0, "unchanged": 0, "closed": 0,
            }, {})
        finished = time.perf_counter()
        validate_s += validated_at - started
        load_s += finished - validated_at
        loaded += batch_loaded
        done += n
        rss_mb.append(_rss_mb())
        print(f"\r{kind}: {done:,}/{rows:,} rows, RSS {rss_mb[-1]:,.0f} MB", end="",
              file=sys.stderr, flush=True)
    print(file=sys.stderr)
    ops.finish_run(run_id, "succeeded")
    return {"raw_s": raw_s, "validate_s": validate_s, "load_s": load_s, "loaded": loaded,
            "settled_mb": rss_mb[min(2, len(rss_mb) - 1)], "last_mb": rss_mb[-1]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=None, help="rows per batch (HUB_BATCH_ROWS)")
    parser.add_argument("--kind", choices=["workorders", "residents", "all"], default="all",
                        help="12345 work orders (merge), a grid-resident snapshot, or both")
    args = parser.parse_args(argv)

    admin = _point_at_bench_database()
    from base.settings import settings
    from warehouse.migrate import migrate

    chunk = args.chunk or settings().batch_rows
    migrate()
    kinds = ["workorders", "residents"] if args.kind == "all" else [args.kind]
    for kind in kinds:
        r = run_kind(kind, args.rows, chunk)
        hub_s = r["validate_s"] + r["load_s"]
        print(f"== {kind}: {args.rows:,} rows in batches of {chunk:,};"
              f" loaded {r['loaded']:,.0f}, quarantined {args.rows - r['loaded']:,.0f}")
        print(f"raw COPY (baseline):  {args.rows / r['raw_s']:>10,.0f} rows/s  ({r['raw_s']:.2f} s)")
        print(f"hub validate + load:  {args.rows / hub_s:>10,.0f} rows/s  ({hub_s:.2f} s:"
              f" validate {r['validate_s']:.2f} s, quarantine+hash+merge {r['load_s']:.2f} s)")
        print(f"ratio hub / raw COPY: {r['raw_s'] / hub_s:.2f}   (target >= 0.50)")
        print(f"validation share:     {r['validate_s'] / r['load_s']:.0%} of load time"
              " (target <= 30%)")
        print(f"memory (RSS):         {r['settled_mb']:,.0f} MB after batch 3,"
              f" {r['last_mb']:,.0f} MB after the last")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (RSS) of the whole benchmark: {peak_mb:,.0f} MB")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
