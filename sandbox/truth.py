"""Ground truth of the simulated platforms, as the hub will key it: the answer sheet for
linking (link.evaluate).

For every record a simulator emits — people, organizations, events — one row

    entity,source_system,source_id,truth_id

`entity` is person, organization or event; `source_system` the source's name (the hub's
`source_system` column: the name in the sources file, not the connector's); `source_id`
the record's key exactly as the hub stores it; `truth_id` what the record really is:

- person: the City.person index (`1234`): the same human on every platform;
- organization: `org:<index>` (City.organization, grid management's register),
  `dept:<name>` (a government department: the 12345 hotline names it, 数字城管 codes
  it, the video network names it as a camera's owner), `committee:<code>` (a 综治
  mediation committee);
- event: the incident: `H…` (one 12345 incident, maybe called in several times, and
  the 数字城管 cases and 综治 disputes transferred from it), `X…` (an incident several
  platforms report, sandbox.incidents: minutes to hours apart, in each platform's
  categories and words, naming one place and matter), `V…` (a camera alarming again
  while what it saw lasts), else `<source_system>:<source_id>` (a record that is an
  incident of its own).

Keys the hub derives from personal data are computed here with the hub's own functions,
under the hub's personal-data key (base.pii): a grid resident's `resident:<hash>`, a
12345 caller's `caller:<hash>`, a party's `party:<hash>`. Write the truth in the
environment the hub loads with (the same HUB_PII_KEY / HUB_HOME), or the keys will not
match. Such a key stands for an ID number, else a phone: where two people share a phone
and give no ID number (a parent and child), one hub record stands for both, and the
truth names the person of the latest record mentioning it, as the hub keeps that
record's details.

The truth covers what the simulators emitted up to now, a superset of what the hub
loaded (quarantined records, records not yet pulled): the evaluation counts only
records on both sides.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from base import identity
from conform.derived import person_keys
from conform.gridmgmt import party_key
from connectors.gridmgmt import resident_keys
from sandbox.citymgmt import CityMgmtData
from sandbox.gridmgmt import GridData
from sandbox.hotline12345 import HotlineData
from sandbox.platform import DemoPlatform
from sandbox.video import VideoData
from sandbox.zongzhi import ZongzhiData

FIELDS = ("entity", "source_system", "source_id", "truth_id")
ENTITIES = ("person", "organization", "event")
Simulator = HotlineData | GridData | CityMgmtData | ZongzhiData | VideoData


@dataclass(frozen=True)
class TruthRow:
    entity: str
    source_system: str
    source_id: str
    truth_id: str


def person_id(index: int) -> str:
    return str(index)


def department_id(name: str) -> str:
    return f"dept:{name}"


def singleton(source: str, source_id: str) -> str:
    return f"{source}:{source_id}"


def simulator_of(platform: object) -> Simulator:
    """The simulator data behind a DemoPlatform, a server or platform object (`.data`), or
    the data itself."""
    found: object = platform
    if isinstance(found, DemoPlatform):
        if found.simulator is None:
            raise ValueError("the platform was started without its simulator")
        found = found.simulator
    if not isinstance(found, Simulator):
        found = getattr(found, "data", None)
    if not isinstance(found, Simulator):
        raise TypeError(f"no simulator data in {type(platform).__name__}")
    return found


def truth_rows(source: str, platform: object) -> list[TruthRow]:
    """Every record the platform emitted, keyed as the hub stores it for source `source`."""
    data = simulator_of(platform)
    rows: Iterable[TruthRow]
    if isinstance(data, HotlineData):
        rows = _hotline(source, data)
    elif isinstance(data, GridData):
        rows = _gridmgmt(source, data)
    elif isinstance(data, CityMgmtData):
        rows = _citymgmt(source, data)
    elif isinstance(data, ZongzhiData):
        rows = _zongzhi(source, data)
    else:
        rows = _video(source, data)
    unique: dict[tuple[str, str], TruthRow] = {}
    for row in rows:
        unique[(row.entity, row.source_id)] = row  # a person: the latest mention stands
    return sorted(unique.values(), key=lambda r: (ENTITIES.index(r.entity), r.source_id))


def write_truth(platforms: Mapping[str, object], path: Path) -> int:
    """Write the truth of every platform (source name → DemoPlatform, server or simulator
    data) to one CSV at `path`; returns the number of records written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(FIELDS)
        for source in sorted(platforms):
            for row in truth_rows(source, platforms[source]):
                writer.writerow((row.entity, row.source_system, row.source_id, row.truth_id))
                n += 1
    return n


# ------------------------------------------------------------------- per platform


def _incident(source: str, source_id: str, incident_id: str | None) -> str:
    return incident_id or singleton(source, source_id)


