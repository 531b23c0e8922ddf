"""The simulators' ground truth (sandbox.truth), the incidents several platforms report
(sandbox.incidents) and the planted hard negatives of linking (sandbox.city)."""

from __future__ import annotations

import csv
import re
import unicodedata
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pyarrow as pa
import pytest

from base import identity
from conform.derived import person_keys
from connectors.gridmgmt import resident_keys
from sandbox import incidents
from sandbox.city import HOMOPHONES, RELATIONS, City, fullwidth, id_variant, name_typo
from sandbox.citymgmt import CityMgmtData
from sandbox.gridmgmt import GridData
from sandbox.hotline12345 import HotlineData
from sandbox.platform import DemoPlatform
from sandbox.truth import FIELDS, simulator_of, truth_rows, write_truth
from sandbox.video import INCIDENT_SPACING, VideoData
from sandbox.zongzhi import ZongzhiData

END = datetime(2026, 11, 20)
DAYS = 3


@pytest.fixture(scope="module")
def city() -> City:
    return City("2111", scale=0.01)


@pytest.fixture(scope="module")
def platforms(city: City) -> dict[str, object]:
    hotline = HotlineData(city, days=DAYS, end=END)
    return {"hl": hotline, "grid": GridData(city, days=DAYS, end=END),
            "cm": CityMgmtData(city, days=DAYS, end=END),
            "zz": ZongzhiData(city, days=DAYS, end=END, hotline=HotlineData(city, DAYS, END)),
            "vid": VideoData(city, days=DAYS, end=END)}


@pytest.fixture(scope="module")
def truth(platforms: dict[str, object], tmp_path_factory: pytest.TempPathFactory
          ) -> list[dict[str, str]]:
    path = tmp_path_factory.mktemp("truth") / "truth.csv"
    n = write_truth(platforms, path)
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == FIELDS and len(rows) == n
    return rows


def ids_of(rows: list[dict[str, str]], entity: str, source: str) -> dict[str, str]:
    return {r["source_id"]: r["truth_id"] for r in rows
            if r["entity"] == entity and r["source_system"] == source}


# ------------------------------------------------------------------ every record


def test_every_record_is_listed_once(truth):
    keys = Counter((r["entity"], r["source_system"], r["source_id"]) for r in truth)
    assert max(keys.values()) == 1
    assert {r["entity"] for r in truth} == {"person", "organization", "event"}


def test_the_truth_covers_every_event_emitted(platforms, truth):
    hl, grid, cm, zz, vid = (platforms[k] for k in ("hl", "grid", "cm", "zz", "vid"))
    assert set(ids_of(truth, "event", "hl")) == set(hl.orders)
    assert set(ids_of(truth, "event", "grid")) == set(grid.events)
    assert set(ids_of(truth, "event", "cm")) == set(cm.cases)
    assert set(ids_of(truth, "event", "zz")) == set(zz.disputes)
    assert set(ids_of(truth, "event", "vid")) == {a["alarmId"] for a in vid.alarms}
    # A 12345 incident called in several times is one incident; so is the case or dispute
    # transferred from one of its orders.
    hotline = ids_of(truth, "event", "hl")
    assert len(set(hotline.values())) < len(hotline)
    for no, t in cm.case_truth.items():
        if t.hotline_order_no:
            assert ids_of(truth, "event", "cm")[no] == hotline[t.hotline_order_no]


