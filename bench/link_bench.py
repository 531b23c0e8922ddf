"""Benchmark: linking N person records into golden persons, then 10,000 new ones.

    python -m bench.link_bench --rows 100000
    python -m bench.link_bench --rows 1000000 --new 10000
    python -m bench.link_bench --rows 100000 --seed 7   # another city, other people

The records are the simulated city's people (sandbox.city.City) as several platforms
know them: a grid platform's residents (full details, now and then a traditional or
spaced name, a missing ID), 12345 callers (name as given, phone, an ID in four calls of
ten), 综治 parties (name, ID or phone). Planted among them, the cases a linker must keep
apart: family members sharing a phone and an address (parents and children, twins with
one birth date, a son named after his father), and whatever namesakes the city's name
pool gives. Each record carries its person, so the run is scored against the truth:
pairwise precision and recall of the clusters, overall and for the records an ID number
alone cannot link.

Runs in its own database (`hub_link_bench`) on the configured warehouse server and drops
it afterwards (`--keep` leaves it).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import time
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import psycopg
import pyarrow as pa
from psycopg import sql

from base.settings import settings
from conform.base import build
from conform.protect import protect
from link.evaluate import harmonic
from link.people import LinkSummary, link_people
from sandbox.city import GIVEN, City, Person, citizen_id, name_variant, phone_variant
from schemas.model import PERSON
from warehouse import db
from warehouse.db import Role, connect
from warehouse.loader import copy_arrow
from warehouse.migrate import migrate

BENCH_DB = "hub_link_bench"
SEED = 20261202


def _point_at_bench_database() -> str:
    """Create the bench database next to the configured warehouse and use it."""
    admin = db.conninfo()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {BENCH_DB}")
    info = psycopg.conninfo.conninfo_to_dict(admin)
    info["dbname"] = BENCH_DB
    os.environ["HUB_WAREHOUSE_URL"] = psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]
    os.environ.setdefault("HUB_PII_KEY", "bench-only-key")
    settings.cache_clear()
    db.conninfo.cache_clear()
    return admin


@dataclass
class Generated:
    rows: list[dict[str, object]]
    truth: list[str]  # the person each row is


class Population:
    """Records of the city's people as the platforms know them, with the truth."""

    def __init__(self, city: City, seed: int = SEED):
        self.city = city
        self.rng = random.Random(seed)
        self.serial = 0
        self.id_owner: dict[str, str] = {}

    def unique_id(self, p: Person, truth: str) -> Person:
        """`p` with an ID number no other person has: the simulator's numbers repeat now and
        then (the sequence is the index modulo 500), real ones never do."""
        number, seq = p.id_number, 0
        while self.id_owner.setdefault(number, truth) != truth:
            seq += 1
            number = citizen_id(p.grid.district_code, p.birth_date, 500 + seq,
                                p.gender == "男")
        return p if number == p.id_number else replace(p, id_number=number)

    def _row(self, out: Generated, truth: str, system: str, role: str, name: str | None,
             p: Person, *, id_number: str | None, phone: str | None, birth: date | None,
             gender: str | None, grid: bool, address: str | None) -> None:
        self.serial += 1
        out.rows.append({
            "source_system": system, "source_id": f"{role}-{self.serial}", "role": role,
            "name": name, "gender": gender, "id_number": id_number, "birth_date": birth,
            "phone": phone, "current_address": address, "household_address": address,
            "division_code": p.grid.district_code, "street_code": p.grid.street_code,
            "grid_code": p.grid.code if grid else None,
        })
        out.truth.append(truth)

    def person_records(self, p: Person, truth: str, out: Generated) -> None:
        """Each platform that knows the person adds a record of them."""
        r = self.rng
        p = self.unique_id(p, truth)
        if r.random() < 0.85:  # a resident of the grid platform
            self._row(out, truth, "gridmgmt", "resident",
                      name_variant(p.name, r) if r.random() < 0.02 else p.name, p,
                      id_number=p.id_number if r.random() > 0.03 else None,
                      phone=p.phone if r.random() < 0.9 else None, birth=p.birth_date,
                      gender=p.gender, grid=True, address=p.address)
        for _ in range(r.choices((0, 1, 2), weights=(70, 24, 6))[0]):  # 12345 calls
            self._row(out, truth, "hotline12345", "caller",
                      name_variant(p.name, r) if r.random() < 0.05 else p.name, p,
                      id_number=p.id_number if r.random() < 0.4 else None,
                      phone=phone_variant(p.phone, r) if r.random() < 0.04 else p.phone,
                      birth=None, gender=None, grid=False, address=None)
        if r.random() < 0.12:  # a party to a 综治 dispute
            with_id = r.random() < 0.7
            self._row(out, truth, "zongzhi", "party", p.name, p,
                      id_number=p.id_number if with_id else None,
                      phone=None if with_id and r.random() < 0.5 else p.phone,
                      birth=None, gender=None, grid=True, address=None)

    def relative(self, p: Person, kind: str) -> Person:
        """A family member of `p`: one surname, phone and address; another person."""
        r = self.rng
        if kind == "twin":
            birth = p.birth_date
        else:
            older = kind != "namesake_son" and (r.random() < 0.5 or p.birth_date.year > 1995)
            birth = p.birth_date + timedelta(days=(-1 if older else 1) * (
                365 * r.randint(20, 35) + r.randint(0, 300)))
            birth = min(birth, date(2024, 12, 31))
        given = "".join(r.choice(GIVEN) for _ in range(r.choice((1, 2))))
        name = p.name if kind == "namesake_son" else p.name[:1] + given
        male = r.random() < 0.5
        return Person(index=-1, name=name, gender="男" if male else "女",
                      id_number=citizen_id(p.grid.district_code, birth,
                                           r.randint(0, 10**6), male),
                      birth_date=birth, ethnicity=p.ethnicity, phone=p.phone, grid=p.grid,
                      address=p.address, population_type=p.population_type)

    def generate(self, rows: int, first_index: int = 0, relatives: bool = True) -> Generated:
        """`rows` records of people from `first_index` on; some with a relative."""
        out = Generated([], [])
        index = first_index
        while len(out.rows) < rows:
            p = self.city.person(index % self.city.population)
            self.person_records(p, f"p{index}", out)
            roll = self.rng.random()
            kind = ("twin" if roll < 0.005 else "namesake_son" if roll < 0.01
                    else "family" if roll < 0.12 else None) if relatives else None
            if kind:
                self.person_records(self.relative(p, kind), f"p{index}-{kind}", out)
            index += 1
        return Generated(out.rows[:rows], out.truth[:rows])


