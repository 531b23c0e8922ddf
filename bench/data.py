"""The benchmarks' rows: conformed 12345 work orders and grid-platform residents, made
in chunks with about the dirt the simulators plant, and the second load derived from
the first (10 % changed, 5 % new, the rest unchanged; 5 % of the first load absent).

Each chunk is written once to Parquet, in three forms every contender reads the same
way: `conformed` (what the hub's validate-and-merge path takes), `loaded` (the same rows
as the core table holds them: personal data hashed and masked, what a raw COPY and dlt
load). Generation is not timed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from schemas.model import Entity

KINDS = ("workorders", "residents")
# The second load: of each first-load chunk, the first 5 % is absent (a full snapshot
# closes them, an incremental window simply does not carry them), the next 10 % changed,
# the rest unchanged; 5 % new records are added.
ABSENT, CHANGED, NEW = 0.05, 0.10, 0.05
SEED = 20261126


@dataclass(frozen=True)
class Chunk:
    """One batch of one load, as files."""

    conformed: Path
    loaded: Path
    rows: int


def entity_of(kind: str) -> Entity:
    from schemas.model import EVENT, PERSON

    return EVENT if kind == "workorders" else PERSON


def city() -> dict[str, np.ndarray]:
    from conform.mappings import category_mapping
    from schemas.reference_data import street_codes

    streets = np.array(sorted(c for c in street_codes() if c.startswith("2111")))
    return {
        "districts": np.array(["211102", "211103", "211104", "211122"]),
        "streets": streets,
        "categories": np.array(sorted(set(category_mapping("hotline12345").values()))),
    }


def pools(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct valid ID numbers and phones, as many as a real city's callers."""
    from sandbox.city import citizen_id

    birth0 = datetime(1950, 1, 1)
    ids = np.array([citizen_id("211103", (birth0 + timedelta(days=int(d))).date(), i, i % 2 == 0)
                    for i, d in enumerate(rng.integers(0, 365 * 55, size))])
    phones = np.array([f"1{p}" for p in rng.integers(3_000_000_000, 9_999_999_999, size)])
    return ids, phones


TEXTS = np.array(["路边占道经营，影响通行", "小区门口垃圾无人清运😡", "路灯不亮\n请尽快处理",
                  "'; DROP TABLE core.event; --", "噪声扰民，晚上十点后仍在施工"])