def test_the_truth_covers_every_person_and_organization_emitted(platforms, truth):
    hl, grid, zz = platforms["hl"], platforms["grid"], platforms["zz"]
    # Callers as the hub keys them: by ID number, else phone.
    orders = list(hl.orders.values())
    keys = person_keys("caller", identity.citizen_ids(identity.blank_to_null(
        pa.array([o["callerIdNo"] for o in orders], pa.string()))),
        identity.phones(pa.array([o["callerPhone"] for o in orders], pa.string())))
    callers = ids_of(truth, "person", "hl")
    assert set(keys.to_pylist()) == set(callers)
    assert all(c.startswith("caller:") for c in callers)
    residents = ids_of(truth, "person", "grid")
    present = grid.residents_ever()
    resident_ids = {k for k in residents if k.startswith("resident:")}
    # One key per ID number: now and then two people of a district born on one day share
    # one (身份证重号, as in life), and the truth names one of them.
    numbers = {identity.citizen_id_identity(identity.citizen_id(grid.resident(i)["公民身份号码"])
                                            or "") for i in present}
    assert len(resident_ids) == len(numbers) >= len(present) - 5
    assert {residents[k] for k in resident_ids} <= {str(i) for i in present}
    named = {i for t in grid.truth.events.values() for i in t.party_indices}
    assert {v for k, v in residents.items() if k.startswith("party:")} == {str(i) for i in named}
    parties = {str(i) for t in zz.truth.values() for i in t.party_indices}
    assert set(ids_of(truth, "person", "zz").values()) <= parties
    # Organizations: the register's, the departments, the committees.
    served = {o["handleDept"] for o in hl.orders.values() if o["handleDept"]}
    assert served <= set(ids_of(truth, "organization", "hl"))
    assert {r["dept_code"] for r in platforms["cm"].cases.values() if r["dept_code"]} \
        <= set(ids_of(truth, "organization", "cm"))
    orgs = ids_of(truth, "organization", "grid")
    assert all(v.startswith("org:") for v in orgs.values()) and len(orgs) >= 20
    assert set(ids_of(truth, "organization", "zz")) == {o["code"] for o in zz.orgs}


def test_one_resident_in_several_spellings_is_one_key(platforms):
    grid = platforms["grid"]
    index = grid.truth.id_forms
    spellings = {r["公民身份号码"] for day in grid.delivered for r in grid.residents_on(day)
                 if grid.city.person(index).name == r["姓名"]
                 and r["出生日期"] == grid.city.person(index).birth_date.isoformat()}
    assert len(spellings) >= 2
    table = pa.table({"公民身份号码": list(spellings), "姓名": [""] * len(spellings),
                      "出生日期": [""] * len(spellings), "现住址": [""] * len(spellings)})
    assert len(set(resident_keys(table).to_pylist())) == 1


def test_a_demo_platform_or_a_server_gives_its_simulator(platforms, tmp_path: Path):
    grid = platforms["grid"]
    demo = DemoPlatform(settings={}, env={}, advance=lambda: 0, stop=lambda: None,
                        simulator=type("Server", (), {"data": grid})())
    assert simulator_of(demo) is grid and simulator_of(grid) is grid
    with pytest.raises(ValueError, match="without its simulator"):
        simulator_of(DemoPlatform(settings={}, env={}, advance=lambda: 0, stop=lambda: None))
    with pytest.raises(TypeError):
        truth_rows("x", object())


# ------------------------------------------------------------------ incidents


def test_incidents_reach_two_or_three_platforms_in_their_own_words(platforms, truth):
    sources: dict[str, set[str]] = defaultdict(set)
    for r in truth:
        if r["entity"] == "event":
            sources[r["truth_id"]].add(r["source_system"])
    shared = {t: s for t, s in sources.items() if t.startswith("X")}
    assert shared and all(len(s) >= 2 for s in shared.values())
    together = {frozenset(s) for s in shared.values()}
    assert frozenset({"grid", "hl"}) <= frozenset().union(*together)
    assert any({"vid", "cm"} <= s for s in together)  # a camera alarm and a 数字城管 case
    assert any(len(s) == 3 for s in together)
    hl, grid = platforms["hl"], platforms["grid"]
    # A grid worker's report and a 12345 call of one incident: minutes to hours apart,
    # in other categories and words, tens of metres apart.
    pairs = 0
    for event_id, t in grid.truth.events.items():
        calls = [no for no, o in hl.truth.items() if o.incident_id == t.incident_id]
        if t.incident_id is None or not calls:
            continue
        event, order = grid.events[event_id], hl.orders[calls[0]]
        gap = abs(datetime.fromisoformat(event["reportTime"])
                  - datetime.fromisoformat(order["acceptTime"]))
        if not (t.defects or hl.truth[calls[0]].defects):  # no planted time of the future
            # One report to the next: 5 minutes to 4 hours, two steps with a third between.
            assert timedelta(minutes=5) <= gap <= timedelta(hours=8)
        assert event["description"] != order["content"]
        assert hl.truth[calls[0]].grid_code == t.grid_code
        pairs += 1
    assert pairs


