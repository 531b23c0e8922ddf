"""One organization however each platform names it: `core.organization.org_key`.

`link_organizations(conn)` gives every current core.organization record the key of its
golden organization (core.org_golden) and maps every name the platforms use, the
承办单位 of events included, to it (core.org_alias). In order:

1. **Code.** Records with the same valid 统一社会信用代码 (GB 32100 check character,
   `quality.checks.uscc`) are one organization. A code that fails the check links
   nothing (it is noted in the golden record's provenance), and two valid codes are
   never merged, whatever the names say.
2. **Name.** Records whose names have the same normal form (`normal_name`) are one
   organization: NFKC (full-width → half-width), brackets unified, blanks removed,
   有限责任公司 = 有限公司 (股份有限公司 stays distinct), the curated abbreviations of
   core.org_alias_curated expanded (城管局 → 城市管理综合行政执法局), a place in
   brackets put in front (城管局（兴隆台） → 兴隆台区城管局 …), a city name in front of
   one of its counties dropped, a curated whole-name alias applied. Branches
   (分公司, 分店, 营业部, 分局 …) keep names of their own, so they stay organizations of
   their own; `parent_key` links one to its parent when the parent is known.
3. **One name, several codes.** Where records with one normal form carry different
   valid codes, a record without a code joins the code whose records share its legal
   representative, phone or address, if exactly one does; otherwise it stays apart and
   the name is marked ambiguous in core.org_alias.
4. **承办单位.** Each handling organization name of current events is mapped through
   its normal form; a name no record carries becomes a golden organization of its own
   (members 0), so every 承办单位 has a key.

Keys are stable: a golden organization keeps the key most of its records carried
while any of them remains (the larger organization wins when one splits); a new one
gets `org_` + 16 hex digits of a hash of its code (or its normal name), so a warehouse
linked from scratch gets the same keys. A key no record carries any more is retired in
core.org_golden, with the key its records moved to. Only rows whose values change are
written, in one transaction (as hub_loader), and the run is noted in ops.link_run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import psycopg
import pyarrow as pa
from psycopg import sql

from link.runs import database_now, record_link_run
from quality import checks

log = logging.getLogger(__name__)

# Any constant: two linking runs never interleave their writes.
_LOCK = 4_271_996_011

# ---------------------------------------------------------------------------- names

_BLANKS = re.compile(r"[\s\u00b7\u2022\u30fb]+")  # blanks, middle dots
_OPEN = str.maketrans({c: "(" for c in "[{【〔〖「『"} | {c: ")" for c in "]}】〕〗」』"})
_LLC = ("有限责任公司", "有限公司")
# A department, office or unit of government rather than a company: a short place name
# in front of one means the county or city (兴隆台城管局 = 兴隆台区城管局).
_GOVERNMENT_ENDINGS = ("局", "委员会", "委", "办公室", "办事处", "办", "中心", "支队", "大队",
                       "中队", "政府", "处", "所", "站", "院", "队", "厅")
_BRACKETED_TAIL = re.compile(r"^(.+?)\(([^()]+)\)$")
# Branches: a parent organization's name, then the branch's own part.
# The parent's name is the longest that ends like an organization's
# (中国工商银行股份有限公司盘锦分行 → 中国工商银行股份有限公司).
_BRANCH = re.compile(r"^(.*(?:公司|集团|局|银行|中心|店|厂|所))(.*?(?:分公司|分店|营业部|分局"
                     r"|分行|支行|分部|分厂|分所|分中心))$")
_COUNTY_SUFFIXES = ("自治县", "区", "县", "市", "旗")


@dataclass(frozen=True)
class Place:
    code: str
    name: str  # full name: 兴隆台区


@dataclass
class NameRules:
    """What `normal_name` needs besides the name: curated aliases and the places of the
    city (counties and cities whose short name may stand for them)."""

    words: Mapping[str, str] = field(default_factory=dict)  # abbreviation → full word
    names: Mapping[str, str] = field(default_factory=dict)  # whole name → canonical name
    counties: Mapping[str, Place] = field(default_factory=dict)  # full or short name → county
    cities: Mapping[str, Place] = field(default_factory=dict)  # full or short name → city
    _word_pattern: re.Pattern[str] | None = field(default=None, init=False, repr=False)
    _names_normal: dict[str, str] | None = field(default=None, init=False, repr=False)

    def word_pattern(self) -> re.Pattern[str] | None:
        if self._word_pattern is None and self.words:
            # The full forms match themselves, so a full word is never expanded again
            # (街道办 → 街道办事处 leaves 街道办事处 alone); the longest spelling first.
            spellings = set(self.words) | set(self.words.values())
            self._word_pattern = re.compile("|".join(
                re.escape(s) for s in sorted(spellings, key=lambda s: (-len(s), s))))
        return self._word_pattern

    def name_alias(self, normal: str) -> str | None:
        if self._names_normal is None:
            self._names_normal = {}
            for alias, canonical in self.names.items():
                self._names_normal[_normal(alias, self, curated=False)] = _normal(
                    canonical, self, curated=False)
        return self._names_normal.get(normal)


def basic_name(name: str) -> str:
    """The spelling-free form of a name: NFKC (full-width → half-width), brackets
    unified to (), blanks and middle dots removed, Latin letters upper case,
    有限责任公司 = 有限公司."""
    text = unicodedata.normalize("NFKC", name).translate(_OPEN)
    text = _BLANKS.sub("", text).upper()
    return text.replace(*_LLC)


def normal_name(name: str | None, rules: NameRules | None = None) -> str | None:
    """The normal form organization names are compared in (see the module's doc); None
    for a blank name."""
    if name is None or not name.strip():
        return None
    return _normal(name, rules or NameRules(), curated=True) or None


def _normal(name: str, rules: NameRules, *, curated: bool) -> str:
    text = basic_name(name)
    pattern = rules.word_pattern()
    if pattern is not None:
        words = rules.words
        text = pattern.sub(lambda m: words.get(m.group(0), m.group(0)), text)
    text = _place_in_front(text, rules)
    if curated:
        aliased = rules.name_alias(text)
        if aliased:
            text = aliased
    return text


def _place_in_front(text: str, rules: NameRules) -> str:
    # 城管局(兴隆台) → 兴隆台区城管局: a place in brackets at the end goes in front.
    if m := _BRACKETED_TAIL.match(text):
        place = rules.counties.get(m[2]) or rules.cities.get(m[2])
        if place is not None:
            text = place.name + m[1]
    # 盘锦市兴隆台区… → 兴隆台区…: the county says where; the city adds nothing.
    for spelling in _prefixes(text, rules.cities):
        city, rest = rules.cities[spelling], text[len(spelling):]
        county = next((c for c in _prefixes(rest, rules.counties)
                       if rules.counties[c].code[:4] == city.code[:4]), None)
        if county is not None:
            text = rules.counties[county].name + rest[len(county):]
            break
    # 兴隆台城管局 → 兴隆台区城管局: a short place name in front of a department.
    if text.endswith(_GOVERNMENT_ENDINGS):
        for table in (rules.counties, rules.cities):
            found = _prefixes(text, table)
            if found:
                place = table[found[0]]
                return place.name + text[len(found[0]):]
    return text


def _prefixes(text: str, table: Mapping[str, Place]) -> list[str]:
    """The keys of `table` that `text` starts with, longest first."""
    return sorted((k for k in (text[:n] for n in range(2, min(len(text), 12) + 1)) if k in table),
                  key=len, reverse=True)


def branch_parent(normal: str) -> str | None:
    """The normal name of the organization a branch belongs to (XX有限公司盘锦分公司 →
    XX有限公司), None for a name that is no branch."""
    m = _BRANCH.match(normal)
    return m[1] if m and m[2] else None


def valid_uscc(codes: list[str | None]) -> list[bool]:
    """Whether each code is a valid 统一社会信用代码 (format and GB 32100 check character),
    as the rule uscc_valid judges it."""
    if not codes:
        return []
    result = checks.uscc(pa.array(codes, pa.string()))
    return [bool(r == checks.PASSED) for r in result]


def _address_normal(address: str | None) -> str | None:
    if not address or not address.strip():
        return None
    return re.sub(r"[^\w]", "", basic_name(address)) or None


def _bigrams(text: str) -> set[str]:
    return {text[i:i + 2] for i in range(len(text) - 1)}


# Two addresses of one organization, keyed differently: character-bigram Jaccard at least.
ADDRESS_SIMILARITY = 0.7


def _similar_addresses(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    if a == b:
        return True
    x, y = _bigrams(a), _bigrams(b)
    return bool(x and y) and len(x & y) / len(x | y) >= ADDRESS_SIMILARITY

# ----------------------------------------------------------------------- the records


@dataclass
class _Record:
    row_id: int
    source_system: str
    source_id: str
    name: str | None
    normal: str | None
    uscc: str | None  # valid codes only
    uscc_given: str | None
    org_type: str | None
    legal_rep: str | None
    phone_hash: str | None
    address: str | None
    address_normal: str | None
    division_code: str | None
    street_code: str | None
    old_key: str | None
    rule: str = "own"


@dataclass
class _Golden:
    """A golden organization being built: records (indexes) and names of events."""

    records: list[int]
    event_names: dict[str, dict[str, int]] = field(default_factory=dict)  # name → system → n
    # 承办单位 names this organization shares with others (an ambiguous normal form).
    shared_event_names: dict[str, dict[str, int]] = field(default_factory=dict)
    key: str | None = None
    normal: str = ""


@dataclass(frozen=True)
class OrgLinkSummary:
    """What one `link_organizations` run did."""

    records: int  # current core.organization records linked
    organizations: int  # golden organizations in use
    # rule → records: uscc, name, alias (a curated spelling or a place form), legal_rep /
    # phone / address (one name, several codes), own (linked to no other record)
    linked_by: dict[str, int]
    records_updated: int  # records whose org_key changed
    keys_kept: int
    keys_new: int
    keys_retired: int
    handling_names: int  # distinct 承办单位 names of current events
    handling_names_linked: int  # … mapped to an organization that has records
    ambiguous_names: int
    seconds: float

    def as_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class _Sets:
    """Union-find over record indexes that never joins two different valid codes."""

    def __init__(self, codes: list[str | None]) -> None:
        self.parent = list(range(len(codes)))
        self.code = list(codes)

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:
            self.parent[i], i = root, self.parent[i]
        return root

    def union(self, a: int, b: int) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        ca, cb = self.code[ra], self.code[rb]
        if ca is not None and cb is not None and ca != cb:
            return False
        if rb < ra:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.code[ra] = ca or cb
        return True


def load_rules(conn: psycopg.Connection) -> NameRules:
    """The curated aliases (core.org_alias_curated) and the places of the city the
    warehouse holds data of: the cities and counties of its organizations' and grids'
    county codes (of its events' when those name none)."""
    words: dict[str, str] = {}
    names: dict[str, str] = {}
    for kind, alias, canonical in conn.execute(
            "SELECT kind, alias, canonical FROM core.org_alias_curated ORDER BY kind, alias"):
        if kind == "word":
            words[basic_name(alias)] = basic_name(canonical)
        else:
            names[alias] = canonical
    # The cities of the organizations and grids held (small tables); of the events only
    # when those name none.
    cities_held = [r[0] for r in conn.execute(
        "SELECT DISTINCT left(division_code, 4) FROM core.organization"
        " WHERE valid_to IS NULL AND division_code ~ '^[0-9]{6}$'"
        " UNION SELECT DISTINCT left(division_code, 4) FROM core.grid"
        " WHERE valid_to IS NULL AND division_code ~ '^[0-9]{6}$'")]
    if not cities_held:
        cities_held = [r[0] for r in conn.execute(
            "SELECT DISTINCT left(division_code, 4) FROM core.event"
            " WHERE valid_to IS NULL AND division_code ~ '^[0-9]{6}$'")]
    counties: dict[str, Place] = {}
    cities: dict[str, Place] = {}
    short_seen: Counter[str] = Counter()
    places = conn.execute(
        "SELECT code, name, level FROM core.division WHERE valid_to IS NULL"
        " AND level IN ('city', 'county') AND left(code, 4) = ANY(%s) AND retired_on IS NULL"
        " ORDER BY code", (cities_held,)).fetchall()
    shorts: list[tuple[str, Place, dict[str, Place]]] = []
    for code, name, level in places:
        place = Place(code, basic_name(name))
        table = cities if level == "city" else counties
        table[place.name] = place
        for suffix in _COUNTY_SUFFIXES:
            short = place.name[:-len(suffix)]
            if place.name.endswith(suffix) and len(short) >= 2:
                shorts.append((short, place, table))
                short_seen[short] += 1
                break
    for short, place, table in shorts:
        # A short name two places share (a 市辖区 and a county of one name) stands for none.
        if short_seen[short] == 1 and short not in table:
            table[short] = place
    return NameRules(words=words, names=names, counties=counties, cities=cities)


def _load_records(conn: psycopg.Connection, rules: NameRules) -> list[_Record]:
    rows = conn.execute(
        "SELECT row_id, source_system, source_id, org_name, uscc, org_type, legal_rep,"
        " phone_hash, address, division_code, street_code, org_key"
        " FROM core.organization WHERE valid_to IS NULL"
        " ORDER BY source_system, source_id").fetchall()
    codes = [r[4] for r in rows]
    valid = valid_uscc(codes)
    records = []
    for r, ok in zip(rows, valid, strict=True):
        records.append(_Record(
            row_id=r[0], source_system=r[1], source_id=r[2], name=r[3],
            normal=normal_name(r[3], rules), uscc=r[4] if ok else None, uscc_given=r[4],
            org_type=r[5], legal_rep=basic_name(r[6]) if r[6] and r[6].strip() else None,
            phone_hash=r[7], address=r[8], address_normal=_address_normal(r[8]),
            division_code=r[9], street_code=r[10], old_key=r[11]))
    return records


def _agrees(a: _Record, b: _Record) -> str | None:
    """The evidence that two records of one name are the same organization, if any."""
    if a.legal_rep and a.legal_rep == b.legal_rep:
        return "legal_rep"
    if a.phone_hash and a.phone_hash == b.phone_hash:
        return "phone"
    if _similar_addresses(a.address_normal, b.address_normal):
        return "address"
    return None


def _name_rule(record: _Record) -> str:
    """name: the name is the normal form but for spelling (NFKC, brackets, blanks,
    有限责任公司); alias: a curated abbreviation or name, or a place form, made it so."""
    return "name" if basic_name(record.name or "") == record.normal else "alias"


def _cluster(records: list[_Record]) -> tuple[_Sets, set[str]]:
    """Union the records (see the module's doc); also the normal names that stand for
    several organizations."""
    sets = _Sets([r.uscc for r in records])
    by_code: dict[str, list[int]] = defaultdict(list)
    by_name: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        if r.uscc:
            by_code[r.uscc].append(i)
        if r.normal:
            by_name[r.normal].append(i)
    for members in by_code.values():
        if len(members) > 1:
            for i in members:
                sets.union(members[0], i)
                records[i].rule = "uscc"
    ambiguous: set[str] = set()
    for normal, members in by_name.items():
        coded: dict[str, list[int]] = defaultdict(list)
        uncoded = []
        for i in members:
            code = records[i].uscc
            if code:
                coded[code].append(i)
            else:
                uncoded.append(i)
        if len(coded) <= 1:
            for i in members[1:]:
                sets.union(members[0], i)
            if len(members) > 1:
                for i in members:
                    if records[i].rule == "own":
                        records[i].rule = _name_rule(records[i])
            continue
        ambiguous.add(normal)
        apart: list[int] = []
        for i in uncoded:
            votes = {}
            for code, holders in coded.items():
                why = next((w for h in holders if (w := _agrees(records[i], records[h]))), None)
                if why:
                    votes[code] = why
            if len(votes) == 1:
                code, why = next(iter(votes.items()))
                sets.union(coded[code][0], i)
                records[i].rule = why
            else:
                apart.append(i)
        # Records of the name that agree with no code (or with several) stay together,
        # apart from the coded ones.
        for i in apart[1:]:
            sets.union(apart[0], i)
            records[i].rule = records[apart[0]].rule = _name_rule(records[i])
    return sets, ambiguous


def _hash_key(seed: str) -> str:
    return "org_" + hashlib.sha256(seed.encode()).hexdigest()[:16]


def _most(values: Iterable[str | None]) -> str | None:
    """The most frequent value, ties to the smallest; None when there is none."""
    given = [v for v in values if v]
    if len(given) <= 1:
        return given[0] if given else None
    counts = Counter(given)
    return min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]


def link_organizations(conn: psycopg.Connection) -> OrgLinkSummary:
    """Give every current core.organization record its golden organization's org_key and
    write core.org_golden and core.org_alias (see the module's doc), in one transaction."""
    started = time.perf_counter()
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        started_at = database_now(conn)
        rules = load_rules(conn)
        records = _load_records(conn, rules)
        sets, ambiguous = _cluster(records)
        goldens, golden_of = _goldens(records, sets)
        handling = _handling_names(conn)
        linked_names, name_only = _attach_handling(goldens, golden_of, records, handling,
                                                   rules, ambiguous)
        old_aliases: dict[str, str] = dict(conn.execute(
            "SELECT name, org_key FROM core.org_alias WHERE NOT ambiguous").fetchall())
        kept, new = _assign_keys(goldens, records, old_aliases)
        updated = _write_records(conn, goldens, records)
        retired = _write_goldens(conn, goldens, records, _parents(goldens), ambiguous)
        _write_aliases(conn, goldens, records, ambiguous)
        summary = OrgLinkSummary(
            records=len(records), organizations=len(goldens),
            linked_by=dict(sorted(Counter(r.rule for r in records).items())),
            records_updated=updated, keys_kept=kept, keys_new=new, keys_retired=retired,
            handling_names=len(handling), handling_names_linked=linked_names,
            ambiguous_names=len(ambiguous), seconds=round(time.perf_counter() - started, 3))
        record_link_run(conn, "organization", started_at, records=len(records),
                        compared=len(records) + len(handling), summary=summary.as_dict())
    log.info("organizations linked: %s (承办单位 known by no record: %d)", summary.as_dict(),
             name_only)
    return summary


def _goldens(records: list[_Record], sets: _Sets) -> tuple[list[_Golden], list[int]]:
    """The golden organizations being built, and the index of each record's."""
    index: dict[int, int] = {}
    goldens: list[_Golden] = []
    golden_of = []
    for i in range(len(records)):
        root = sets.find(i)
        if root not in index:
            index[root] = len(goldens)
            goldens.append(_Golden(records=[]))
        goldens[index[root]].records.append(i)
        golden_of.append(index[root])
    for g in goldens:
        g.normal = _most(records[i].normal for i in g.records) or ""
    return goldens, golden_of


def _handling_names(conn: psycopg.Connection) -> dict[str, dict[str, int]]:
    """承办单位 names of current events: name → source system → events."""
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for name, system, n in conn.execute(
            "SELECT btrim(handling_org), source_system, count(*) FROM core.event"
            " WHERE valid_to IS NULL AND handling_org IS NOT NULL AND btrim(handling_org) <> ''"
            " GROUP BY 1, 2"):
        out[name][system] = n
    return out


def _attach_handling(goldens: list[_Golden], golden_of: list[int], records: list[_Record],
                     handling: dict[str, dict[str, int]], rules: NameRules,
                     ambiguous: set[str]) -> tuple[int, int]:
    """Map each 承办单位 name to the golden organization of a record of its normal form;
    a name of an ambiguous normal form is left to core.org_alias (ambiguous); a name no
    record carries becomes a golden organization of its own. (linked, name-only)"""
    by_normal: dict[str, _Golden] = {}
    sharing: dict[str, dict[int, _Golden]] = defaultdict(dict)
    for i, r in enumerate(records):
        if r.normal and r.normal not in ambiguous:
            by_normal.setdefault(r.normal, goldens[golden_of[i]])
        elif r.normal:
            sharing[r.normal][golden_of[i]] = goldens[golden_of[i]]
    linked = name_only = 0
    for name in sorted(handling):
        normal = normal_name(name, rules)
        if normal is None:
            continue
        if normal in ambiguous:
            for shared in sharing[normal].values():
                shared.shared_event_names[name] = handling[name]
            continue
        g = by_normal.get(normal)
        if g is None:
            g = by_normal[normal] = _Golden(records=[], normal=normal)
            goldens.append(g)
            name_only += 1
        elif g.records:
            linked += 1
        g.event_names[name] = handling[name]
    return linked, name_only


def _assign_keys(goldens: list[_Golden], records: list[_Record],
                 old_aliases: Mapping[str, str]) -> tuple[int, int]:
    """Each golden organization keeps the key most of its records (or, with none, its
    names) carried, the bigger one first; the others get a new key. (kept, new)"""
    def size(g: _Golden) -> tuple[int, int, str]:
        ids = [f"{records[i].source_system}/{records[i].source_id}" for i in g.records]
        return (-len(g.records), -len(g.event_names), min(ids or [g.normal]))

    taken: set[str] = set()
    kept = new = 0
    for g in sorted(goldens, key=size):
        votes = Counter(records[i].old_key for i in g.records if records[i].old_key)
        if not g.records:
            votes.update(old_aliases[n] for n in g.event_names if n in old_aliases)
        choice = next((k for k, _ in sorted(votes.items(), key=lambda kv: (-kv[1], kv[0]))
                       if k not in taken), None)
        if choice is not None:
            kept += 1
        else:
            code = _most(records[i].uscc for i in g.records)
            seed = f"uscc:{code}" if code else f"name:{g.normal}"
            choice, n = _hash_key(seed), 1
            while choice in taken:
                n += 1
                choice = _hash_key(f"{seed}#{n}")
            new += 1
        g.key = choice
        taken.add(choice)
    return kept, new


def _parents(goldens: list[_Golden]) -> dict[str, str]:
    """Branch key → parent key, where the parent's normal name is one organization's."""
    by_normal: dict[str, list[str]] = defaultdict(list)
    for g in goldens:
        if g.normal and g.key:
            by_normal[g.normal].append(g.key)
    out = {}
    for g in goldens:
        parent = branch_parent(g.normal) if g.normal else None
        if parent and len(by_normal.get(parent, ())) == 1 and g.key:
            out[g.key] = by_normal[parent][0]
    return out


def _copy_rows(conn: psycopg.Connection, table: str, columns: str,
               rows: Iterable[tuple[object, ...]]) -> None:
    """COPY rows into a temporary table of this module (names are the module's own)."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table),
        sql.SQL(", ").join(sql.Identifier(c.strip()) for c in columns.split(",")))
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def _write_records(conn: psycopg.Connection, goldens: list[_Golden],
                   records: list[_Record]) -> int:
    changes = [(records[i].row_id, g.key) for g in goldens for i in g.records
               if records[i].old_key != g.key]
    if not changes:
        return 0
    conn.execute("CREATE TEMP TABLE org_key_change (row_id bigint PRIMARY KEY, org_key text)"
                 " ON COMMIT DROP")
    _copy_rows(conn, "org_key_change", "row_id, org_key", changes)
    return conn.execute(
        "UPDATE core.organization o SET org_key = c.org_key FROM org_key_change c"
        " WHERE o.row_id = c.row_id AND o.valid_to IS NULL"
        " AND o.org_key IS DISTINCT FROM c.org_key").rowcount


def _golden_row(g: _Golden, records: list[_Record], parents: Mapping[str, str],
                ambiguous: set[str]) -> tuple[str, tuple[object, ...], dict[str, object]]:
    """(key, the columns from name to source_systems, provenance) of a golden
    organization, as core.org_golden holds them."""
    rs = [records[i] for i in g.records]
    names = [r.name.strip() for r in rs if r.name and r.name.strip()]
    # The name the records use most, those with a valid code first; else an event's.
    name = (_most(r.name.strip() for r in rs if r.uscc and r.name) or _most(names)
            or min(g.event_names, default=g.normal))
    systems = sorted({r.source_system for r in rs}
                     | {s for by in g.event_names.values() for s in by})
    provenance: dict[str, object] = {
        "rules": dict(sorted(Counter(r.rule for r in rs).items())),
        "names": sorted(set(names) | set(g.event_names))[:20],
    }
    if g.event_names:
        provenance["handling_org_events"] = sum(n for by in g.event_names.values()
                                                for n in by.values())
    rejected = sorted({r.uscc_given for r in rs if r.uscc_given and not r.uscc})
    if rejected:
        provenance["uscc_rejected"] = rejected[:20]
    shared = sorted({r.normal for r in rs if r.normal in ambiguous})
    if shared:
        provenance["ambiguous_names"] = shared
    # Known only as an event's 承办单位: a handling department, as conform names them.
    org_type = _most(r.org_type for r in rs) or ("department" if g.event_names else None)
    assert g.key is not None
    return g.key, (name, g.normal, _most(r.uscc for r in rs), org_type,
                   _most(r.address for r in rs), _most(r.division_code for r in rs),
                   _most(r.street_code for r in rs), parents.get(g.key), len(rs),
                   systems), provenance


_GOLDEN_COLUMNS = ("org_key", "name", "name_normal", "uscc", "org_type", "address",
                   "division_code", "street_code", "parent_key", "members", "source_systems",
                   "provenance")


def _write_goldens(conn: psycopg.Connection, goldens: list[_Golden], records: list[_Record],
                   parents: Mapping[str, str], ambiguous: set[str]) -> int:
    """Write the golden organizations that are new or changed, retire those no record
    or name holds any more; returns the keys retired now."""
    held = {r[0]: r[1:] for r in conn.execute(
        "SELECT org_key, name, name_normal, uscc, org_type, address, division_code,"
        " street_code, parent_key, members, source_systems, provenance::text,"
        " retired_at IS NOT NULL FROM core.org_golden")}
    changed: list[tuple[object, ...]] = []
    in_use = set()
    for g in goldens:
        key, values, provenance = _golden_row(g, records, parents, ambiguous)
        in_use.add(key)
        before = held.get(key)
        if before is None or before[-1] or before[:-2] != values \
                or json.loads(before[-2]) != provenance:
            changed.append((key, *values,
                            json.dumps(provenance, ensure_ascii=False, sort_keys=True)))
    # Where a retired key's records went: the key most of them carry now.
    moved: dict[str, Counter[str]] = defaultdict(Counter)
    for g in goldens:
        for i in g.records:
            old = records[i].old_key
            if old and g.key and old != g.key:
                moved[old][g.key] += 1
    retire = [(key, _most(moved[key].elements()) if key in moved else None)
              for key, before in held.items() if key not in in_use and not before[-1]]
    if retire:
        conn.execute("CREATE TEMP TABLE org_key_retired (org_key text PRIMARY KEY,"
                     " replaced_by text) ON COMMIT DROP")
        _copy_rows(conn, "org_key_retired", "org_key, replaced_by", retire)
        conn.execute(
            "UPDATE core.org_golden g SET retired_at = now(), updated_at = now(), members = 0,"
            " uscc = NULL, replaced_by = r.replaced_by FROM org_key_retired r"
            " WHERE g.org_key = r.org_key")
    if changed:
        conn.execute("CREATE TEMP TABLE org_golden_stage (LIKE core.org_golden"
                     " INCLUDING DEFAULTS) ON COMMIT DROP")
        _copy_rows(conn, "org_golden_stage", ", ".join(_GOLDEN_COLUMNS), changed)
        # A code that moves from one kept key to another: free it before the upsert (one
        # golden organization per code, checked row by row).
        conn.execute(
            "UPDATE core.org_golden g SET uscc = NULL FROM org_golden_stage s"
            " WHERE s.org_key = g.org_key AND g.uscc IS NOT NULL"
            " AND g.uscc IS DISTINCT FROM s.uscc")
        conn.execute(
            "INSERT INTO core.org_golden AS g (org_key, name, name_normal, uscc, org_type,"
            " address, division_code, street_code, parent_key, members, source_systems,"
            " provenance) SELECT org_key, name, name_normal, uscc, org_type, address,"
            " division_code, street_code, parent_key, members, source_systems, provenance"
            " FROM org_golden_stage"
            " ON CONFLICT (org_key) DO UPDATE SET name = EXCLUDED.name,"
            " name_normal = EXCLUDED.name_normal, uscc = EXCLUDED.uscc,"
            " org_type = EXCLUDED.org_type, address = EXCLUDED.address,"
            " division_code = EXCLUDED.division_code, street_code = EXCLUDED.street_code,"
            " parent_key = EXCLUDED.parent_key, members = EXCLUDED.members,"
            " source_systems = EXCLUDED.source_systems, provenance = EXCLUDED.provenance,"
            " updated_at = now(), retired_at = NULL, replaced_by = NULL")
    return len(retire)


@dataclass
class _Alias:
    normal: str
    rule: str
    ambiguous: bool = False
    records: int = 0
    events: int = 0
    systems: set[str] = field(default_factory=set)


def _write_aliases(conn: psycopg.Connection, goldens: list[_Golden], records: list[_Record],
                   ambiguous: set[str]) -> None:
    """Every name → its golden organization(s), replacing what changed."""
    rows: dict[tuple[str, str], _Alias] = {}
    for g in goldens:
        assert g.key is not None
        single = len(g.records) + len(g.event_names) == 1
        for i in g.records:
            r = records[i]
            if r.name and r.name.strip() and r.normal:
                alias = rows.setdefault((r.name.strip(), g.key),
                                        _Alias(r.normal, "own" if single else r.rule))
                alias.records += 1
                alias.systems.add(r.source_system)
        for names, shared in ((g.event_names, False), (g.shared_event_names, True)):
            for name, by_system in names.items():
                rule = "own" if single and not shared else \
                    "name" if basic_name(name) == g.normal else "alias"
                alias = rows.setdefault((name, g.key), _Alias(g.normal, rule))
                alias.events += sum(by_system.values())
                alias.systems.update(by_system)
    keys_of: dict[str, set[str]] = defaultdict(set)
    for name, key in rows:
        keys_of[name].add(key)
    for (name, _), alias in rows.items():
        alias.ambiguous = len(keys_of[name]) > 1 or alias.normal in ambiguous
    held = {(r[0], r[1]): r[2:] for r in conn.execute(
        "SELECT name, org_key, name_normal, rule, ambiguous, records, events, source_systems"
        " FROM core.org_alias")}
    changed = [(name, key, a.normal, a.rule, a.ambiguous, a.records, a.events, sorted(a.systems))
               for (name, key), a in sorted(rows.items())
               if held.get((name, key)) != (a.normal, a.rule, a.ambiguous, a.records, a.events,
                                            sorted(a.systems))]
    gone = [k for k in held if k not in rows]
    if gone:
        conn.execute("CREATE TEMP TABLE org_alias_gone (name text, org_key text) ON COMMIT DROP")
        _copy_rows(conn, "org_alias_gone", "name, org_key", gone)
        conn.execute("DELETE FROM core.org_alias a USING org_alias_gone g"
                     " WHERE a.name = g.name AND a.org_key = g.org_key")
    if not changed:
        return
    conn.execute("CREATE TEMP TABLE org_alias_stage (LIKE core.org_alias INCLUDING DEFAULTS)"
                 " ON COMMIT DROP")
    _copy_rows(conn, "org_alias_stage",
               "name, org_key, name_normal, rule, ambiguous, records, events, source_systems",
               changed)
    conn.execute(
        "INSERT INTO core.org_alias AS a (name, org_key, name_normal, rule, ambiguous, records,"
        " events, source_systems) SELECT name, org_key, name_normal, rule, ambiguous, records,"
        " events, source_systems FROM org_alias_stage"
        " ON CONFLICT (name, org_key) DO UPDATE SET name_normal = EXCLUDED.name_normal,"
        " rule = EXCLUDED.rule, ambiguous = EXCLUDED.ambiguous, records = EXCLUDED.records,"
        " events = EXCLUDED.events, source_systems = EXCLUDED.source_systems, updated_at = now()")
