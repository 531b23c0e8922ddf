"""Reports of one incident, whatever platform they came through: `core.event.cluster_key`.

`cluster_incidents(conn)` puts the current core.event rows that report one incident
(a citizen's 12345 call, the 数字城管 case it was transferred to, a grid worker's
report, a camera's alarm) into one cluster, records each cluster of two or more
reports in core.incident_cluster with its lead report and the evidence, and writes
the cluster's key on its reports.

Two reports are linked (a *pair*) when
- **transfer** (deterministic): one names the other: its `transfer_ref`, or the 12345
  order number a 数字城管 case quotes in its text (工单号：…), is the other platform's
  key of the other report; or
- **near**: both have coordinates, lie within `distance_m` (haversine) and were reported
  within `window_hours` of each other; or **grid**: one of them has no coordinates, they
  share a grid and the time window; and, for near and grid, their categories are
  compatible (the same hub L1 category, or a pair of `COMPATIBLE_CATEGORIES`; an
  unmapped category is compatible with any) and they say the same: the character-bigram
  Jaccard similarity of title + description (Chinese characters only) is at least
  `text_threshold` + `text_stretch` × how far apart they are (the mean of time apart /
  window and distance / distance_m; a grid pair counts as distance_m apart): two calls
  ten minutes and metres apart need a few words in common, two reports three days and
  300 m apart nearly the same words. Reports with no text of their own (camera alarms,
  channel 视频: their text is the machine's) are not compared by text: they pair with a
  report of exactly the same hub category instead. Policy questions (政策咨询) have no
  place: they pair by transfer only.

Candidate pairs come from PostgreSQL: a hash self-join of the current events on one
packed key (distance-sized cell column and row, time bucket), so a report meets only
the reports of its 3 × 3 neighbouring cells in its own and the next time bucket;
distance, time and category are checked there too. Python reads the pairs in order of
the later report, a chunk of reports at a time, with the texts of that chunk's pairs
only, and clusters **greedily in time order**: a report joins the cluster of the
earlier report it matches best (transfer first, then the most similar text, then the
nearest) if that cluster's lead (its earliest report) is within the window, or the link
is a transfer; otherwise it leads a cluster of its own. A cluster so never spans more
than the window (bar transfers): a street vendor a camera sees every day for a month is
not one incident. What Python keeps across chunks is the membership of the clustered
reports, under 1 KB each (1,000,000 events, 384,000 of them clustered: 400 MB peak for
the whole process, measured).

A report alone keeps cluster_key NULL, which mart.event_current counts as a cluster of
one. Keys are stable: a cluster keeps the key whose lead it still contains (the
earliest such lead when two clusters merge), else the key most of its reports carried;
a new cluster gets `inc_` + 16 hex digits of a hash of its lead report's key, so a
warehouse clustered from scratch gets the same keys. Only rows whose key changes are
written, in one transaction (as hub_loader), and the run is noted in ops.link_run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import operator
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from conform.video import CHANNEL as CAMERA_CHANNEL
from link.runs import database_now, record_link_run

log = logging.getLogger(__name__)

# Any constant: two clustering runs never interleave their writes.
_LOCK = 4_271_996_012

# Hub L1 categories that one incident is often reported under (taxonomy.csv): a
# vendor on the pavement is 市容环境 to one caller and 街面秩序 to another, a noisy
# neighbour 环境保护 or 矛盾纠纷, a blocked fire lane 街面秩序 or 安全隐患.
COMPATIBLE_CATEGORIES: frozenset[tuple[str, str]] = frozenset({
    ("JM", "SR"),  # 街面秩序 · 市容环境: 占道经营 / 流动摊贩
    ("HB", "SC"),  # 环境保护 · 市场监管: 餐饮油烟 / 餐饮食品卫生
    ("HB", "MD"),  # 环境保护 · 矛盾纠纷: 噪声扰民 / 邻里纠纷
    ("AQ", "JM"),  # 安全隐患 · 街面秩序: 消防通道堵塞 / 违章停车
    ("AQ", "MD"),  # 安全隐患 · 矛盾纠纷: 房屋安全隐患 / 物业纠纷
    ("AQ", "SZ"),  # 安全隐患 · 市政设施: 井盖缺失, 路面塌陷
    ("JT", "SZ"),  # 交通出行 · 市政设施: 交通设施 / 道路破损
    ("MS", "SZ"),  # 民生服务 · 市政设施: 停水停暖 / 供排水
})
# Hub L1 categories without a place: two callers asking the same policy question are
# two questions, however close they live. They link by transfer only.
PLACELESS_CATEGORIES: tuple[str, ...] = ("ZC",)
# Channels whose text is made by a machine, not said by a person (an AI alarm's
# "AI告警 置信度 …"): such reports are matched by category, not by text.
MACHINE_TEXT_CHANNELS: tuple[str, ...] = (CAMERA_CHANNEL,)

_NOT_CJK = re.compile(r"[^\u4e00-\u9fff]+")
_MIN_BIGRAMS = 3  # fewer: no text to compare
_CHUNK = 50_000  # later reports per read of pairs
_EARTH_M = 6_371_008.8


@dataclass(frozen=True)
class IncidentSummary:
    """What one `cluster_incidents` run did."""

    events: int  # current events considered
    located: int  # … with usable coordinates
    pairs: dict[str, int]  # candidate pairs by rule (transfer, near, grid)
    pairs_matched: int  # candidate pairs that passed category and text
    clusters: int  # clusters of two or more reports
    clustered_events: int  # reports in them
    largest_cluster: int
    events_updated: int  # reports whose cluster_key changed
    keys_kept: int
    keys_new: int
    clusters_removed: int  # keys no cluster holds any more
    timings: dict[str, float]  # seconds per stage
    seconds: float

    def as_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def bigrams(text: str | None) -> frozenset[str]:
    """The character bigrams of the Chinese text in `text`: CJK unified ideographs only,
    so digits, Latin letters, punctuation and blanks (full-width or not) do not count, nor
    does an address number or an order number."""
    if not text:
        return frozenset()
    chars = _NOT_CJK.sub("", text)
    return frozenset(map(operator.add, chars, chars[1:]))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """|a ∩ b| / |a ∪ b|; 0 when either is empty."""
    if not a or not b:
        return 0.0
    shared = len(a & b)
    return shared / (len(a) + len(b) - shared)


@dataclass(slots=True)
class _Cluster:
    lead: int
    lead_t: float | None


@dataclass(slots=True)
class _Member:
    cluster: int
    rule: str
    via: int | None = None
    distance_m: float | None = None
    minutes: float | None = None
    text_similarity: float | None = None


@dataclass
class _Texts:
    """Bigram sets of the reports' texts, read as the pairs need them, the oldest dropped."""

    conn: psycopg.Connection
    cache: dict[int, frozenset[str] | None] = field(default_factory=dict)

    def need(self, ids: Iterable[int]) -> None:
        missing = sorted({i for i in ids if i not in self.cache})
        if not missing:
            return
        for i in missing:
            self.cache[i] = None  # machine text or none
        for i, text in self.conn.execute(
                "SELECT id, text FROM incident_text WHERE id = ANY(%s)", (missing,)):
            grams = bigrams(text)
            self.cache[i] = grams if len(grams) >= _MIN_BIGRAMS else None

    def forget_below(self, lowest: int) -> None:
        for i in [i for i in self.cache if i < lowest]:
            del self.cache[i]