def test_reports_of_one_incident_name_its_place_and_transfers_are_on_the_case(platforms,
                                                                            truth):
    hl, grid, cm = platforms["hl"], platforms["grid"], platforms["cm"]
    place_of = {t.incident_id: o["address"] for no, o in hl.orders.items()
                if (t := hl.truth[no]).incident_id and "hostile_text" not in t.defects}
    named = 0
    for event_id, t in grid.truth.events.items():
        place = place_of.get(t.incident_id or "")
        text = grid.events[event_id]["description"]
        if place and place.split("号")[0] in text:
            named += 1
    assert named  # the grid worker names the place the caller named
    # A 12345 order transferred to 数字城管: the case quotes its number, one incident.
    events = ids_of(truth, "event", "hl")
    transfers = [(c, t.hotline_order_no) for c, t in cm.case_truth.items() if t.hotline_order_no]
    assert transfers
    for case_no, order_no in transfers:
        assert f"工单号：{order_no}" in cm.cases[case_no]["description"]
        assert ids_of(truth, "event", "cm")[case_no] == events[order_no]


def test_a_camera_alarms_again_while_an_incident_lasts(platforms):
    video = platforms["vid"]
    by_incident: dict[str, list[dict]] = defaultdict(list)
    for alarm in video.alarms:
        incident_id = video.alarm_truth[alarm["alarmId"]].incident_id
        if incident_id and incident_id.startswith("V"):
            by_incident[incident_id].append(alarm)
    assert by_incident
    for alarms in by_incident.values():
        times = sorted(a["alarmTime"] for a in alarms)
        assert len(alarms) >= 2 and len({(a["deviceId"], a["alarmType"]) for a in alarms}) == 1
        assert all(0 < b - a <= 21 * 60_000 for a, b in pairwise(times))  # 3–20 minutes
    # The camera's next incident of that type comes hours later.
    firsts: dict[tuple[str, str], list[int]] = defaultdict(list)
    for alarms in by_incident.values():
        first = min(alarms, key=lambda a: a["alarmTime"])
        firsts[(first["deviceId"], first["alarmType"])].append(first["alarmTime"])
    spacing_ms = INCIDENT_SPACING.total_seconds() * 1000 - 1000
    for times in firsts.values():
        assert all(b - a >= spacing_ms for a, b in pairwise(sorted(times)))


def test_shared_incidents_are_a_pure_function_of_the_day(city):
    day = END.date()
    assert incidents.shared_incidents(city, day) == incidents._generate(city, day)
    assert incidents.shared_incidents(city, day) != incidents.shared_incidents(
        city, day - timedelta(days=1))
    many = [i for d in range(6) for i in incidents.shared_incidents(
        City("2111", scale=0.5), day - timedelta(days=d))]
    assert len(many) == 6 * 60
    assert {i.channels and frozenset(i.channels) for i in many} == {
        frozenset(p) for p, _ in incidents.PATTERNS}
    for incident in many:
        assert [r.at for r in incident.reports] == sorted(r.at for r in incident.reports) \
            or incidents.VIDEO in incident.channels
        assert all(r.kind in incident.theme.vocabulary(r.channel) for r in incident.reports)


def test_volumes_still_follow_the_scale(city):
    # The reports of shared incidents take the place of as many of a platform's own.
    video = VideoData(city, days=2, end=END)
    assert len(video.alarms) == 2 * 200
    assert sum(t.incident_id is not None for t in video.alarm_truth.values()) > 0


# ------------------------------------------------------------------ people


