"""Time `quality.rules.evaluate` and `quality.gx_suite.run_suite` on synthetic events.

    python -m tests.support.profile_rules --rows 1000000

`synthetic_events` builds a conformed core.event batch (盘锦, personal data in
clear) with a realistic mix of about 5% bad rows: unmapped categories, retired and
unknown codes, (0,0) / swapped / half-given coordinates, future times, lifecycle
steps out of order, bad ID check digits, malformed phones, duplicate source keys.
It is vectorised too (a million rows in a few seconds); the tests use it and
`conformed_table` for dirty tables.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from quality import checks
from quality.gx_suite import run_suite
from quality.rules import LIFECYCLE, RuleContext, evaluate, hub_vocabulary, reference_tables
from schemas.arrow import conformed_schema
from schemas.model import EVENT, Entity

PANJIN = "2111"
PANJIN_EXTENT = (121.40, 40.60, 122.55, 41.45)
NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def panjin_context(now: datetime = NOW, with_grids: bool = True) -> RuleContext:
    grids = panjin_grids() if with_grids else None
    return RuleContext.from_reference(PANJIN, PANJIN_EXTENT, now, grid_codes=grids)


def panjin_streets() -> list[str]:
    return sorted(s for s in reference_tables().streets if s.startswith(PANJIN))


def panjin_grids(count: int = 4600) -> list[str]:
    """Deterministic 15-digit unit-grid-style codes under 盘锦's streets."""
    streets = panjin_streets()
    return [f"{streets[i % len(streets)]}{i // len(streets) % 1000:03d}{i % 1000:03d}"
            for i in range(count)]