def cluster_incidents(conn: psycopg.Connection, *, window_hours: float = 72,
                      distance_m: float = 300, text_threshold: float = 0.15,
                      text_stretch: float = 0.7,
                      compatible: Iterable[tuple[str, str]] = COMPATIBLE_CATEGORIES
                      ) -> IncidentSummary:
    """Cluster the current reports of one incident (see the module's doc) and write
    core.event.cluster_key and core.incident_cluster, in one transaction."""
    # The packed cell key holds 2^20 columns and rows and 2^23 time buckets.
    if window_hours < 0.25 or distance_m < 10:
        raise ValueError("window_hours must be 0.25 or more and distance_m 10 or more")
    started = time.perf_counter()
    timings: dict[str, float] = {}
    mark = [started]

    def lap(stage: str) -> None:
        now = time.perf_counter()
        timings[stage] = round(now - mark[0], 3)
        mark[0] = now

    window_s = window_hours * 3600.0
    pairs_of = sorted({"{}:{}".format(*sorted(p)) for p in compatible})
    params = {"window_hours": window_hours, "distance_m": distance_m,
              "text_threshold": text_threshold, "text_stretch": text_stretch,
              "compatible": pairs_of}
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        started_at = database_now(conn)
        # The self-joins hash every current event: room for them in memory.
        conn.execute("SET LOCAL work_mem = '256MB'")
        events, located = _stage_events(conn, window_s, distance_m)
        lap("events")
        pair_counts = _stage_pairs(conn, window_s, distance_m, pairs_of)
        lap("pairs")
        members, matched = _cluster(conn, window_s, distance_m, text_threshold, text_stretch)
        lap("clustering")
        keys, kept, new = _keys(conn, members)
        lap("keys")
        updated, removed = _write(conn, members, keys, params)
        lap("write")
        sizes = Counter(m.cluster for m in members.values())
        summary = IncidentSummary(
            events=events, located=located, pairs=pair_counts, pairs_matched=matched,
            clusters=len(sizes), clustered_events=len(members),
            largest_cluster=max(sizes.values(), default=0), events_updated=updated,
            keys_kept=kept, keys_new=new, clusters_removed=removed,
            timings=timings, seconds=round(time.perf_counter() - started, 3))
        record_link_run(conn, "incident", started_at, records=events, compared=events,
                        summary={**summary.as_dict(), "params": params})
    log.info("incidents clustered: %s", summary.as_dict())
    return summary