def _people(source: str, keys: Iterable[str | None],
            mentions: Iterable[tuple[int, datetime]]) -> Iterator[TruthRow]:
    """Person rows from row-aligned keys and (person index, time of the record): where
    one key stands for several people, the latest record's person comes last (and wins)."""
    pairs = [(when, i, key, index) for i, (key, (index, when))
             in enumerate(zip(keys, mentions, strict=True)) if key is not None]
    for _, _, key, index in sorted(pairs, key=lambda p: (p[0], p[1])):
        yield TruthRow("person", source, key, person_id(index))


def _local(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S")


def _hotline(source: str, data: HotlineData) -> Iterator[TruthRow]:
    orders = list(data.orders.values())
    for r in orders:
        truth = data.truth[r["orderNo"]]
        yield TruthRow("event", source, r["orderNo"],
                       _incident(source, r["orderNo"], truth.incident_id))
    # Callers: conform.hotline12345 keys them by ID number, else phone.
    ids = identity.citizen_ids(identity.blank_to_null(
        pa.array([r["callerIdNo"] for r in orders], pa.string())))
    phones = identity.phones(pa.array([r["callerPhone"] for r in orders], pa.string()))
    keys = person_keys("caller", ids, phones).to_pylist()
    yield from _people(source, keys, [(data.truth[r["orderNo"]].person_index,
                                       _local(r["updateTime"])) for r in orders])
    for name in sorted({n.strip() for n in data.departments()} - {""}):
        yield TruthRow("organization", source, name, department_id(name))


def _gridmgmt(source: str, data: GridData) -> Iterator[TruthRow]:
    # Residents: the connector's key, a keyed hash of the ID number's identity.
    indices = data.residents_ever()
    rows = [data.resident(i) for i in indices]
    table = pa.table({c: pa.array([r[c] for r in rows], pa.string())
                      for c in ("公民身份号码", "姓名", "出生日期", "现住址")})
    for index, key in zip(indices, resident_keys(table).to_pylist(), strict=True):
        yield TruthRow("person", source, key, person_id(index))
    for index, org in data.orgs_ever():
        yield TruthRow("organization", source, org["统一社会信用代码"], f"org:{index}")
    # Events and the parties they name (conform.gridmgmt: party:<hash of the identity>).
    events = sorted(data.events.values(), key=lambda e: (e["updateTime"], e["eventId"]))
    party_ids: list[str] = []
    mentions: list[tuple[int, datetime]] = []
    for event in events:
        truth = data.truth.events[event["eventId"]]
        yield TruthRow("event", source, event["eventId"],
                       _incident(source, event["eventId"], truth.incident_id))
        named = [str(x).strip().strip('"') for x in event["partyIdNos"] or []]
        for id_no, index in zip(named, truth.party_indices, strict=True):
            if id_no:
                party_ids.append(id_no)
                mentions.append((index, _local(event["updateTime"])))
    normal = identity.citizen_ids(pa.array(party_ids, pa.string()))
    keys = identity.per_distinct(normal, party_key).to_pylist() if party_ids else []
    yield from _people(source, keys, mentions)


def _citymgmt(source: str, data: CityMgmtData) -> Iterator[TruthRow]:
    for case_no in sorted(data.cases):
        yield TruthRow("event", source, case_no,
                       _incident(source, case_no, data.case_truth[case_no].incident_id))
    for code, name in sorted(data.departments().items()):
        if code and code.strip():
            yield TruthRow("organization", source, code.strip(), department_id(name.strip()))


def _zongzhi(source: str, data: ZongzhiData) -> Iterator[TruthRow]:
    for org in data.orgs:
        yield TruthRow("organization", source, org["code"], f"committee:{org['code']}")
    disputes = list(data.disputes.values())
    parties: list[dict[str, Any]] = []
    mentions: list[tuple[int, datetime]] = []
    for d in disputes:
        truth = data.truth[d["caseId"]]
        yield TruthRow("event", source, d["caseId"],
                       _incident(source, d["caseId"], truth.incident_id))
        when = datetime.fromisoformat(d["updateTime"])
        for party, index in zip(d["parties"], truth.party_indices, strict=True):
            parties.append(party)
            mentions.append((index, when))
    # Parties: conform.zongzhi keys them by ID number, else phone.
    ids = identity.citizen_ids(identity.blank_to_null(
        pa.array([p.get("idNo") for p in parties], pa.string())))
    phones = identity.phones(pa.array([p.get("phone") for p in parties], pa.string()))
    keys = person_keys("party", ids, phones).to_pylist() if parties else []
    yield from _people(source, keys, mentions)


def _video(source: str, data: VideoData) -> Iterator[TruthRow]:
    with data.lock:
        alarms = [dict(a) for a in data.alarms]
        owners = {r["owner"].strip() for r in data.devices.values() if r.get("owner")}
    for alarm in alarms:
        truth = data.alarm_truth[alarm["alarmId"]]
        yield TruthRow("event", source, alarm["alarmId"],
                       _incident(source, alarm["alarmId"], truth.incident_id))
    for name in sorted(owners - {""}):
        yield TruthRow("organization", source, name, department_id(name))