def test_hard_negatives_are_planted_and_in_the_residents_files(city, platforms):
    grid = platforms["grid"]
    present = set(grid.residents_ever())
    kinds: Counter[str] = Counter()
    for index in range(city.population):
        person = city.person(index)
        if person.relation is None:
            continue
        kinds[person.relation] += 1
        assert person.related_to == index - len(city.grids)
        other = city.person(person.related_to)
        assert person.grid == other.grid and person.id_number != other.id_number
        if person.relation == "twin":
            assert (person.birth_date, person.address) == (other.birth_date, other.address)
            assert person.name != other.name
        elif person.relation == "namesake":
            assert person.name == other.name and person.birth_date != other.birth_date
        else:
            assert person.phone == other.phone and person.address == other.address
            older, younger = sorted((person, other), key=lambda p: p.birth_date)
            assert person.relation == ("child" if person is younger else "parent")
            assert 24 <= (younger.birth_date - older.birth_date).days // 365 <= 35
        assert other.relation is None  # relations do not chain
    n = city.population
    assert 0.003 * n <= kinds["twin"] <= 0.01 * n
    assert 0.005 * n <= kinds["namesake"] <= 0.02 * n
    assert 0.02 * n <= kinds["child"] + kinds["parent"] <= 0.04 * n
    # The floor: the first of the second row carry one each, whatever the scale.
    tiny = City("2111", scale=0.0001)
    assert [tiny.person(len(tiny.grids) + k).relation for k in range(3)][:2] == ["twin",
                                                                                 "namesake"]
    assert tiny.person(len(tiny.grids) + 2).relation in ("child", "parent")
    assert set(RELATIONS) == {"twin", "namesake", "shared_phone"}
    # Both of a pair in the residents files, as two records.
    rows = {i: grid.resident(i) for i in present}
    for kind in ("twin", "namesake", "child"):
        pairs = [(i, city.person(i).related_to) for i in present
                 if city.person(i).relation == kind and city.person(i).related_to in present]
        assert pairs, kind
        i, j = pairs[0]
        assert rows[i]["公民身份号码"] != rows[j]["公民身份号码"]


def test_person_variation_on_the_platforms(platforms):
    grid, hl, zz = platforms["grid"], platforms["hl"], platforms["zz"]
    planted = Counter(k for t in grid.truth.residents.values() for k in t.defects)
    assert {"id_fullwidth", "phone_fullwidth", "name_typo", "moved", "id_legacy15",
            "name_variant"} <= set(planted)
    for index, t in grid.truth.residents.items():
        row, person = grid.resident(index), grid.city.person(index)
        if "id_fullwidth" in t.defects:
            assert row["公民身份号码"] != person.id_number
            assert unicodedata.normalize("NFKC", row["公民身份号码"]) == person.id_number
        if "moved" in t.defects:
            assert row["所属网格"] != person.grid.code and row["现住址"] != person.address
        if "name_typo" in t.defects:
            assert row["姓名"] != person.name and len(row["姓名"]) == len(person.name)
    missing = sum(o["callerIdNo"] == "" for o in hl.orders.values())
    assert 0.3 * len(hl.orders) <= missing <= 0.8 * len(hl.orders)  # most callers give none
    zz_kinds = {k for t in zz.truth.values() for k in t.defects}
    assert {"party_name_typo", "party_name_variant", "party_id_fullwidth",
            "party_phone_fullwidth"} <= zz_kinds


def test_name_typos_and_fullwidth_spellings():
    import random

    rng = random.Random(3)
    assert {name_typo("张伟", rng) for _ in range(30)} <= {"张玮", "张炜", "章伟"}
    assert {name_typo("李娜", rng) for _ in range(30)} <= {"李纳", "黎娜"}
    typos = [name_typo("王浩", rng) for _ in range(200)]
    assert "王洁" in typos or "玉浩" in typos  # now and then a look-alike, not a homophone
    assert all(ch in HOMOPHONES for ch in "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超")
    assert fullwidth("21110319900101104X") == "２１１１０３１９９００１０１１０４Ｘ"
    assert id_variant("21110319900101104X", rng, "fullwidth") == (
        fullwidth("21110319900101104X"), "fullwidth")
    assert re.fullmatch(r"\d{15}", id_variant("211103199001011045", rng, "legacy15")[0])