def _stage_events(conn: psycopg.Connection, window_s: float,
                  distance_m: float) -> tuple[int, int]:
    """incident_event: the current events, numbered in report order, with their time
    bucket, their cell `k` (coordinates in degrees over cells at least distance_m wide up
    to 54°N, and the time bucket, packed in one bigint: column 2^43, row 2^23, bucket 1, so
    a neighbouring cell is k plus a constant), and the key of the report a transferred one
    names."""
    conn.execute(
        """
        CREATE TEMP TABLE incident_event ON COMMIT DROP AS
        WITH ev AS (
            SELECT e.row_id, e.source_system, e.source_id, e.reported_at, e.category_code,
                   e.channel, e.grid_code, e.division_code, e.street_code, e.cluster_key,
                   (e.longitude BETWEEN 73 AND 136 AND e.latitude BETWEEN 3 AND 54) AS located,
                   e.longitude, e.latitude,
                   coalesce(nullif(btrim(e.transfer_ref), ''),
                            CASE WHEN e.description LIKE '%%工单号%%' THEN
                                 substring(e.description FROM '工单号[：:]\\s*([0-9A-Za-z]+)')
                            END) AS ref
              FROM core.event e
             WHERE e.valid_to IS NULL
        )
        SELECT (row_number() OVER (ORDER BY reported_at, source_system, source_id))::int AS id,
               row_id, source_system, source_id, reported_at,
               extract(epoch FROM reported_at)::float8 AS t,
               floor(extract(epoch FROM reported_at) / %(window)s)::bigint AS tb,
               CASE WHEN located THEN longitude END AS lon,
               CASE WHEN located THEN latitude END AS lat,
               CASE WHEN located AND reported_at >= '1970-01-01' THEN
                    floor(longitude / %(dlon)s)::bigint * 8796093022208
                    + floor(latitude / %(dlat)s)::bigint * 8388608
                    + floor(extract(epoch FROM reported_at) / %(window)s)::bigint
               END AS k,
               nullif(btrim(grid_code), '') AS grid_code,
               nullif(btrim(grid_code), '') || '|'
                   || floor(extract(epoch FROM reported_at) / %(window)s)::bigint AS grid_k,
               category_code,
               CASE WHEN category_code ~ '^[A-Z]{2}' THEN left(category_code, 2) END AS l1,
               channel, division_code, street_code, ref, cluster_key AS old_key,
               coalesce(left(category_code, 2) = ANY(%(placeless)s), false) AS placeless
          FROM ev
        """,
        {"placeless": list(PLACELESS_CATEGORIES), "window": window_s, "dlat": distance_m / 110_574.0,
         "dlon": distance_m / (111_320.0 * 0.5877852522924731)},  # cos 54°
    )
    conn.execute("ALTER TABLE incident_event ADD PRIMARY KEY (id)")
    conn.execute("ANALYZE incident_event")
    row = conn.execute("SELECT count(*), count(lon) FROM incident_event").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


