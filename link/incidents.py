"""Reports of one incident, whatever platform they came through: `core.event.cluster_key`.

`cluster_incidents(conn)` puts the current core.event rows that report one incident
(a citizen's 12345 call, the 数字城管 case it was transferred to, a grid worker's
report, a camera's alarm) into one cluster, records each cluster of two or more
reports in core.incident_cluster with its lead report and the evidence, and writes
the cluster's key on its reports.

Candidate pairs come from PostgreSQL: a hash self-join of the events on one packed key
(distance-sized cell column and row, time bucket), so a report meets only the reports
of its 3 × 3 neighbouring cells in its own and the next time bucket; distance, time and
category compatibility (the same hub L1, a pair of `Rules.compatible`, or unmapped) are checked there too. Reports without coordinates pair by grid; a
transferred report pairs with the report it names — its `transfer_ref`, or the 12345
order number a 数字城管 case quotes in its text (工单号：…) — whatever the time and
place. Policy questions (政策咨询) have no place: they pair by transfer only. Texts
are compared only for reports with words of their own: a camera's (channel 视频) are
the machine's.

Python reads the pairs in order of the later report, a chunk of reports at a time, and
clusters **in time order, anchored on leads** (link.incident_rules): a report joins a
cluster only if it is close to that cluster's lead (its earliest report) in place, time
and category and says what a member said — or, without words, came soon after the
cluster's latest report in a category near the lead's — or names a member (a transfer,
which may bring the reports still alone that it names or says it is one with);
otherwise it may lead a cluster of its own. No chain of near neighbours grows a cluster
across a street or a week. What Python keeps across chunks is each clustered report's
lead and the lead's time and category.

**Incremental** (the default once a run with the same rules is recorded): the reports
loaded since that run (less `OVERLAP`, for loads committed while it ran) are decided,
with every report from `window` before the earliest of them on (a later report's
decision may depend on theirs); the reports of the window before that, and the reports
a transferred one names, are *kept*: their clusters stand and may be joined. Nothing
older is read. As decisions only look back, an incremental run decides as a full one
(`full=True`) would and the keys agree; a report loaded days after it was made
(back-filled) widens the window it decides, down to a full run.

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
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import psycopg
from psycopg import sql

from conform.video import CHANNEL as CAMERA_CHANNEL
from link.incident_rules import CLOSED, Cluster, Pair, Report, Rules, best_join, bigrams, join
from link.runs import database_now, record_link_run

log = logging.getLogger(__name__)

# Any constant: two clustering runs never interleave their writes.
_LOCK = 4_271_996_012

# Hub L1 categories without a place: two callers asking the same policy question are
# two questions, however close they live. They link by transfer only.
PLACELESS_CATEGORIES: tuple[str, ...] = ("ZC",)
# Channels whose text is made by a machine, not said by a person (an AI alarm's
# "AI告警 置信度 …"): such reports are matched by category, not by text.
MACHINE_TEXT_CHANNELS: tuple[str, ...] = (CAMERA_CHANNEL,)
# An incremental run decides again what was loaded this long before the last run began:
# a load that committed while that run read saw its rows after it.
OVERLAP = timedelta(hours=1)

_MIN_BIGRAMS = 3  # fewer: no text to compare
_CHUNK = 50_000  # later reports per read of pairs
_EARTH_M = 6_371_008.8


@dataclass(frozen=True)
class IncidentSummary:
    """What one `cluster_incidents` run did."""

    mode: str  # full / incremental
    events: int  # current events read (an incremental run: the window it decides and keeps)
    decided: int  # … of them decided in this run (the others kept their clusters)
    located: int  # … with usable coordinates
    pairs: dict[str, int]  # candidate pairs by rule (transfer, near, grid)
    clusters: int  # clusters of two or more reports among the events read
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


@dataclass(slots=True)
class _Member:
    cluster: int  # its lead's id
    rule: str  # lead / transfer / near / grid / kept
    via: int | None = None
    distance_m: float | None = None
    minutes: float | None = None
    text_similarity: float | None = None


def _grams(text: str | None) -> frozenset[str] | None:
    """The bigrams of a report's words; None: too few to compare."""
    grams = bigrams(text)
    return grams if len(grams) >= _MIN_BIGRAMS else None


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
            self.cache[i] = _grams(text)

    def forget_below(self, lowest: int) -> None:
        for i in [i for i in self.cache if i < lowest]:
            del self.cache[i]