def conformed_table(entity: Entity, rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """A conformed batch from a few dict rows (missing columns null): for tests."""
    schema = conformed_schema(entity)
    return pa.Table.from_arrays(
        [pa.array([r.get(f.name) for r in rows], type=f.type) for f in schema], schema=schema
    )


def strings_from_matrix(mat: np.ndarray) -> pa.StringArray:
    """(n, w) uint8 matrix of ASCII → Arrow strings of width w, without a Python loop."""
    n, w = mat.shape
    offsets = np.arange(0, (n + 1) * w, w, dtype=np.int32) if n else np.zeros(1, np.int32)
    return pa.StringArray.from_buffers(
        n, pa.py_buffer(offsets.tobytes()), pa.py_buffer(np.ascontiguousarray(mat).tobytes())
    )


def _digits(rng: np.random.Generator, n: int, width: int) -> np.ndarray:
    return rng.integers(ord("0"), ord("9") + 1, size=(n, width), dtype=np.uint8)


def _put_number(mat: np.ndarray, col: int, width: int, values: np.ndarray) -> None:
    for k in range(width):
        mat[:, col + k] = ord("0") + (values // 10 ** (width - 1 - k)) % 10


def synthetic_ids(rng: np.random.Generator, n: int, prefixes: list[str]) -> pa.StringArray:
    """Valid GB 11643 numbers (born 1940–2005) with the given 6-digit region prefixes."""
    mat = _digits(rng, n, 18)
    pre = np.frombuffer("".join(prefixes).encode(), np.uint8).reshape(-1, 6)
    mat[:, :6] = pre[rng.integers(0, len(prefixes), n)]
    birth = np.datetime64("1940-01-01") + rng.integers(0, 365 * 65, n).astype("timedelta64[D]")
    year = birth.astype("datetime64[Y]").astype(np.int64) + 1970
    month = birth.astype("datetime64[M]").astype(np.int64) % 12 + 1
    day = (birth - birth.astype("datetime64[M]")).astype(np.int64) + 1
    _put_number(mat, 6, 4, year)
    _put_number(mat, 10, 2, month)
    _put_number(mat, 12, 2, day)
    total = (mat[:, :17].astype(np.int64) - ord("0")) @ checks._RIC_WEIGHTS
    mat[:, 17] = checks._RIC_CHECK[total % 11]
    return strings_from_matrix(mat)


def synthetic_phones(rng: np.random.Generator, n: int) -> pa.StringArray:
    mat = _digits(rng, n, 11)
    mat[:, 0] = ord("1")
    mat[:, 1] = rng.integers(ord("3"), ord("9") + 1, n, dtype=np.uint8)
    return strings_from_matrix(mat)


def _pick(rng: np.random.Generator, n: int, values: list[str],
          p: list[float] | None = None) -> pa.Array:
    idx = rng.choice(len(values), size=n, p=p).astype(np.int32)
    return pa.DictionaryArray.from_arrays(pa.array(idx), pa.array(values)).cast(pa.string())


def _replace(arr: pa.Array, mask: np.ndarray, value: object) -> pa.Array:
    return pc.if_else(pa.array(mask), pa.scalar(value, arr.type), arr)


def synthetic_events(n: int, seed: int = 0, now: datetime = NOW) -> pa.Table:
    """A conformed core.event batch of n rows, about 5% of them bad in some way."""
    rng = np.random.default_rng(seed)
    schema = conformed_schema(EVENT)

    def bad(rate: float) -> np.ndarray:
        return rng.random(n) < rate

    cols: dict[str, pa.Array] = {}
    keys = pc.binary_join_element_wise("EV", pa.array(np.arange(n)).cast(pa.string()), "")
    dup = bad(0.002) & (np.arange(n) > 0)
    dup_of = (rng.random(n) * np.arange(n)).astype(np.int64)
    cols["source_id"] = pc.if_else(pa.array(dup), keys.take(pa.array(dup_of)), keys)
    cols["channel"] = _replace(_pick(rng, n, ["电话", "网站", "微信", "APP", "监督员", "网格员", "视频"]),
                               bad(0.001), None)
    categories = [c for c in hub_vocabulary()["category_code"] if len(c) > 2]
    cols["category_code"] = _replace(_pick(rng, n, categories), bad(0.01), "unmapped")
    cols["source_category"] = pc.binary_join_element_wise(
        "P-", cols["category_code"], "")
    statuses = ["accepted", "dispatched", "in_progress", "resolved", "closed"]
    status = _pick(rng, n, statuses, p=[0.05, 0.1, 0.1, 0.15, 0.6])
    cols["status"] = _replace(status, bad(0.005), "unmapped")
    cols["source_status"] = _pick(rng, n, ["已受理", "已派单", "办理中", "已办结", "已回访"])
    cols["appeal_type"] = _pick(rng, n, ["咨询", "求助", "投诉", "举报", "建议"])
    cols["title"] = _pick(rng, n, ["占道经营", "噪音扰民", "路灯不亮", "井盖缺失"])
    cols["description"] = _pick(rng, n, ["门口有人摆摊 😀", "夜间施工\n噪音大", "<b>路灯</b>不亮"])
    cols["address"] = _pick(rng, n, ["兴隆台区 石油大街 1 号", "双台子区 建设街 8 号"])

    divisions = ["211102", "211103", "211104", "211122"]
    division = _pick(rng, n, divisions)
    division = _replace(division, bad(0.004), "211121")  # retired 大洼县
    cols["division_code"] = _replace(division, bad(0.002), "219999")
    cols["street_code"] = _replace(_pick(rng, n, panjin_streets()), bad(0.003), "211103999")
    cols["grid_code"] = _replace(_pick(rng, n, panjin_grids()), bad(0.003), "211103001999999")

    lo_lon, lo_lat, hi_lon, hi_lat = PANJIN_EXTENT
    lon = lo_lon + rng.random(n) * (hi_lon - lo_lon)
    lat = lo_lat + rng.random(n) * (hi_lat - lo_lat)
    zero = bad(0.002)
    lon[zero], lat[zero] = 0.0, 0.0
    swap = bad(0.002)
    lon[swap], lat[swap] = lat[swap], lon[swap]
    far = bad(0.002)
    lon[far] += 3.0
    no_coords = bad(0.05)
    half = bad(0.002)
    cols["longitude"] = pa.array(lon, mask=no_coords)
    cols["latitude"] = pa.array(lat, mask=no_coords | half)
    cols["is_urgent"] = pa.array(rng.random(n) < 0.05)

    us = 1_000_000
    now_us = checks.to_micros(now)
    reported = now_us - rng.integers(5 * 86400, 90 * 86400, n) * us
    steps = np.cumsum(rng.integers(60, 86400, size=(n, 4)) * us, axis=1) + reported[:, None]
    reached = {"accepted": 1, "dispatched": 2, "in_progress": 2, "resolved": 3, "closed": 4,
               "unmapped": 2}
    reached_steps = pc.fill_null(
        pc.index_in(cols["status"], pa.array(list(reached))), 0).to_numpy()
    reached_steps = np.array(list(reached.values()))[reached_steps]
    times = {"reported_at": reported}
    for k, name in enumerate(LIFECYCLE[1:]):
        times[name] = steps[:, k]
    disorder = bad(0.003)
    times["resolved_at"] = np.where(disorder, times["accepted_at"] - 3600 * us,
                                    times["resolved_at"])
    future = bad(0.002)
    times["reported_at"] = np.where(future, now_us + 2 * 86400 * us, times["reported_at"])
    ts = pa.timestamp("us", tz="UTC")
    for k, name in enumerate(LIFECYCLE):
        missing = reached_steps < k
        if name == "reported_at":
            missing = bad(0.02)
        cols[name] = pa.array(times[name], mask=missing).cast(ts)
    deadline = times["accepted_at"] + 5 * 86400 * us
    deadline = np.where(bad(0.003), times["accepted_at"] - 86400 * us, deadline)
    cols["deadline_at"] = pa.array(deadline).cast(ts)
    cols["handling_org"] = _pick(rng, n, ["兴隆台区城管局", "双台子区住建局", "市水务集团"])
    closed = np.asarray(pc.equal(cols["status"], "closed").to_numpy(zero_copy_only=False))
    rated = closed | bad(0.004)
    satisfaction = _pick(rng, n, ["满意", "基本满意", "不满意", "未评价"], p=[0.6, 0.2, 0.1, 0.1])
    cols["satisfaction"] = _replace(satisfaction, ~rated, None)
    cols["reporter_name_masked"] = _pick(rng, n, ["张*", "李**", "王*"])

    phones = synthetic_phones(rng, n)
    phones = _replace(phones, bad(0.006), "1380013800")  # a digit short
    cols["reporter_phone"] = _replace(phones, bad(0.3), None)
    ids = synthetic_ids(rng, n, divisions)
    ids = _replace(ids, bad(0.004), "211103198001011234")  # bad check digit
    cols["reporter_id_number"] = _replace(ids, bad(0.8), None)
    updated = pa.array(now_us - rng.integers(0, 3600, n) * us).cast(ts)
    cols["source_updated_at"] = _replace(updated, bad(0.001), None)
    cols["cluster_key"] = pa.nulls(n, pa.string())
    # Fields the generator leaves alone (the model may gain some) are null.
    return pa.Table.from_arrays([cols.get(f.name, pa.nulls(n, f.type)) for f in schema],
                                schema=schema)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-gx", action="store_true")
    args = parser.parse_args()

    ctx = panjin_context()
    t0 = time.perf_counter()
    table = synthetic_events(args.rows)
    print(f"built {table.num_rows:,} rows in {time.perf_counter() - t0:.2f}s")

    best = float("inf")
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        evaluation = evaluate(EVENT, table, ctx)
        best = min(best, time.perf_counter() - t0)
    bad_rows = int(np.count_nonzero(
        np.bincount(evaluation.findings["row_index"].to_numpy(), minlength=table.num_rows)))
    print(f"evaluate: {best:.3f}s  findings={evaluation.findings.num_rows:,} "
          f"rows with findings={bad_rows:,} ({bad_rows / max(table.num_rows, 1):.1%}) "
          f"quarantined={int(evaluation.blocking_failed.sum()):,}")
    for r in evaluation.results:
        print(f"  {r.rule:45s} {r.severity:8s} evaluated={r.evaluated:>9,} failed={r.failed:>7,}")
    if args.no_gx:
        return

    run_suite(EVENT, table.slice(0, 1000), ctx)  # GX context and suite set-up, once a process
    for label, max_rows in (("full batch", None), ("200k-row sample", 200_000)):
        best = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            report = run_suite(EVENT, table, ctx, evaluation, max_rows=max_rows)
            best = min(best, time.perf_counter() - t0)
        print(f"run_suite ({label}): {best:.3f}s  rows={report.rows:,} "
              f"success={report.success} mismatches={report.mismatches or 'none'}")


if __name__ == "__main__":
    main()