# Haversine distance in metres between incident_event rows a and b.
_DISTANCE = sql.SQL(
    "2 * {r} * asin(sqrt(power(sin(radians(b.lat - a.lat) / 2), 2)"
    " + cos(radians(a.lat)) * cos(radians(b.lat)) * power(sin(radians(b.lon - a.lon) / 2), 2)))"
).format(r=sql.Literal(_EARTH_M))
# The cells around a cell, in its own time bucket and the next: offsets of the packed k.
_NEIGHBOURS = sql.SQL(", ").join(
    sql.SQL("({})").format(sql.Literal(dx * 2**43 + dy * 2**23 + dt))
    for dx in (-1, 0, 1) for dy in (-1, 0, 1) for dt in (0, 1))
# Categories that may describe one incident: same L1, a compatible pair, or unmapped.
_COMPATIBLE = sql.SQL(
    "(a.l1 IS NULL OR b.l1 IS NULL OR a.l1 = b.l1"
    " OR least(a.l1, b.l1) || ':' || greatest(a.l1, b.l1) = ANY(%(compatible)s))")


def _stage_pairs(conn: psycopg.Connection, window_s: float, distance_m: float,
                 compatible: list[str]) -> dict[str, int]:
    """incident_pair: candidate pairs (a reported before b), by rule."""
    args = {"window": window_s, "distance": distance_m, "compatible": compatible}
    conn.execute(
        "CREATE TEMP TABLE incident_pair (a int NOT NULL, b int NOT NULL, rule text NOT NULL,"
        " distance_m float8, minutes float8) ON COMMIT DROP")
    # Neighbouring cells in this and the next time bucket (b is never reported before a).
    conn.execute(sql.SQL(
        """
        INSERT INTO incident_pair (a, b, rule, distance_m, minutes)
        SELECT a.id, b.id, 'near', {distance}, (b.t - a.t) / 60
          FROM incident_event a
         CROSS JOIN (VALUES {neighbours}) n(offset_k)
          JOIN incident_event b ON b.k = a.k + n.offset_k
         WHERE a.k IS NOT NULL AND NOT a.placeless AND NOT b.placeless
           AND b.id > a.id AND b.t - a.t <= %(window)s
           AND {compatible} AND {distance} <= %(distance)s
        """).format(distance=_DISTANCE, compatible=_COMPATIBLE, neighbours=_NEIGHBOURS), args)
    # One of the two without coordinates: the grid stands for the place.
    conn.execute(sql.SQL(
        """
        INSERT INTO incident_pair (a, b, rule, distance_m, minutes)
        SELECT a.id, b.id, 'grid', NULL, (b.t - a.t) / 60
          FROM incident_event a
         CROSS JOIN (VALUES (0), (1)) n(dt)
          JOIN incident_event b ON b.grid_k = a.grid_code || '|' || (a.tb + n.dt)
         WHERE b.id > a.id AND (a.k IS NULL OR b.k IS NULL) AND b.t - a.t <= %(window)s
           AND NOT a.placeless AND NOT b.placeless AND {compatible}
        """).format(compatible=_COMPATIBLE), args)
    # A transferred report names the other platform's report: joined whatever the time.
    conn.execute(sql.SQL(
        """
        INSERT INTO incident_pair (a, b, rule, distance_m, minutes)
        SELECT least(e.id, o.id), greatest(e.id, o.id), 'transfer',
               CASE WHEN a.lat IS NOT NULL AND b.lat IS NOT NULL THEN {distance} END,
               abs(e.t - o.t) / 60
          FROM incident_event e
          JOIN incident_event o ON o.source_id = e.ref AND o.source_system <> e.source_system
          JOIN incident_event a ON a.id = least(e.id, o.id)
          JOIN incident_event b ON b.id = greatest(e.id, o.id)
         WHERE e.ref IS NOT NULL
        """).format(distance=_DISTANCE))
    conn.execute("CREATE INDEX ON incident_pair (b, a)")
    conn.execute("ANALYZE incident_pair")
    counts: dict[str, int] = dict(conn.execute("SELECT rule, count(*) FROM incident_pair GROUP BY rule").fetchall())
    # The texts the near and grid pairs compare (machine-made texts are not compared).
    conn.execute(
        """
        CREATE TEMP TABLE incident_text ON COMMIT DROP AS
        SELECT v.id, left(coalesce(e.title, '') || ' ' || coalesce(e.description, ''), 1000) AS text
          FROM incident_event v
          JOIN core.event e ON e.row_id = v.row_id
         WHERE NOT (coalesce(v.channel, '') = ANY(%(machine)s))
           AND v.id IN (SELECT a FROM incident_pair WHERE rule <> 'transfer'
                        UNION SELECT b FROM incident_pair WHERE rule <> 'transfer')
        """, {"machine": list(MACHINE_TEXT_CHANNELS)})
    conn.execute("ALTER TABLE incident_text ADD PRIMARY KEY (id)")
    return {rule: int(counts.get(rule, 0)) for rule in ("transfer", "near", "grid")}