def cluster_incidents(conn: psycopg.Connection, *, rules: Rules | None = None,
                      full: bool = False) -> IncidentSummary:
    """Cluster the current reports of one incident (see the module's doc) and write
    core.event.cluster_key and core.incident_cluster, in one transaction. Incremental
    unless `full` or no earlier run used the same rules."""
    rules = rules or Rules()
    started = time.perf_counter()
    timings: dict[str, float] = {}
    mark = [started]

    def lap(stage: str) -> None:
        now = time.perf_counter()
        timings[stage] = round(now - mark[0], 3)
        mark[0] = now

    params = rules.params()
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        started_at = database_now(conn)
        # The self-joins hash the events read: room for them in memory.
        conn.execute("SET LOCAL work_mem = '256MB'")
        since = None if full else _last_run(conn, params)
        events, decided, located = _stage_events(conn, rules, since)
        lap("events")
        pair_counts = _stage_pairs(conn, rules)
        lap("pairs")
        members = _cluster(conn, rules)
        lap("clustering")
        keys, kept, new = _keys(conn, members)
        lap("keys")
        updated, removed = _write(conn, members, keys, params)
        lap("write")
        sizes = Counter(m.cluster for m in members.values())
        summary = IncidentSummary(
            mode="full" if since is None else "incremental", events=events, decided=decided,
            located=located, pairs=pair_counts, clusters=len(sizes),
            clustered_events=len(members), largest_cluster=max(sizes.values(), default=0),
            events_updated=updated, keys_kept=kept, keys_new=new, clusters_removed=removed,
            timings=timings, seconds=round(time.perf_counter() - started, 3))
        record_link_run(conn, "incident", started_at, records=events, compared=decided,
                        summary={**summary.as_dict(), "params": params}, mode=summary.mode)
    log.info("incidents clustered: %s", summary.as_dict())
    return summary


def _last_run(conn: psycopg.Connection, params: dict[str, object]) -> datetime | None:
    """Where an incremental run starts: the rows loaded since the last run with the same
    rules began (less OVERLAP); None (a full run) when there is none."""
    row = conn.execute(
        "SELECT started_at FROM ops.link_run WHERE entity = 'incident'"
        " AND summary -> 'params' = %s::jsonb ORDER BY started_at DESC LIMIT 1",
        (json.dumps(params, ensure_ascii=False, sort_keys=True),)).fetchone()
    return None if row is None else row[0] - OVERLAP


# The words of a report (core.event e) that texts compare.
_TEXT = sql.SQL("left(coalesce(e.title, '') || ' ' || coalesce(e.description, ''), 1000)")
# What a clustering reads of an event (core.event e), with the key of the report a
# transferred one names: its transfer_ref, or the 12345 order number its text quotes.
_READ = sql.SQL(
    """e.row_id, e.source_system, e.source_id, e.reported_at, e.category_code,
       e.source_category, e.channel,
       e.grid_code, e.division_code, e.street_code, e.cluster_key, e.longitude, e.latitude,
       coalesce(nullif(btrim(e.transfer_ref), ''),
                CASE WHEN e.description LIKE '%%工单号%%' THEN
                     substring(e.description FROM '工单号[：:]\\s*([0-9A-Za-z]+)')
                END) AS ref""")