def load(generated: Generated, stream: str) -> None:
    """The records into core.person as the pipeline stores them (hashed, masked)."""
    n = len(generated.rows)
    table = pa.Table.from_pylist(generated.rows)
    cols = {c: table[c].cast(pa.date32() if c == "birth_date" else pa.string())
            for c in table.column_names if c != "source_system"}
    stored = protect(PERSON, build(PERSON, cols, n))
    stored = (stored
              .append_column("source_system", table["source_system"])
              .append_column("source_stream", pa.array([stream] * n))
              .append_column("record_hash", pa.array([f"h{i}" for i in range(n)]))
              .append_column("valid_from", pa.array([datetime.now(UTC)] * n,
                                                    pa.timestamp("us", tz="UTC"))))
    with connect(Role.LOADER) as conn:
        copy_arrow(conn, stored, sql.Identifier("core", "person"))


def settle(url: str) -> None:
    """What follows a load of a million rows, done before the link is timed: the vacuum
    and analyze the server's autovacuum would start on core.person, and a checkpoint of
    the new pages. They are the load's work; left to run, they land in the link's time
    or not, by chance."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) core.person")
        try:
            conn.execute("CHECKPOINT")
        except psycopg.errors.InsufficientPrivilege:
            pass  # a warehouse whose owner is no superuser: its own checkpoints then


def scores(url: str, truth: dict[tuple[str, str], str]) -> dict[str, float]:
    """Pairwise precision and recall of the clusters against the truth: overall, and for
    pairs at least one record of which has no ID number (what the model decides)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT source_system, source_id, person_key,"
                            " id_number_hash IS NOT NULL FROM core.person"
                            " WHERE valid_to IS NULL").fetchall()
    frame = pd.DataFrame(rows, columns=["system", "id", "key", "has_id"])
    frame["truth"] = [truth[(s, i)] for s, i in zip(frame["system"], frame["id"], strict=True)]

    def pairs(groups: pd.Series) -> int:
        return int((groups * (groups - 1) // 2).sum())

    def counts(f: pd.DataFrame) -> tuple[int, int, int]:
        return (pairs(f.groupby(["key", "truth"]).size()), pairs(f.groupby("key").size()),
                pairs(f.groupby("truth").size()))

    tp, predicted, true = counts(frame)
    tp_id, predicted_id, true_id = counts(frame[frame["has_id"]])
    out = {"precision": tp / predicted if predicted else 1.0,
           "recall": tp / true if true else 1.0,
           "precision_without_id": (tp - tp_id) / (predicted - predicted_id)
           if predicted > predicted_id else 1.0,
           "recall_without_id": (tp - tp_id) / (true - true_id) if true > true_id else 1.0,
           "false_pairs": predicted - tp, "missed_pairs": true - tp,
           "records": len(frame), "people": frame["truth"].nunique(),
           "goldens": frame["key"].nunique()}
    return out


def _timed(full: bool) -> tuple[LinkSummary, float]:
    started = time.perf_counter()
    with connect(Role.LOADER) as conn:
        summary = link_people(conn, full=full)
        conn.commit()
    return summary, time.perf_counter() - started


def _report(label: str, rows: int, summary: LinkSummary, seconds: float) -> None:
    steps = ", ".join(f"{k} {v:.1f}" for k, v in summary.seconds.items())
    print(f"{label}: {rows:,} records in {seconds:.1f} s = {rows / seconds:,.0f} records/s"
          f" (compared {summary.compared:,}, pairs {summary.pairs_scored:,}; {steps})")
    print(f"   links {summary.links} ({summary.register_links:,} a register decided);"
          f" clusters {summary.clusters:,}"
          f" ({summary.multi_record_clusters:,} of several records); keys kept"
          f" {summary.keys_kept:,}, new {summary.keys_new:,}, retired {summary.keys_retired:,}")


def _print_scores(label: str, s: dict[str, float]) -> None:
    print(f"   {label}: precision {s['precision']:.4f}, recall {s['recall']:.4f},"
          f" F1 {harmonic(s['precision'], s['recall']):.4f};"
          f" without an ID on both sides: precision {s['precision_without_id']:.4f},"
          f" recall {s['recall_without_id']:.4f} ({s['false_pairs']:,} false pairs,"
          f" {s['missed_pairs']:,} missed; {s['records']:,} records of {s['people']:,}"
          f" people in {s['goldens']:,} goldens)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--new", type=int, default=10_000,
                        help="records added before the incremental run")
    parser.add_argument("--seed", type=int, default=SEED,
                        help="another seed is another city: other people, names and families")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args(argv)

    admin = _point_at_bench_database()
    migrate()
    url = os.environ["HUB_WAREHOUSE_URL"]
    # People enough that the city's name pool gives namesakes, as a real city's does.
    city = City("2111", seed=args.seed, scale=max(0.01, args.rows / 1_400_000))
    population = Population(city, args.seed)
    print(f"seed {args.seed}", file=sys.stderr)
    started = time.perf_counter()
    first = population.generate(args.rows)
    load(first, "bench")
    settle(url)
    print(f"generated and loaded {args.rows:,} records in {time.perf_counter() - started:.1f} s",
          file=sys.stderr)
    truth = {(str(r["source_system"]), str(r["source_id"])): t
             for r, t in zip(first.rows, first.truth, strict=True)}

    summary, seconds = _timed(full=True)
    _report("full link", args.rows, summary, seconds)
    _print_scores("against the truth", scores(url, truth))

    # New records: half new people, half new records of people already known.
    start = max(int(t.split("-")[0][1:]) for t in first.truth) + 1
    fresh = population.generate(args.new // 2, first_index=start)
    known = population.generate(args.new - len(fresh.rows), relatives=False)
    for g in (fresh, known):
        load(g, "bench_new")
        truth.update({(str(r["source_system"]), str(r["source_id"])): t
                      for r, t in zip(g.rows, g.truth, strict=True)})
    summary, seconds = _timed(full=False)
    _report(f"incremental link of {args.new:,} new records", args.new, summary, seconds)
    _print_scores("against the truth", scores(url, truth))

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (RSS): {peak_mb:,.0f} MB")
    if not args.keep:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