@dataclass(frozen=True, slots=True)
class _Edge:
    """A matched pair seen from its later report: the earlier report `a` and why."""

    a: int
    rule: str  # transfer / near / grid
    rank: tuple[float, float, float]  # transfer first, then text similarity, then nearness
    distance_m: float | None
    minutes: float | None
    text_similarity: float | None


def _cluster(conn: psycopg.Connection, window_s: float, distance_m: float,
             text_threshold: float, text_stretch: float) -> tuple[dict[int, _Member], int]:
    """Greedy clustering in report order (see the module's doc): event id → membership,
    for the events of clusters of two or more; and the pairs that matched."""
    clusters: dict[int, _Cluster] = {}
    members: dict[int, _Member] = {}
    texts = _Texts(conn)
    matched = 0
    row = conn.execute("SELECT coalesce(max(b), 0) FROM incident_pair").fetchone()
    last = int(row[0]) if row else 0
    for lo in range(1, last + 1, _CHUNK):
        rows = conn.execute(
            "SELECT p.a, p.b, p.rule, p.distance_m, p.minutes, ea.t, eb.t,"
            " ea.category_code = eb.category_code AND ea.l1 IS NOT NULL"
            " FROM incident_pair p JOIN incident_event ea ON ea.id = p.a"
            " JOIN incident_event eb ON eb.id = p.b"
            " WHERE p.b >= %s AND p.b < %s ORDER BY p.b, p.a",
            (lo, lo + _CHUNK)).fetchall()
        if not rows:
            continue
        texts.forget_below(min(r[0] for r in rows))
        texts.need(i for r in rows if r[2] != "transfer" for i in (r[0], r[1]))
        edges: dict[int, list[_Edge]] = defaultdict(list)
        t_of: dict[int, float | None] = {}  # report times of this chunk's pairs
        for a, b, rule, dist, minutes, ta, tb, same_category in rows:
            t_of[a], t_of[b] = ta, tb
            sim: float | None = None
            if rule == "transfer":
                rank = (2.0, 0.0, 0.0)
            else:
                ga, gb = texts.cache.get(a), texts.cache.get(b)
                if ga is not None and gb is not None:
                    sim = jaccard(ga, gb)
                    # The further apart, the more alike the words must be.
                    apart = ((minutes or 0.0) * 60 / window_s
                             + (dist if dist is not None else distance_m) / distance_m) / 2
                    if sim < text_threshold + text_stretch * apart:
                        continue
                    rank = (1.0, sim, -(dist if dist is not None else _FAR))
                elif same_category:  # no text to compare: exactly the same category
                    rank = (0.0, 0.0, -(dist if dist is not None else _FAR))
                else:
                    continue
            matched += 1
            edges[b].append(_Edge(a, rule, rank, dist, minutes, sim))
        for b in sorted(edges):
            _join(b, edges[b], clusters, members, t_of, window_s)
    return members, matched


_FAR = 1e9  # a grid pair (no distance) ranks behind a near one of equal text


def _join(b: int, edges: list[_Edge], clusters: dict[int, _Cluster],
          members: dict[int, _Member], t_of: dict[int, float | None], window_s: float) -> None:
    """Report b joins the cluster of its best match that it may join: a transfer always,
    otherwise one whose lead was reported within the window before b."""
    tb = t_of.get(b)
    for edge in sorted(edges, key=lambda e: (tuple(-x for x in e.rank), e.a)):
        member = members.get(edge.a)
        cluster = clusters[member.cluster] if member else None
        lead_t = cluster.lead_t if cluster else t_of.get(edge.a)
        if edge.rule != "transfer" and (tb is None or lead_t is None
                                        or tb - lead_t > window_s):
            continue
        if cluster is None:
            cluster = clusters[edge.a] = _Cluster(lead=edge.a, lead_t=lead_t)
            members[edge.a] = _Member(cluster=edge.a, rule="lead")
        members[b] = _Member(cluster=cluster.lead, rule=edge.rule, via=edge.a,
                             distance_m=edge.distance_m, minutes=edge.minutes,
                             text_similarity=edge.text_similarity)
        return