def _stage_events(conn: psycopg.Connection, rules: Rules,
                  since: datetime | None) -> tuple[int, int, int]:
    """incident_event: the events read, numbered in report order, with their time bucket,
    their cell `k` (coordinates in degrees over cells at least distance_m wide up to 54°N,
    and the time bucket, packed in one bigint: column 2^43, row 2^23, bucket 1, so a
    neighbouring cell is k plus a constant), the key of the report a transferred one
    names, and whether it is `kept` (an incremental run: read, not decided).
    (events, decided, located: with coordinates in China, as given or swapped)"""
    # An incremental run decides from `decide_from` on and keeps the window before it.
    decide_from = None
    if since is not None:
        row = conn.execute(
            "SELECT min(reported_at) FROM core.event WHERE valid_to IS NULL"
            " AND valid_from >= %s", (since,)).fetchone()
        decide_from = row[0] - timedelta(seconds=rules.window_s) if row and row[0] else None
        if decide_from is None:  # nothing new: an empty run
            decide_from = datetime.max.replace(tzinfo=since.tzinfo)
    window = timedelta(seconds=rules.window_s)
    conn.execute(sql.SQL(
        """
        CREATE TEMP TABLE incident_read ON COMMIT DROP AS
        SELECT {columns}, %(decide_from)s::timestamptz IS NOT NULL
                   AND e.reported_at < %(decide_from)s::timestamptz AS kept
          FROM core.event e
         WHERE e.valid_to IS NULL
           AND (%(decide_from)s::timestamptz IS NULL
                OR e.reported_at >= %(decide_from)s::timestamptz - %(window)s::interval)
        """).format(columns=_READ), {"decide_from": decide_from, "window": window})
    if decide_from is not None:
        # The reports the decided ones name, and their clusters' reports: kept.
        conn.execute(sql.SQL(
            """
            INSERT INTO incident_read
            WITH named AS (
                SELECT o.row_id, o.cluster_key FROM incident_read r
                  JOIN core.event o ON o.source_id = r.ref AND o.source_system <> r.source_system
                 WHERE NOT r.kept AND o.valid_to IS NULL
                   AND o.row_id NOT IN (SELECT row_id FROM incident_read)
            )
            SELECT {columns}, true
              FROM core.event e
             WHERE e.valid_to IS NULL AND e.row_id NOT IN (SELECT row_id FROM incident_read)
               AND (e.row_id IN (SELECT row_id FROM named)
                    OR e.cluster_key IN (SELECT cluster_key FROM named))
            """).format(columns=_READ), {})  # {}: %% is the placeholder syntax's %
    conn.execute(
        """
        CREATE TEMP TABLE incident_event ON COMMIT DROP AS
        WITH ev AS (
            -- Coordinates in China as given, or swapped (the quality rule's "swapped": a
            -- finding; the platform's values stay as reported): the place the report meant.
            -- At most one of the two orders lies in the box.
            SELECT r.*, p.x, p.y
              FROM incident_read r
              LEFT JOIN LATERAL (
                  SELECT x, y FROM (VALUES (r.longitude, r.latitude),
                                           (r.latitude, r.longitude)) AS v(x, y)
                   WHERE x BETWEEN 73 AND 136 AND y BETWEEN 3 AND 54) p ON true
        )
        SELECT (row_number() OVER (ORDER BY reported_at, source_system, source_id))::int AS id,
               row_id, source_system, source_id, reported_at, kept,
               extract(epoch FROM reported_at)::float8 AS t,
               floor(extract(epoch FROM reported_at) / %(window)s)::bigint AS tb,
               x AS lon, y AS lat,
               CASE WHEN x IS NOT NULL AND reported_at >= '1970-01-01' THEN
                    floor(x / %(dlon)s)::bigint * 8796093022208
                    + floor(y / %(dlat)s)::bigint * 8388608
                    + floor(extract(epoch FROM reported_at) / %(window)s)::bigint
               END AS k,
               nullif(btrim(grid_code), '') AS grid_code,
               nullif(btrim(grid_code), '') || '|'
                   || floor(extract(epoch FROM reported_at) / %(window)s)::bigint AS grid_k,
               category_code, source_system || '|' || coalesce(source_category, '') AS kind,
               CASE WHEN category_code ~ '^[A-Z]{2}' THEN left(category_code, 2) END AS l1,
               channel, division_code, street_code, ref, cluster_key AS old_key,
               coalesce(left(category_code, 2) = ANY(%(placeless)s), false) AS placeless
          FROM ev
        """,
        {"placeless": list(PLACELESS_CATEGORIES), "window": rules.window_s,
         "dlat": rules.distance_m / 110_574.0,
         "dlon": rules.distance_m / (111_320.0 * 0.5877852522924731)},  # cos 54°
    )
    conn.execute("ALTER TABLE incident_event ADD PRIMARY KEY (id)")
    conn.execute("ANALYZE incident_event")
    row = conn.execute("SELECT count(*), count(*) FILTER (WHERE NOT kept), count(lon)"
                       " FROM incident_event").fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


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