def work_orders(n: int, offset: int, rng: np.random.Generator, ids: np.ndarray,
                phones: np.ndarray, town: dict[str, np.ndarray]) -> pa.Table:
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
                          rng.choice(town["categories"], n))
    with_id = rng.random(n) < 0.4
    # About 40% of callers give an ID number.
    id_numbers = pc.if_else(pa.array(with_id), pa.array(rng.choice(ids, n)),
                            pa.scalar(None, pa.string()))
    district = rng.integers(0, len(town["districts"]), n)

    def ts(seconds: np.ndarray) -> pa.Array:
        return pa.array((seconds * 1e6).astype("int64"), pa.timestamp("us", tz="UTC"))

    return build(EVENT, {
        "source_id": pa.array(np.char.add("B", (np.arange(n) + offset).astype(str))),
        "channel": pa.array(rng.choice(np.array(["电话", "网站", "微信", "APP"]), n)),
        "appeal_type": pa.array(rng.choice(np.array(["投诉", "求助", "咨询", "建议"]), n)),
        "category_code": pa.array(categories),
        "source_category": pa.array(categories),
        "status": pa.array(rng.choice(np.array(["dispatched", "in_progress", "resolved"]), n)),
        "source_status": pa.scalar("办理中"),
        "title": pa.scalar("市民反映"),
        "description": pa.array(rng.choice(TEXTS, n)),
        "address": pa.scalar("盘锦市兴隆台区兴隆大街100号"),
        "division_code": pa.array(town["districts"][district]),
        "street_code": pa.array(town["streets"][rng.integers(0, len(town["streets"]), n)]),
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


def residents(n: int, offset: int, rng: np.random.Generator,
              town: dict[str, np.ndarray]) -> pa.Table:
    """n conformed residents of a grid platform's daily snapshot; ~2% with a wrong
    check digit, as the grid platform's files carry them."""
    from base.pii import keyed_hash
    from conform.base import build
    from sandbox.city import SURNAMES, citizen_id, wrong_check_digit
    from schemas.model import PERSON

    # Distinct people: the k-th resident is born on day k mod 29,200 (80 years) with
    # sequence number k div 29,200, so no two share an ID number (up to 14.6 M people).
    k = np.arange(offset, offset + n)
    births = k % 29_200
    birth0 = datetime(1940, 1, 1)
    ids = [citizen_id(town["districts"][int(j) % 4], (birth0 + timedelta(days=int(d))).date(),
                      int(j) // 29_200, int(j) % 2 == 0) for j, d in zip(k, births, strict=True)]
    ids = [wrong_check_digit(x) if r < 0.02 else x for x, r in zip(ids, rng.random(n), strict=True)]
    names = np.char.add(rng.choice(np.array(list(SURNAMES)), n),
                        rng.choice(np.array(["伟", "芳", "娜", "秀英", "敏", "静", "强", "磊"]), n))
    grids = rng.integers(0, len(town["streets"]), n)
    return build(PERSON, {
        "source_id": pa.array([f"resident:{keyed_hash(x)[:32]}" for x in ids]),
        "name": pa.array(names),
        "gender": pa.array(np.where(k % 2 == 0, "男", "女")),
        "id_number": pa.array(ids),
        "birth_date": pa.array((np.datetime64("1940-01-01") + births).astype("datetime64[D]")),
        "ethnicity": pa.scalar("汉族"),
        "phone": pa.array(_phones(rng, n)),
        "household_address": pa.scalar("盘锦市兴隆台区兴隆大街100号"),
        "current_address": pa.scalar("盘锦市兴隆台区石油大街20号"),
        "population_type": pa.array(rng.choice(np.array(["户籍", "流动", "境外"]), n,
                                               p=[0.85, 0.14, 0.01])),
        "role": pa.scalar("resident"),
        "division_code": pa.array(town["streets"][grids].astype("U6")),
        "street_code": pa.array(town["streets"][grids]),
    }, n)


def _phones(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.char.add("1", rng.integers(3_000_000_000, 9_999_999_999, n).astype(str))


def changed(kind: str, table: pa.Table, rng: np.random.Generator) -> pa.Table:
    """The same records as they stand a day later on the platform."""
    def put(t: pa.Table, name: str, values: pa.Array) -> pa.Table:
        return t.set_column(t.schema.get_field_index(name), name,
                            values.cast(t.schema.field(name).type))

    n = table.num_rows
    if kind == "workorders":
        table = put(table, "status", pa.array(["resolved"] * n))
        table = put(table, "description", pa.array(rng.choice(TEXTS, n)))
        later = pc.add(table["source_updated_at"], pa.scalar(timedelta(days=1)))
        return put(table, "source_updated_at", later.combine_chunks())
    table = put(table, "phone", pa.array(_phones(rng, n)))
    return put(table, "current_address", pa.array(["盘锦市双台子区红旗大街8号"] * n))


def as_loaded(kind: str, conformed: pa.Table) -> pa.Table:
    """The rows as the core table holds them (personal data hashed and masked)."""
    from conform.protect import protect

    return protect(entity_of(kind), conformed)


def prepare(kind: str, rows: int, chunk: int, folder: Path) -> tuple[list[Chunk], list[Chunk]]:
    """Write the first load (`rows` records) and the second, chunk by chunk; memory holds
    one chunk at a time however big `rows` is."""
    rng = np.random.default_rng(SEED)
    town = city()
    ids, phones = pools(rng, min(200_000, max(1000, rows // 5))) if kind == "workorders" \
        else (np.array([]), np.array([]))

    def make(n: int, offset: int) -> pa.Table:
        if kind == "workorders":
            return work_orders(n, offset, rng, ids, phones, town)
        return residents(n, offset, rng, town)

    def write(table: pa.Table, load: str, i: int) -> Chunk:
        out = folder / kind / load
        out.mkdir(parents=True, exist_ok=True)
        c = Chunk(out / f"conformed-{i:05d}.parquet", out / f"loaded-{i:05d}.parquet",
                  table.num_rows)
        pq.write_table(table, c.conformed)
        pq.write_table(as_loaded(kind, table), c.loaded)
        return c

    first: list[Chunk] = []
    second: list[Chunk] = []
    done = new_done = 0
    i = 0
    while done < rows:
        n = min(chunk, rows - done)
        table = make(n, done)
        first.append(write(table, "first", i))
        absent, change = int(n * ABSENT), int(n * CHANGED)
        n_new = int(n * NEW)
        parts = [changed(kind, table.slice(absent, change), rng), table.slice(absent + change)]
        if n_new:
            parts.append(make(n_new, rows + new_done))
        second.append(write(pa.concat_tables(parts), "second", i))
        done += n
        new_done += n_new
        i += 1
    return first, second