def _hash_key(source_system: str, source_id: str) -> str:
    return "inc_" + hashlib.sha256(f"{source_system}/{source_id}".encode()).hexdigest()[:16]


def _keys(conn: psycopg.Connection, members: dict[int, _Member]
          ) -> tuple[dict[int, str], int, int]:
    """Cluster (its lead's id) → key: the key of an old lead it contains (the earliest),
    else the key most of its reports carried, else a new one. (keys, kept, new)"""
    conn.execute("CREATE TEMP TABLE incident_member (id int PRIMARY KEY, cluster int NOT NULL,"
                 " rule text NOT NULL, via int, distance_m float8, minutes float8,"
                 " text_similarity float8) ON COMMIT DROP")
    with conn.cursor() as cur, cur.copy(
            "COPY incident_member (id, cluster, rule, via, distance_m, minutes, text_similarity)"
            " FROM STDIN") as copy:
        for i, m in members.items():
            copy.write_row((i, m.cluster, m.rule, m.via, m.distance_m, m.minutes,
                            None if m.text_similarity is None else round(m.text_similarity, 4)))
    conn.execute("ANALYZE incident_member")
    # The key of an old lead the cluster holds (the earliest such lead: two merged).
    keys: dict[int, str] = dict(conn.execute(
        "SELECT DISTINCT ON (m.cluster) m.cluster, c.cluster_key FROM core.incident_cluster c"
        " JOIN incident_event v ON v.source_system = c.lead_source_system"
        " AND v.source_id = c.lead_source_id"
        " JOIN incident_member m ON m.id = v.id ORDER BY m.cluster, v.id").fetchall())
    taken = set(keys.values())
    kept = len(keys)
    # Else the key most of its reports carried, unless another cluster has it.
    for cluster, old_key in conn.execute(
            "SELECT m.cluster, v.old_key FROM incident_member m JOIN incident_event v"
            " ON v.id = m.id WHERE v.old_key IS NOT NULL GROUP BY 1, 2"
            " ORDER BY 1, count(*) DESC, 2"):
        if cluster not in keys and old_key not in taken:
            keys[cluster] = old_key
            taken.add(old_key)
            kept += 1
    # Else a new key, from its lead report's.
    new = 0
    for cluster, system, source_id in conn.execute(
            "SELECT m.cluster, v.source_system, v.source_id FROM incident_member m"
            " JOIN incident_event v ON v.id = m.id WHERE m.id = m.cluster ORDER BY 1"):
        if cluster in keys:
            continue
        choice, n = _hash_key(system, source_id), 1
        while choice in taken:
            n += 1
            choice = _hash_key(system, f"{source_id}#{n}")
        keys[cluster] = choice
        taken.add(choice)
        new += 1
    return keys, kept, new