def _stage_pairs(conn: psycopg.Connection, rules: Rules) -> dict[str, int]:
    """incident_pair: candidate pairs (a reported before b, b decided in this run), by rule."""
    args = {"window": rules.window_s, "distance": rules.distance_m,
            "compatible": rules.compatible_pairs()}
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
         WHERE a.k IS NOT NULL AND NOT a.placeless AND NOT b.placeless AND NOT b.kept
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
         WHERE b.id > a.id AND NOT b.kept AND (a.k IS NULL OR b.k IS NULL)
           AND b.t - a.t <= %(window)s
           AND NOT a.placeless AND NOT b.placeless AND {compatible}
        """).format(compatible=_COMPATIBLE), args)
    # A transferred report names the other platform's report: joined whatever the time.
    conn.execute(sql.SQL(
        """
        INSERT INTO incident_pair (a, b, rule, distance_m, minutes)
        SELECT a.id, b.id, 'transfer',
               CASE WHEN a.lat IS NOT NULL AND b.lat IS NOT NULL THEN {distance} END,
               (b.t - a.t) / 60
          FROM incident_event e
          JOIN incident_event o ON o.source_id = e.ref AND o.source_system <> e.source_system
          JOIN incident_event a ON a.id = least(e.id, o.id)
          JOIN incident_event b ON b.id = greatest(e.id, o.id)
         WHERE e.ref IS NOT NULL AND NOT b.kept
        """).format(distance=_DISTANCE))
    conn.execute("CREATE INDEX ON incident_pair (b, a)")
    conn.execute("ANALYZE incident_pair")
    counts: dict[str, int] = dict(conn.execute(
        "SELECT rule, count(*) FROM incident_pair GROUP BY rule").fetchall())
    # The texts the near and grid pairs compare (machine-made texts are not compared).
    conn.execute(sql.SQL(
        """
        CREATE TEMP TABLE incident_text ON COMMIT DROP AS
        SELECT v.id, {text} AS text
          FROM incident_event v
          JOIN core.event e ON e.row_id = v.row_id
         WHERE NOT (coalesce(v.channel, '') = ANY(%(machine)s))
           AND v.id IN (SELECT a FROM incident_pair WHERE rule <> 'transfer'
                        UNION SELECT b FROM incident_pair WHERE rule <> 'transfer')
        """).format(text=_TEXT), {"machine": list(MACHINE_TEXT_CHANNELS)})
    conn.execute("ALTER TABLE incident_text ADD PRIMARY KEY (id)")
    return {rule: int(counts.get(rule, 0)) for rule in ("transfer", "near", "grid")}


def _cluster(conn: psycopg.Connection, rules: Rules) -> dict[int, _Member]:
    """Clustering in report order (see link.incident_rules): event id → membership, for
    the events of clusters of two or more. Kept events stand in their clusters."""
    clusters: dict[int, Cluster] = {}
    cluster_of: dict[int, int] = {}
    members: dict[int, _Member] = {}
    # Kept reports of clusters, in report order: their clusters, replayed as reached.
    # (A cluster whose lead was not read is older than any decided report may join.)
    kept = conn.execute(sql.SQL(
        "SELECT v.id, v.old_key, v.t, v.category_code, v.kind, c.cluster_key IS NOT NULL,"
        " CASE WHEN c.cluster_key IS NOT NULL AND NOT (coalesce(v.channel, '') = ANY(%s))"
        " THEN {text} END"
        " FROM incident_event v JOIN core.event e ON e.row_id = v.row_id"
        " LEFT JOIN core.incident_cluster c ON c.cluster_key = v.old_key"
        " AND c.lead_source_system = v.source_system AND c.lead_source_id = v.source_id"
        " WHERE v.kept AND v.old_key IS NOT NULL ORDER BY v.id").format(text=_TEXT),
        (list(MACHINE_TEXT_CHANNELS),)).fetchall()
    lead_of_key: dict[str, int] = {}
    replayed = 0

    def replay(until: int) -> None:
        nonlocal replayed
        while replayed < len(kept) and kept[replayed][0] < until:
            i, key, t, category, kind, is_lead, text = kept[replayed]
            replayed += 1
            if is_lead:
                lead_of_key[key] = i
                clusters[i] = Cluster(Report(i, t, category, kind, _grams(text)), t)
            lead = lead_of_key.get(key)
            if lead is None:
                cluster_of[i] = CLOSED
                continue
            clusters[lead].last_t = max(clusters[lead].last_t, t)
            cluster_of[i] = lead
            members[i] = _Member(cluster=lead, rule="lead" if lead == i else "kept")

    texts = _Texts(conn)
    row = conn.execute("SELECT coalesce(max(b), 0) FROM incident_pair").fetchone()
    last = int(row[0]) if row else 0
    for lo in range(1, last + 1, _CHUNK):
        rows = conn.execute(
            "SELECT p.a, p.b, p.rule, p.distance_m, p.minutes, ea.t, eb.t,"
            " ea.category_code, eb.category_code, ea.kind, eb.kind,"
            " ea.k IS NOT NULL OR ea.grid_code IS NOT NULL,"
            " eb.k IS NOT NULL OR eb.grid_code IS NOT NULL"
            " FROM incident_pair p JOIN incident_event ea ON ea.id = p.a"
            " JOIN incident_event eb ON eb.id = p.b"
            " WHERE p.b >= %s AND p.b < %s ORDER BY p.b, p.a",
            (lo, lo + _CHUNK)).fetchall()
        if not rows:
            continue
        texts.forget_below(min(r[0] for r in rows))
        texts.need(i for r in rows if r[2] != "transfer" for i in (r[0], r[1]))
        pairs: dict[int, list[Pair]] = defaultdict(list)
        reports: dict[int, Report] = {}
        for (a, b, rule, dist, minutes, ta, tb, cat_a, cat_b, kind_a, kind_b, placed_a,
             placed_b) in rows:
            reports[a] = Report(a, ta, cat_a, kind_a, texts.cache.get(a), placed_a)
            reports[b] = Report(b, tb, cat_b, kind_b, texts.cache.get(b), placed_b)
            pairs[b].append(Pair(a, rule, dist, minutes))
        for b in sorted(pairs):
            replay(b)
            chosen = best_join(rules, reports[b], pairs[b], clusters, cluster_of, reports)
            if chosen is None:
                continue
            cluster = join(reports[b], chosen, clusters, cluster_of, reports)
            members.setdefault(cluster.lead.id, _Member(cluster=cluster.lead.id, rule="lead"))
            members[b] = _Member(cluster=cluster.lead.id, rule=chosen.rule, via=chosen.via,
                                 distance_m=chosen.distance_m, minutes=chosen.minutes,
                                 text_similarity=chosen.text_similarity)
            for brought in chosen.brings:  # reports still alone that join with b
                members[brought.lead] = _Member(
                    cluster=cluster.lead.id, rule=brought.rule, via=b,
                    distance_m=brought.distance_m, minutes=brought.minutes,
                    text_similarity=brought.text_similarity)
    replay(2**31)  # the kept reports after the last decided one
    return members


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
                 WHERE (NOT v.kept OR m.id IS NOT NULL)
                   AND v.old_key IS DISTINCT FROM k.cluster_key) n
         WHERE e.row_id = n.row_id AND e.valid_to IS NULL
        """).rowcount
    # Clusters of the reports decided that no cluster holds now (kept ones stand).
    removed = conn.execute(
        "DELETE FROM core.incident_cluster c WHERE c.cluster_key IN"
        " (SELECT old_key FROM incident_event WHERE NOT kept)"
        " AND NOT EXISTS (SELECT 1 FROM incident_key k WHERE k.cluster_key = c.cluster_key)"
    ).rowcount
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
                   coalesce(was.member, jsonb_strip_nulls(jsonb_build_object(
                       'source_system', v.source_system, 'source_id', v.source_id,
                       'rule', m.rule,
                       'via', CASE WHEN via.id IS NOT NULL
                                   THEN jsonb_build_array(via.source_system, via.source_id) END,
                       'distance_m', round(m.distance_m::numeric, 1),
                       'minutes', round(m.minutes::numeric, 1),
                       'text_similarity', m.text_similarity,
                       'categories', CASE WHEN via.id IS NOT NULL
                                          THEN jsonb_build_array(v.category_code, via.category_code)
                                     END)))
                   ORDER BY v.id))
          FROM incident_changed ch
          JOIN incident_member m ON m.cluster = ch.cluster
          JOIN incident_key k ON k.cluster = m.cluster
          JOIN incident_event v ON v.id = m.id
          JOIN incident_event lead ON lead.id = m.cluster
          LEFT JOIN incident_event via ON via.id = m.via
          -- A kept report's evidence is what it was.
          LEFT JOIN LATERAL (
              SELECT x AS member FROM core.incident_cluster o,
                     jsonb_array_elements(o.evidence -> 'members') x
               WHERE m.rule = 'kept' AND o.cluster_key = v.old_key
                 AND x ->> 'source_system' = v.source_system
                 AND x ->> 'source_id' = v.source_id
               LIMIT 1) was ON true
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
