"""A register decides what the pairs leave open (link.registers), over a real warehouse.

The grid platform's residents hold each person once; of the 12345 callers who gave an ID
number, most are residents. A caller who gave only a name and a phone, and the one
resident of that name in the street (registered without a phone), are scored below a
match pairwise; the register links them, in a full run and in an incremental one. Two
phoneless residents of the caller's name: neither.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, timedelta

import psycopg
import pytest

from link.people import LinkSummary
from sandbox.city import citizen_id
from tests.integration.test_person_linking import insert, keys, person, run
from tests.support.own_warehouse import migrated

REGISTER = "gridmgmt/resident"
# People enough for a trained model (link.person_model.MIN_TRAIN_RECORDS), all in one
# street: a shared street is no evidence, and a caller known by a name and a phone the
# resident record lacks is scored below a match.
RESIDENTS = 2_000
# Of the callers who gave an ID number: these many are residents (some called twice), the
# others not.
CALLERS_ON_IT, CALLING_TWICE, CALLERS_ELSEWHERE = 500, 50, 100
SURNAMES = "赵钱孙吴郑冯陈褚卫蒋沈韩杨朱秦尤许何吕施"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉萍红"


def _birth(serial: int) -> date:
    return date(1940, 1, 1) + timedelta(days=serial)


def _id(serial: int) -> str:
    return citizen_id("211103", _birth(serial), serial, True)


def _name(serial: int) -> str:
    return (SURNAMES[serial % len(SURNAMES)] + GIVEN[serial // len(SURNAMES) % len(GIVEN)]
            + GIVEN[serial % len(GIVEN)])


def _population() -> list[dict]:
    """Residents with ID numbers and phones; callers who gave an ID, most of them residents,
    some twice (so the callers are no register: a register holds each person once)."""
    rows = [person("gridmgmt", f"R{i}", _name(i), id_number=_id(i), phone=f"1384000{i:04d}",
                   birth=_birth(i), gender="男")
            for i in range(RESIDENTS)]
    rows += [person("hotline12345", f"caller:{i}", _name(i), id_number=_id(i),
                    phone=f"1384000{i:04d}", role="caller") for i in range(CALLERS_ON_IT)]
    rows += [person("hotline12345", f"caller:again{i}", _name(i), id_number=_id(i),
                    phone=f"1384000{i:04d}", role="caller") for i in range(CALLING_TWICE)]
    rows += [person("hotline12345", f"caller:o{i}", _name(3000 + i), id_number=_id(3000 + i),
                    phone=f"1385000{i:04d}", role="caller") for i in range(CALLERS_ELSEWHERE)]
    return rows


@pytest.fixture
def own_warehouse(new_database: Callable[[str], str],
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[psycopg.Connection]:
    with migrated(new_database("registers"), monkeypatch) as conn:
        yield conn


def _evidence(db: psycopg.Connection, system: str, source_id: str) -> tuple[str, float, dict]:
    row = db.execute("SELECT method, match_probability, evidence FROM core.person_link"
                     " WHERE source_system = %s AND source_id = %s", (system, source_id)
                     ).fetchone()
    assert row is not None
    return row


def test_a_caller_is_the_one_phoneless_resident_of_her_name_in_her_street(own_warehouse):
    db = own_warehouse
    phoneless = [
        # One resident of her name in the street, registered without a phone.
        person("gridmgmt", "R-X", "李秀英", id_number=_id(5000), birth=_birth(5000),
               gender="女"),
        # Two residents of one name, both without a phone: a caller of that name is either.
        person("gridmgmt", "R-Y1", "王秀兰", id_number=_id(5001), birth=_birth(5001),
               gender="女"),
        person("gridmgmt", "R-Y2", "王秀兰", id_number=_id(5002), birth=_birth(5002),
               gender="女"),
    ]
    calls = [person("hotline12345", "caller:x", "李秀英", phone="13860001111", role="caller"),
             person("hotline12345", "caller:y", "王秀兰", phone="13860002222", role="caller")]
    insert(db, _population() + phoneless + calls)
    summary: LinkSummary = run(full=True)

    # rho: the share of the ID-bearing records elsewhere whose ID number is on the register.
    on_it = CALLERS_ON_IT + CALLING_TWICE
    rho = round(on_it / (on_it + CALLERS_ELSEWHERE), 4)
    model = db.execute("SELECT settings -> 'registers' FROM ops.link_model"
                       " ORDER BY trained_at DESC LIMIT 1").fetchone()
    assert model is not None and model[0] == {REGISTER: rho}
    k = keys(db)
    assert k[("hotline12345", "caller:x")] == k[("gridmgmt", "R-X")]
    assert k[("hotline12345", "caller:y")] not in {k[("gridmgmt", "R-Y1")],
                                                   k[("gridmgmt", "R-Y2")]}
    assert summary.register_links == 1
    method, probability, evidence = _evidence(db, "hotline12345", "caller:x")
    odds = rho / (1 - rho)  # one resident of the name in the street
    assert method == "probabilistic" and probability == pytest.approx(odds / (1 + odds))
    assert evidence["register"] == {"name": REGISTER, "rho": rho, "namesakes": 1}
    assert evidence["with"] == ["gridmgmt", "R-X"] and evidence["comparisons"]["phone"] == "null"

    # Incremental: a new phoneless resident, then her call.
    insert(db, [person("gridmgmt", "R-Z", "周桂英", id_number=_id(5003), birth=_birth(5003),
                       gender="女")])
    run()
    insert(db, [person("hotline12345", "caller:z", "周桂英", phone="13860003333",
                       role="caller")])
    again = run()
    assert again.mode == "incremental" and again.register_links == 1
    k = keys(db)
    assert k[("hotline12345", "caller:z")] == k[("gridmgmt", "R-Z")]
    run(full=True)
    assert keys(db) == k