def _write(conn: psycopg.Connection, members: dict[int, _Member], keys: dict[int, str],
           params: dict[str, object]) -> tuple[int, int]:
    """cluster_key on the reports whose key changes, and core.incident_cluster.
    (reports updated, clusters removed)"""
    conn.execute("CREATE TEMP TABLE incident_key (cluster int PRIMARY KEY, cluster_key text"
                 " NOT NULL UNIQUE) ON COMMIT DROP")
    with conn.cursor() as cur, cur.copy(
            "COPY incident_key (cluster, cluster_key) FROM STDIN") as copy:
        for cluster, key in keys.items():
            copy.write_row((cluster, key))
    conn.execute("ANALYZE incident_key")
    updated = conn.execute(
        """
        UPDATE core.event e SET cluster_key = n.cluster_key
          FROM (SELECT v.row_id, k.cluster_key
                  FROM incident_event v
                  LEFT JOIN incident_member m ON m.id = v.id
                  LEFT JOIN incident_key k ON k.cluster = m.cluster
                 WHERE v.old_key IS DISTINCT FROM k.cluster_key) n
         WHERE e.row_id = n.row_id AND e.valid_to IS NULL
        """).rowcount
    removed = conn.execute(
        "DELETE FROM core.incident_cluster c WHERE NOT EXISTS"
        " (SELECT 1 FROM incident_key k WHERE k.cluster_key = c.cluster_key)").rowcount
    # A cluster whose reports all carried its key already, and no other report did, is as
    # it was (a report that changes is a new version, without a key): its row stands,
    # unless the parameters changed.
    params_json = json.dumps(params, ensure_ascii=False, sort_keys=True)
    conn.execute(
        """
        CREATE TEMP TABLE incident_changed ON COMMIT DROP AS
        WITH now_in AS (
            SELECT m.cluster, count(*) AS n,
                   bool_and(v.old_key IS NOT DISTINCT FROM k.cluster_key) AS all_kept
              FROM incident_member m
              JOIN incident_key k ON k.cluster = m.cluster
              JOIN incident_event v ON v.id = m.id
             GROUP BY m.cluster
        ), was_in AS (
            SELECT old_key, count(*) AS n FROM incident_event
             WHERE old_key IS NOT NULL GROUP BY old_key
        )
        SELECT k.cluster
          FROM incident_key k
          JOIN now_in s ON s.cluster = k.cluster
          LEFT JOIN was_in w ON w.old_key = k.cluster_key
          LEFT JOIN core.incident_cluster c ON c.cluster_key = k.cluster_key
         WHERE NOT s.all_kept OR w.n IS DISTINCT FROM s.n OR c.cluster_key IS NULL
            OR c.evidence -> 'params' IS DISTINCT FROM %(params)s::jsonb
        """, {"params": params_json})
    conn.execute("ALTER TABLE incident_changed ADD PRIMARY KEY (cluster)")
    conn.execute(
        """
        INSERT INTO core.incident_cluster AS c (cluster_key, lead_source_system, lead_source_id,
               members, source_systems, first_reported_at, last_reported_at, category_code,
               division_code, street_code, grid_code, evidence)
        SELECT k.cluster_key, lead.source_system, lead.source_id, count(*),
               array_agg(DISTINCT v.source_system ORDER BY v.source_system),
               min(v.reported_at), max(v.reported_at), lead.category_code, lead.division_code,
               lead.street_code, lead.grid_code,
               jsonb_build_object('params', %(params)s::jsonb, 'members', jsonb_agg(
                   jsonb_strip_nulls(jsonb_build_object(
                       'source_system', v.source_system, 'source_id', v.source_id,
                       'rule', m.rule,
                       'via', CASE WHEN via.id IS NOT NULL
                                   THEN jsonb_build_array(via.source_system, via.source_id) END,
                       'distance_m', round(m.distance_m::numeric, 1),
                       'minutes', round(m.minutes::numeric, 1),
                       'text_similarity', m.text_similarity,
                       'categories', CASE WHEN via.id IS NOT NULL
                                          THEN jsonb_build_array(v.category_code, via.category_code)
                                     END))
                   ORDER BY v.id))
          FROM incident_changed ch
          JOIN incident_member m ON m.cluster = ch.cluster
          JOIN incident_key k ON k.cluster = m.cluster
          JOIN incident_event v ON v.id = m.id
          JOIN incident_event lead ON lead.id = m.cluster
          LEFT JOIN incident_event via ON via.id = m.via
         GROUP BY k.cluster_key, lead.source_system, lead.source_id, lead.category_code,
                  lead.division_code, lead.street_code, lead.grid_code
        ON CONFLICT (cluster_key) DO UPDATE SET
               lead_source_system = EXCLUDED.lead_source_system,
               lead_source_id = EXCLUDED.lead_source_id, members = EXCLUDED.members,
               source_systems = EXCLUDED.source_systems,
               first_reported_at = EXCLUDED.first_reported_at,
               last_reported_at = EXCLUDED.last_reported_at,
               category_code = EXCLUDED.category_code, division_code = EXCLUDED.division_code,
               street_code = EXCLUDED.street_code, grid_code = EXCLUDED.grid_code,
               evidence = EXCLUDED.evidence, updated_at = now()
         WHERE (c.lead_source_system, c.lead_source_id, c.members, c.source_systems,
                c.first_reported_at, c.last_reported_at, c.category_code, c.division_code,
                c.street_code, c.grid_code, c.evidence)
               IS DISTINCT FROM
               (EXCLUDED.lead_source_system, EXCLUDED.lead_source_id, EXCLUDED.members,
                EXCLUDED.source_systems, EXCLUDED.first_reported_at, EXCLUDED.last_reported_at,
                EXCLUDED.category_code, EXCLUDED.division_code, EXCLUDED.street_code,
                EXCLUDED.grid_code, EXCLUDED.evidence)
        """, {"params": params_json})
    return updated, removed
