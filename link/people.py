"""One person however many platforms know them: golden persons and the keys that join them.

`link_people` gives every current core.person record the `person_key` of its golden
person (core.person_golden), records how each record was linked (core.person_link) and
gives every current event the key of its reporter (core.event.reporter_person_key):

1. Records with the same ID-number hash are one person: the hash is taken over the ID's
   identity form, so equal hashes are the same number however it was keyed in.
2. The rest are scored by the Splink model of `link.person_model` (names in their normal
   forms and pinyin, birth date, gender, phone hash, address and grid) and linked where a
   match is likelier than not, strongest first, under rules no score overrides: never two
   different ID hashes, birth dates or genders in one person, never a record that fits two
   people alike (of two that fit, the one likelier than not once both are weighed), never
   across a data steward's split (`split`); a steward's `merge` holds unless a split
   stands against it (revoke one of them: `revoke`).
3. What the pairs leave open a register may decide (`link.registers`): a caller whom
   nothing placed on the grid platform's resident list, and the one resident of that
   name in the street who has no phone to compare, are one person where the share of
   callers on the list makes that likelier than not.
4. Keys are stable: a golden person keeps its key while any of its records remains (the
   key of the previous cluster it overlaps most); a new one gets `P` and 12 letters of a
   hash of its smallest record.
5. Each golden attribute is the most recent value from the most trusted platform that has
   one; the trust order is configuration (`trust_order`).

An incremental run (the default) compares only the records new or changed since the last
run, and every record of a cluster such a record left, a record of which vanished, or a
steward's decision names, against the candidates that share a blocking key with them
(whose clusters stand), with the stored model; it reads nothing else
(`link.person_store`: the compared values of every record are kept in core.person_match).
`full=True` retrains and compares everything; keys of unchanged records stay the same.
Only what changed is written: keys, links, compared values and golden rows; new ones by
COPY, changed ones by one set-based UPDATE each (an incremental run's by index look-ups).
The warehouse writes while this process computes (`_Writer`): the compared values while
the model trains, scores and clusters; then, each on a connection of its own, the
records' keys, the links and the golden persons, those part by part as they are made
(the persons of one record first: most of a city, and made at once). A city's first run
writes into empty tables and builds their secondary indexes after the rows
(`person_store.bulk_write`). The run's own transaction, under a lock that keeps a second
run out, holds everything but the records' keys in core.person, the events' reporters
and the golden persons: those two side connections (`_side_connection`; a first run
rewrites a million core.person rows and COPYs 700,000 golden persons) commit just after
it, and the run after one whose process ended between the commits is a full run, which
writes them again.
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from queue import Queue
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql
from psycopg.pq import TransactionStatus
from psycopg.types.json import Jsonb
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from splink.backends.duckdb import DuckDBAPI

from link import person_model, person_store, registers
from link.clusters import Clusters, new_keys, stable_keys
from link.normal import addresses, genders, name_forms
from link.person_model import Model
from warehouse.loader import copy_arrow

ENTITY = "person"
KEY_PREFIX = "P"
# Which platform's value a golden person shows when several have one: the first of these
# that a record's source_system is, or starts with; platforms not named come last.
DEFAULT_TRUST_ORDER: tuple[str, ...] = ("gridmgmt", "zongzhi", "citymgmt", "hotline12345", "video")
_LOCK = "hub:link:person"
_WORK_MEM = "256MB"

class LinkInProgress(RuntimeError):
    """Another linking run of the same entity holds the lock."""


class RecordRef(NamedTuple):
    """A source record: the platform instance and the platform's key."""

    source_system: str
    source_id: str


@dataclass
class LinkSummary:
    """What a run did (also kept in ops.link_run.summary)."""

    mode: str
    model_version: str
    records: int = 0
    compared: int = 0
    pairs_scored: int = 0  # pairs above the threshold that pass the guards
    register_links: int = 0  # links a register decided (link.registers)
    ambiguous: int = 0  # records matched to two ID numbers or birth dates: left unlinked
    links: dict[str, int] = field(default_factory=dict)  # records per method
    clusters: int = 0
    multi_record_clusters: int = 0
    keys_kept: int = 0
    keys_new: int = 0
    keys_retired: int = 0
    records_rekeyed: int = 0  # records whose person_key changed
    goldens_written: int = 0
    events_linked: int = 0  # events whose reporter_person_key changed
    decisions_applied: int = 0
    decisions_not_applied: int = 0  # naming records no longer current, or against a split
    seconds: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("mode", "model_version")}


# ------------------------------------------------------------------ stewardship


def split(conn: psycopg.Connection, record_a: RecordRef | tuple[str, str],
          record_b: RecordRef | tuple[str, str], decided_by: str, reason: str) -> int:
    """Record that two person records are different people; every later run keeps them
    apart (a rebuild too) until the decision is revoked. Returns the decision's id."""
    a, b = RecordRef(*record_a), RecordRef(*record_b)
    _require(decided_by, reason)
    for r in (a, b):
        if conn.execute("SELECT 1 FROM core.person WHERE source_system = %s AND source_id = %s"
                        " LIMIT 1", r).fetchone() is None:
            raise ValueError(f"no person record {r.source_system}/{r.source_id}")
    if a == b:
        raise ValueError("a record cannot be split from itself")
    return _decide(conn, "split", a, b, None, None, decided_by, reason)


def merge(conn: psycopg.Connection, key_a: str, key_b: str, decided_by: str, reason: str) -> int:
    """Record that two golden persons are one; every later run keeps their records together
    (a rebuild too) until the decision is revoked. Each key is anchored to its smallest
    current record, so the decision holds whatever keys the records carry later."""
    _require(decided_by, reason)
    if key_a == key_b:
        raise ValueError("a person cannot be merged with itself")
    anchors = []
    for key in (key_a, key_b):
        row = conn.execute(
            "SELECT source_system, source_id FROM core.person_link WHERE person_key = %s"
            " ORDER BY source_system, source_id LIMIT 1", (key,)).fetchone()
        if row is None:
            raise ValueError(f"no current record carries person_key {key}")
        anchors.append(RecordRef(*row))
    return _decide(conn, "merge", anchors[0], anchors[1], key_a, key_b, decided_by, reason)


def revoke(conn: psycopg.Connection, decision_id: int, revoked_by: str, reason: str) -> None:
    """Withdraw a split or merge: the next run links as if it had not been made."""
    _require(revoked_by, reason)
    done = conn.execute(
        "UPDATE ops.link_decision SET revoked_at = now(), revoked_by = %s, revoke_reason = %s"
        " WHERE decision_id = %s AND entity = %s AND revoked_at IS NULL",
        (revoked_by, reason.strip(), decision_id, ENTITY)).rowcount
    if not done:
        raise ValueError(f"no decision {decision_id} on persons in force")


def _require(who: str, reason: str) -> None:
    if not who or not who.strip():
        raise ValueError("a decision names who made it")
    if not reason or not reason.strip():
        raise ValueError("a decision needs a reason (what was checked)")


def _decide(conn: psycopg.Connection, action: str, a: RecordRef, b: RecordRef,
            key_a: str | None, key_b: str | None, decided_by: str, reason: str) -> int:
    row = conn.execute(
        "INSERT INTO ops.link_decision (entity, action, source_system_a, source_id_a,"
        " source_system_b, source_id_b, key_a, key_b, decided_by, reason)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING decision_id",
        (ENTITY, action, *a, *b, key_a, key_b, decided_by.strip(), reason.strip())).fetchone()
    assert row is not None
    return int(row[0])


# ------------------------------------------------------------------ the run


@dataclass
class _Decision:
    decision_id: int
    action: str
    a: RecordRef
    b: RecordRef
    key_a: str | None
    key_b: str | None
    changed: bool  # made or revoked since the last run


def link_people(conn: psycopg.Connection, *, full: bool = False,
                trust_order: Sequence[str] | None = None) -> LinkSummary:
    """Link every current person record to its golden person (see the module's doc).

    `conn` is the pipeline's (hub_loader); the run commits as one transaction, and the
    keys and golden persons it writes on two connections of its own just after it (all
    of it in a savepoint of the caller's transaction on `conn`, if one is open).
    `trust_order` lists platforms, most trusted first (`DEFAULT_TRUST_ORDER`)."""
    trust = tuple(trust_order) if trust_order is not None else DEFAULT_TRUST_ORDER
    # A run that is a transaction of its own writes the records' keys and the golden
    # persons on connections of their own (`_side_connection`); inside a caller's
    # transaction they go with it.
    alone = conn.info.transaction_status == TransactionStatus.IDLE
    with ExitStack() as stack:
        stack.enter_context(_cycles_collected_after())
        with conn.transaction():
            sides = _Sides(stack.enter_context(_side_connection(conn, "person keys")),
                           stack.enter_context(_side_connection(conn, "golden persons"))
                           ) if alone else _Sides(conn, conn)
            # The lock is held by the connection that commits last: no run starts before
            # every write of this one is in.
            got = sides.goldens.execute("SELECT pg_try_advisory_xact_lock(hashtext(%s))",
                                        (_LOCK,)).fetchone()
            if not (got and got[0]):
                raise LinkInProgress("another person-linking run is in progress; try again"
                                     " when it has finished")
            saved = _run_settings(conn)
            summary = _run(conn, sides, full, trust)
            conn.execute("SELECT set_config('work_mem', %s, true),"
                         " set_config('jit', %s, true)", saved)
        _commit_sides(conn, sides)
        return summary


class _Sides(NamedTuple):
    """Where a run writes what does not go on its own connection: the records' keys and
    the events' reporters (`keys`), the golden persons (`goldens`). Inside a caller's
    transaction both are the run's connection."""

    keys: psycopg.Connection
    goldens: psycopg.Connection


@contextmanager
def _cycles_collected_after() -> Iterator[None]:
    """Python's cycle collector paused within the block. A run holds columns of a million
    Python objects (ID hashes, birth dates, the scored pairs) and makes millions more; each
    of the collector's passes over the oldest generation walks all of them, to find
    cycles a run hardly makes (its objects are freed by their reference counts): at a
    million records the passes cost 1.5-2 s of the clustering alone. Any cycle made
    meanwhile is collected after the block, as it would have been in the next pass."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def _commit_sides(conn: psycopg.Connection, sides: _Sides) -> None:
    """The run is committed: its keys now, then its golden persons, and with the last the
    mark of every run whose side writes were pending goes (`_side_connection`). Inside a
    caller's transaction (the sides are `conn`) the mark goes with the rest of it."""
    if sides.keys is not conn:
        sides.keys.commit()
    sides.goldens.execute("UPDATE ops.link_run SET side_writes_pending = false"
                          " WHERE entity = %s AND side_writes_pending", (ENTITY,))
    if sides.goldens is not conn:
        sides.goldens.commit()


def _run_settings(conn: psycopg.Connection) -> tuple[str, str]:
    """For the transaction: hash joins of the whole city's keys in memory, not in batches
    on disk (a full run's UPDATE joins a million keys); no JIT compilation for statements
    that move rows and compute little. Returns the settings it replaced."""
    saved = conn.execute("SELECT current_setting('work_mem'), current_setting('jit')"
                         ).fetchone()
    assert saved is not None
    conn.execute("SELECT set_config('work_mem', %s, true), set_config('jit', 'off', true)",
                 (_WORK_MEM,))
    return saved[0], saved[1]


@contextmanager
def _side_connection(conn: psycopg.Connection, purpose: str
                     ) -> Iterator[psycopg.Connection]:
    """Another connection to the warehouse as `conn`'s role, in a transaction with the
    run's settings, for a part of the run's writes (`_Sides`): one backend writes one
    statement at a time, and a city's first run rewrites a million core.person rows for
    their keys and COPYs 700,000 golden persons, which then run beside the links' writes
    and each other's instead of one after another. The side connections commit just
    after the run (`_commit_sides`), and roll back when it ends otherwise. Until they
    have, the run's ops.link_run row says its side writes are pending; the next run
    finding them so (the process ended between the commits) is a full run, which writes
    every key and golden person that is not as it should be."""
    row = conn.execute("SELECT current_user, current_user <> session_user").fetchone()
    assert row is not None
    other = psycopg.connect(conn.info.dsn, password=conn.info.password,
                            application_name=f"hub link: {purpose}")
    try:
        if row[1]:
            other.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(row[0])))
        _run_settings(other)
        yield other
    finally:
        other.close()  # uncommitted: rolled back


def _run(conn: psycopg.Connection, sides: _Sides, full: bool, trust: tuple[str, ...]
         ) -> LinkSummary:
    """The run on `conn`; the records' keys, the events' reporters and the golden persons
    on `sides` (`conn` itself, or connections of their own: `_side_connection`)."""
    clock = _Stopwatch()
    row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    started = row[0]
    last = conn.execute("SELECT started_at, records, side_writes_pending FROM ops.link_run"
                        " WHERE entity = %s ORDER BY started_at DESC LIMIT 1",
                        (ENTITY,)).fetchone()
    stored = _latest_model(conn)
    # Without stored compared values (a warehouse linked before they were kept) only a
    # full run knows every record's; after a run whose side writes did not commit, only a
    # full run writes every key and golden person again.
    incremental = (not full and last is not None and not last[2] and stored is not None
                   and person_store.stored(conn))
    decisions = _decisions(conn, last[0] if last else None)
    vanished = person_store.vanished(conn, last[0] if incremental and last else None)
    if incremental:
        assert last is not None
        records, match, fresh, frequent = _read_incremental(conn, last[0], vanished, decisions)
    else:
        records = person_store.read_all(conn)
        match = match_values(records)
        fresh, frequent = np.ones(records.num_rows, dtype=bool), None
    clock.lap("read")
    # The warehouse writes while this process computes: the compared values go in while
    # the model trains, scores and clusters; keys and links while the golden rows are
    # made, and those as they are (`_Writer`: one statement at a time on a connection, in
    # its transaction; the connection is not touched here meanwhile). The records' keys
    # and the golden persons go in on their own connections where there are (`sides`),
    # beside the links.
    with _Writer() as writer, _Writer() as keys_side, _Writer() as goldens_side:
        keys_lane = writer if sides.keys is conn else keys_side
        goldens_lane = writer if sides.goldens is conn else goldens_side
        # Compared values are written where the stored ones are of another version.
        stale = pc.or_kleene(pc.is_null(records["matched_row"]),
                             pc.not_equal(records["matched_row"], records["row_id"]))
        writer.start(person_store.write_matches, conn,
                     person_store.match_rows(records, match).filter(stale),
                     pc.is_null(records["matched_row"]).filter(stale),
                     [(v[0], v[1]) for v in vanished])

        n = records.num_rows
        features = person_features(match, frequent)
        previous = _previous_keys(records)
        refs = _record_keys(records)
        db = DuckDBAPI()
        db.register(features, table_name="features")
        clock.lap("features")
        identities = records["id_number_hash"].to_pylist()
        groups = registers.group_of(records["source_system"], records["role"])
        if incremental:
            assert stored is not None
            model = stored
        else:
            model = person_model.train(db, "features", n, registers.estimate(groups, identities))
        clock.lap("model")

        if incremental:
            assert last is not None
            # Every current record: those of the last run, less the vanished, and the new.
            summary_records = int(last[1]) - len(vanished) + int(
                pc.sum(pc.invert(records["linked"])).as_py() or 0)
            writer.wait()
            frequencies = person_store.name_frequencies(conn, features["name"],
                                                        summary_records)
        else:
            summary_records, frequencies = n, None
        pairs = _score(db, model, features, fresh, incremental, frequencies)
        births = features["birth_date"].to_pylist()
        pairs, ambiguous = _drop_ambiguous(pairs, identities, births)
        clock.lap("score")

        clusters = Clusters(n, identities, exclusive=(births, features["gender"].to_pylist()))
        if incremental:  # first: the clusters no fresh record touches stand as they were
            clusters.group(_unchanged_groups(previous, fresh))
        applied, skipped, steward_of = _apply_decisions(clusters, decisions, refs, previous)
        best_edge = _link_identities_and_pairs(clusters, identities, pairs)
        # What the pairs alone leave open, a register may decide (link.registers).
        completed = registers.complete(
            clusters, fresh, groups, model.registers, features["name"].to_pylist(),
            features["street_code"].to_pylist(), features["phone_hash"].to_pylist())
        best_edge = _link_scored(clusters, completed, best_edge)
        labels = clusters.labels()
        clock.lap("cluster")

        writer.wait()
        clock.lap("write matches (rest)")
        if not incremental:
            _store_model(conn, model)
        taken, active = _taken_keys(sides.goldens, incremental, refs)
        assignment = stable_keys(labels, previous, refs, KEY_PREFIX, taken)
        keys = assignment.keys
        in_use = set(keys.tolist())
        retired = {k: v for k, v in assignment.retired.items() if k not in in_use}
        for _, _, key in vanished:  # every record of the key vanished
            if key not in retired and key not in in_use:
                retired[key] = None
        summary = LinkSummary(mode="incremental" if incremental else "full",
                              model_version=model.version, records=summary_records,
                              compared=int(fresh.sum()),
                              pairs_scored=len(pairs), register_links=len(completed),
                              keys_kept=assignment.kept,
                              keys_new=assignment.new, ambiguous=len(ambiguous),
                              decisions_applied=applied, decisions_not_applied=skipped)
        sizes = pd.Series(labels).value_counts()
        summary.clusters = int(len(sizes))
        summary.multi_record_clusters = int((sizes > 1).sum())

        prev_arr = np.array(previous, dtype=object)
        rekeyed = prev_arr != keys
        summary.records_rekeyed = int((rekeyed & pd.notna(prev_arr)).sum())
        # Each lane takes each part as it is ready, one after another: the records' keys
        # (and from them the events' reporters), the links while the golden rows are
        # made, and those.
        keys_lane.start(partial(_probing, sides.keys, incremental, _write_person_keys,
                                records, keys, fresh | rekeyed))
        reporters = keys_lane.start(link_reporters, sides.keys)
        clock.lap("keys")

        methods, probabilities, evidence = _evidence(records, labels, fresh, steward_of,
                                                     best_edge, refs)
        summary.links = {m: int(c) for m, c in pd.Series(methods[fresh]).value_counts().items()}
        writer.start(partial(_probing, conn, incremental, _write_links, records, keys, fresh,
                             rekeyed, methods, probabilities, evidence, model, vanished))
        clock.lap("links")

        affected = keys[fresh | rekeyed]
        alone = np.bincount(labels, minlength=n)[labels] == 1
        # The golden rows go in as each part is made: the persons of one record first.
        held = {k for k in previous if k is not None}
        affected_keys = set(affected.tolist())
        with _Parts() as goldens:
            goldens_written = goldens_lane.start(partial(
                _probing, sides.goldens, incremental, _write_goldens, goldens, held,
                len(affected_keys - held), model))
            for part in _golden_rows(db, records, features, keys, alone, affected_keys,
                                     trust, full=not incremental):
                goldens.put(part)
        clock.lap("golden rows")
        for lane in (writer, keys_side, goldens_side):
            lane.wait()
        clock.lap("writes (rest)")
    summary.goldens_written = goldens_written.result()
    summary.keys_retired = _retire(sides.goldens, retired, active - in_use)
    summary.events_linked = reporters.result()
    summary.seconds = clock.laps
    conn.execute(
        "INSERT INTO ops.link_run (entity, mode, model_version, started_at, records, compared,"
        " summary, side_writes_pending) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (ENTITY, summary.mode, model.version, started, summary.records, summary.compared,
         Jsonb(summary.as_json()), sides.goldens is not conn))
    db.duckdb_con.close()
    return summary


@contextmanager
def _index_joins(conn: psycopg.Connection, on: bool) -> Iterator[None]:
    """Within the block (when `on`), joins by index look-ups only: an incremental run
    updates a few thousand rows of tables of a million, which the planner (costing a
    look-up as a read from disk) would rather hash whole."""
    if not on:
        yield
        return
    saved = conn.execute("SELECT current_setting('enable_hashjoin'),"
                         " current_setting('enable_mergejoin')").fetchone()
    assert saved is not None
    conn.execute("SELECT set_config('enable_hashjoin', 'off', true),"
                 " set_config('enable_mergejoin', 'off', true)")
    yield
    conn.execute("SELECT set_config('enable_hashjoin', %s, true),"
                 " set_config('enable_mergejoin', %s, true)", saved)


def _probing(conn: psycopg.Connection, on: bool, write: Callable[..., Any], *args: Any
             ) -> Any:
    """`write(conn, *args)` with joins by index look-ups only when `on` (`_index_joins`: an
    incremental run's writes touch a few rows of tables of a million); what it returns."""
    with _index_joins(conn, on):
        return write(conn, *args)


class _Writer:
    """Statement sequences in a thread of their own, on the run's connection, one after
    another in the order started: the warehouse writes while the caller computes. The
    caller leaves the connection alone until `wait` (psycopg does not serialise a COPY
    under way against another statement); leaving the block waits too, and an error of
    the writes is raised by `wait`."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="link-writer")
        self._pending: list[Future[Any]] = []

    def start(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Queue `fn(*args)` after the sequences started before; its future."""
        future = self._pool.submit(fn, *args)
        self._pending.append(future)
        return future

    def wait(self) -> None:
        pending, self._pending = self._pending, []
        wait(pending)
        for future in pending:
            future.result()

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                self.wait()
            else:  # the caller failed: let the writes end first
                wait(self._pending)
        finally:
            self._pool.shutdown(wait=True)


class _Stopwatch:
    def __init__(self) -> None:
        self.t = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self.t, 3)
        self.t = now


# ------------------------------------------------------------------ features


def match_values(records: pa.Table) -> pa.Table:
    """The values the model compares (person_store.MATCH_COLUMNS) of each record, in their
    normal forms."""
    # Addresses beside names, in a thread: both are mostly Arrow kernels, which run
    # outside the GIL (at 1M records 3.2 s side by side against 4.4-4.7 s one after the
    # other).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="link-addresses") as pool:
        located = pool.submit(addresses, pc.coalesce(records["current_address"],
                                                     records["household_address"]))
        names = name_forms(records["name"])
        address, coarse = located.result()
    return pa.table({
        "name": names.name,
        "surname": names.surname,
        "pinyin": names.pinyin,
        "birth_date": pc.strftime(records["birth_date"], "%Y-%m-%d"),
        "gender": genders(records["gender"]),
        "phone_hash": records["phone_hash"],
        "id_hash": records["id_number_hash"],
        "address": address,
        "address_coarse": coarse,
        "grid_code": records["grid_code"],
        "street_code": records["street_code"],
    }, schema=pa.schema([person_model.FEATURE_SCHEMA.field(c)
                         for c in person_store.MATCH_COLUMNS]))


def person_features(match: pa.Table, frequent: set[str] | None = None) -> pa.Table:
    """The model's input (person_model.FEATURE_SCHEMA): the compared values with each
    record's row number as `unique_id` and its phone as a blocking key unless `frequent`
    (else: more than MAX_PHONE_BLOCK of these records share it)."""
    phones = match["phone_hash"]
    if frequent is None:
        counts = pc.value_counts(phones.drop_null())
        frequent = {v["values"].as_py() for v in counts
                    if v["counts"].as_py() > person_model.MAX_PHONE_BLOCK}
    block = phones if not frequent else pc.if_else(
        pc.is_in(phones, pa.array(sorted(frequent), pa.string())),
        pa.scalar(None, pa.string()), phones)
    columns = {"unique_id": pa.array(np.arange(match.num_rows, dtype=np.int64)),
               "phone_block": block, **{c: match[c] for c in person_store.MATCH_COLUMNS}}
    return pa.table({f.name: columns[f.name] for f in person_model.FEATURE_SCHEMA},
                    schema=person_model.FEATURE_SCHEMA)


def _read_incremental(conn: psycopg.Connection, since: Any,
                      vanished: list[tuple[str, str, str]], decisions: list[_Decision]
                      ) -> tuple[pa.Table, pa.Table, np.ndarray, set[str]]:
    """What an incremental run links (person_store.read_subset): the records new or
    changed since `since` and those a decision made or revoked since names, compared with
    every record of the clusters they, a vanished record or such a decision touch; the
    clusters of their candidates and of every decision's records stand beside them.
    Returns (records, compared values, whether each is compared, frequent phones)."""
    changed = [d for d in decisions if d.changed]
    anchored = [r for d in decisions for r in (d.a, d.b)]
    fresh = person_store.read_fresh(conn, since, [r for d in changed for r in (d.a, d.b)])
    fresh_match = match_values(fresh)
    touched = {k for k in _previous_keys(fresh) if k is not None}
    touched |= {key for _, _, key in vanished}
    touched |= {k for d in changed for k in (d.key_a, d.key_b) if k}
    context, context_match, compared, frequent = person_store.read_subset(
        conn, fresh, fresh_match, touched, anchored)
    records, match, flags = person_store.combine(fresh, fresh_match, context, context_match,
                                                 compared)
    return records, match, np.asarray(flags.to_numpy(zero_copy_only=False), dtype=bool), frequent


def _taken_keys(conn: psycopg.Connection, incremental: bool, seeds: list[str]
                ) -> tuple[set[str], set[str]]:
    """Keys a new golden person may not take: every key ever given; and of those, the
    ones in use. An incremental run looks up only the keys its records could be given
    (`new_key` of each, with every salt up to the first key not given yet), and not
    which are in use."""
    if not incremental:
        rows = conn.execute("SELECT person_key, retired_at IS NULL FROM core.person_golden"
                            ).fetchall()
        return {r[0] for r in rows}, {r[0] for r in rows if r[1]}
    taken: set[str] = set()
    salt = 0
    while seeds:
        tried = dict(zip(new_keys(KEY_PREFIX, seeds, salt), seeds, strict=True))
        found = {r[0] for r in conn.execute(
            "SELECT person_key FROM core.person_golden WHERE person_key = ANY(%s)",
            (list(tried),))}
        taken |= found
        seeds = [tried[k] for k in found]
        salt += 1
    return taken, set()


def _record_keys(records: pa.Table) -> list[str]:
    """`source_system` and `source_id` as one text per record (sorted as the records are)."""
    return pc.binary_join_element_wise(records["source_system"], records["source_id"],
                                       "\x1f").to_pylist()


def _previous_keys(records: pa.Table) -> list[str | None]:
    return pc.coalesce(records["linked_key"], records["current_key"]).to_pylist()


# ------------------------------------------------------------------ decisions


def _decisions(conn: psycopg.Connection, since: Any) -> list[_Decision]:
    rows = conn.execute(
        "SELECT decision_id, action, source_system_a, source_id_a, source_system_b, source_id_b,"
        " key_a, key_b, revoked_at IS NOT NULL,"
        " (%(since)s::timestamptz IS NULL OR decided_at > %(since)s"
        "  OR revoked_at > %(since)s)"
        " FROM ops.link_decision WHERE entity = %(entity)s"
        " AND (revoked_at IS NULL OR %(since)s::timestamptz IS NULL OR revoked_at > %(since)s)"
        " ORDER BY decision_id", {"since": since, "entity": ENTITY}).fetchall()
    out = []
    for did, action, ssa, sida, ssb, sidb, ka, kb, revoked, changed in rows:
        # A revoked decision is read only to re-link what it held (it changed).
        out.append(_Decision(did, "revoked" if revoked else action, RecordRef(ssa, sida),
                             RecordRef(ssb, sidb), ka, kb, changed))
    return out


def _apply_decisions(clusters: Clusters, decisions: list[_Decision], refs: list[str],
                     previous: list[str | None]) -> tuple[int, int, dict[int, int]]:
    """The decisions in force, before anything else: splits as cannot-links, merges as
    links no rule refuses but a split. Returns how many applied, how many could not (their
    records are no longer current, or a split stands against the merge), and the merge
    decision that joined each record."""
    index = {r: i for i, r in enumerate(refs)} if decisions else {}
    first_with_key: dict[str, int] = {}
    if any(d.action == "merge" for d in decisions):
        for i, k in enumerate(previous):
            if k is not None and k not in first_with_key:
                first_with_key[k] = i
    resolved = []
    skipped = 0
    for d in decisions:
        if d.action == "revoked":
            continue
        a = index.get("\x1f".join(d.a))
        b = index.get("\x1f".join(d.b))
        if d.action == "merge":
            # The anchor record left: any record still carrying the key stands for it.
            a = a if a is not None else first_with_key.get(d.key_a or "")
            b = b if b is not None else first_with_key.get(d.key_b or "")
        if a is None or b is None or a == b:
            skipped += 1
        else:
            resolved.append((d, a, b))
    for d, a, b in resolved:
        if d.action == "split":
            clusters.cannot_link(a, b)
    steward_of: dict[int, int] = {}
    applied = 0
    for d, a, b in resolved:
        if d.action == "split":
            applied += 1
        elif clusters.union(a, b, force_identity=True):
            applied += 1
            steward_of.setdefault(a, d.decision_id)
            steward_of.setdefault(b, d.decision_id)
        else:
            skipped += 1
    return applied, skipped, steward_of


# A record's strongest link that held: the scored pair (or a register's edge) and the
# record at its other end.
BestEdge = dict[int, tuple[dict[str, Any], int]]


def _link_identities_and_pairs(clusters: Clusters, identities: list[str | None],
                               pairs: list[dict[str, Any]]) -> BestEdge:
    """Records with the same ID-number hash are one person, then the scored `pairs`
    (strongest first) join where the rules allow; each record's strongest link that held.

    No rule reaches from one connected component of these links to another, so each is
    decided on its own: one whose records are alone in their clusters, bound by no split
    and of at most one value of each ruled column (`Clusters.join_consistent`) is one
    cluster at once and every link of it holds; the rest are joined a link at a time, the
    ID numbers first (`_link_same_identity`), then the pairs (`_link_scored`)."""
    n = len(identities)
    codes, _ = pd.factorize(pd.Series(identities, dtype="object"), use_na_sentinel=True)
    with_id = np.flatnonzero(codes >= 0)
    first = np.full(int(codes.max(initial=-1)) + 1, n, dtype=np.int64)
    np.minimum.at(first, codes[with_id], with_id)
    a = np.array([e["a"] for e in pairs], dtype=np.int64)
    b = np.array([e["b"] for e in pairs], dtype=np.int64)
    heads, tails = np.concatenate([first[codes[with_id]], a]), np.concatenate([with_id, b])
    graph = coo_matrix((np.ones(len(heads), dtype=bool), (heads, tails)), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    linked = np.zeros(n, dtype=bool)
    linked[heads[heads != tails]] = linked[tails[heads != tails]] = True
    rest = clusters.join_consistent(np.where(linked, component, -1))
    one_by_one = rest >= 0
    _link_same_identity(clusters, np.where(one_by_one, codes, -1))
    sequential = one_by_one[a]  # both ends of a pair share its component
    best = _link_scored(clusters, [e for e, s in zip(pairs, sequential.tolist(), strict=True)
                                   if s])
    # In the components joined at once every pair held: a record's strongest is the first
    # pair of the order that touches it.
    held = np.flatnonzero(~sequential)
    me, other = np.concatenate([a[held], b[held]]), np.concatenate([b[held], a[held]])
    edge = np.concatenate([held, held])
    order = np.argsort(edge, kind="stable")
    records, first_edge = np.unique(me[order], return_index=True)
    chosen = order[first_edge]
    best.update(zip(records.tolist(), zip(map(pairs.__getitem__, edge[chosen].tolist()),
                                          other[chosen].tolist(), strict=True), strict=True))
    return best


def _link_scored(clusters: Clusters, pairs: list[dict[str, Any]],
                 best_edge: BestEdge | None = None) -> BestEdge:
    """Join the scored pairs, strongest first, where the rules allow; returns each record's
    strongest link that held, `best_edge` updated if given. `pairs` come strongest
    first."""
    best_edge = {} if best_edge is None else best_edge
    for edge in pairs:
        a, b = edge["a"], edge["b"]
        if clusters.union(a, b):
            for me, other in ((a, b), (b, a)):
                if me not in best_edge or best_edge[me][0]["probability"] < edge["probability"]:
                    best_edge[me] = (edge, other)
    return best_edge


# ------------------------------------------------------------------ what to compare


def _unchanged_groups(previous: list[str | None], fresh: np.ndarray) -> np.ndarray:
    """For `Clusters.group`: the previous cluster of each record not compared again, as a
    number (-1: compared again, or no previous key)."""
    codes, _ = pd.factorize(pd.Series(previous, dtype="object"), use_na_sentinel=True)
    return np.where(fresh, -1, codes)


def _link_same_identity(clusters: Clusters, codes: np.ndarray) -> None:
    """Records with the same ID-number hash (the same non-negative code) are one person
    (unless a steward split them, or they disagree on the birth date or gender): all at
    once where nothing can refuse, the rest record by record."""
    counts = np.bincount(codes[codes >= 0], minlength=1)
    repeated = (codes >= 0) & (counts[np.maximum(codes, 0)] > 1)
    rest = clusters.join_consistent(np.where(repeated, codes, -1))
    first: dict[int, int] = {}
    for i in np.flatnonzero(rest >= 0).tolist():
        group = int(rest[i])
        if group in first:
            clusters.union(first[group], i)
        else:
            first[group] = i


# ------------------------------------------------------------------ scoring


def _score(db: DuckDBAPI, model: Model, features: pa.Table, fresh: np.ndarray,
           incremental: bool, frequencies: pa.Table | None) -> list[dict[str, Any]]:
    """Scored pairs that pass the threshold and the guards, strongest first; the names'
    `frequencies` those of the stored records (an incremental run sees a few of them)."""
    con = db.duckdb_con
    if not fresh.any():
        return []
    linker = person_model.linker(db, "features", model, frequencies)
    if incremental:
        ids = pa.table({"unique_id": pa.array(np.flatnonzero(fresh).astype(np.int64))})
        con.register("fresh_ids", ids)
        con.execute("CREATE TABLE fresh AS SELECT f.* FROM features f"
                    " SEMI JOIN fresh_ids i ON i.unique_id = f.unique_id")
        con.execute("CREATE TABLE rest AS SELECT f.* FROM features f"
                    " ANTI JOIN fresh_ids i ON i.unique_id = f.unique_id")
        fresh_df, rest_df = db.register("fresh"), db.register("rest")
        parts = [linker.inference.predict_within(
            fresh_df, threshold_match_probability=model.threshold, warning_mode="never")]
        if con.execute("SELECT count(*) FROM rest").fetchall() != [(0,)]:
            parts.append(linker.inference.predict_between(
                fresh_df, rest_df, threshold_match_probability=model.threshold,
                warning_mode="never"))
    else:
        parts = [linker.inference.predict_within(
            db.register("features"), threshold_match_probability=model.threshold,
            warning_mode="never")]
    comparisons = list(person_model._LEVELS)
    gammas = ", ".join(f"gamma_{c}" for c in comparisons)
    # DuckDB, not the warehouse: the model's own columns and tables Splink named.
    scored = " UNION ALL ".join(
        f"SELECT least(unique_id_l, unique_id_r) AS a, greatest(unique_id_l, unique_id_r) AS b,"  # noqa: S608
        f" match_probability AS p, match_weight AS w, {gammas} FROM {part.physical_name}"
        f" WHERE {person_model.guard_sql()}" for part in parts)
    got = con.execute(f"SELECT * FROM ({scored}) ORDER BY p DESC, a, b").fetchnumpy()  # noqa: S608
    if not len(got["a"]):
        return []
    # Few distinct comparison vectors: each labelled once, its labels shared by its pairs.
    vectors, which = np.unique(np.column_stack([got[f"gamma_{c}"] for c in comparisons]),
                               axis=0, return_inverse=True)
    labelled = [{c: person_model.level_label(c, int(g)) for c, g in zip(comparisons, v,
                                                                         strict=True)}
                for v in vectors.tolist()]
    return [{"a": a, "b": b, "probability": p, "match_weight": round(w, 3),
             "comparisons": labelled[v]}
            for a, b, p, w, v in zip(got["a"].tolist(), got["b"].tolist(), got["p"].tolist(),
                                     got["w"].tolist(), which.ravel().tolist(), strict=True)]


def _drop_ambiguous(pairs: list[dict[str, Any]], identities: list[str | None],
                    births: list[str | None]) -> tuple[list[dict[str, Any]], set[int]]:
    """Without the links of records that match records of two different ID numbers or
    two different birth dates while having neither themselves, unless one of them is a
    match likelier than not once the others are weighed against it.

    Such a record is at most one of the people it matches, so the pairwise odds are not
    its probabilities: the probability that it is the person of value v (an ID number, a
    birth date) is o_v / (1 + sum of o_u over every value u it matches), o_u the odds
    (2 ** match_weight) of its strongest pair with a record of value u. Where that is
    at least 0.5 (the Bayes decision boundary of `person_model.THRESHOLD`, not a figure
    fitted to a population) only the links to records of another value go: a caller who
    gives the name and phone of a resident is that resident, not a namesake in the street
    who has no phone to compare (the more people a city holds, the more such namesakes).
    Where no value is (a father and son of one name on one phone, two namesakes in the
    street and nothing else), two people fit and the data cannot say which: the record
    keeps none of its links."""
    if not pairs:
        return pairs, set()
    a = np.array([e["a"] for e in pairs], dtype=np.int64)
    b = np.array([e["b"] for e in pairs], dtype=np.int64)
    weights = np.array([e["match_weight"] for e in pairs], dtype=np.float64)
    edge = np.arange(len(pairs))
    me, other = np.concatenate([a, b]), np.concatenate([b, a])
    ways = pd.DataFrame({"me": me, "other": other, "edge": np.concatenate([edge, edge]),
                         "weight": np.concatenate([weights, weights])})
    ambiguous: set[int] = set()
    dropped = np.zeros(len(pairs), dtype=bool)
    for column in (identities, births):
        values = pd.Series(column, dtype="object")
        seen = ways.assign(value=values.to_numpy()[other])
        seen = seen[values.isna().to_numpy()[me]].dropna(subset=["value"])
        per = seen.groupby("me")["value"].nunique()
        torn = seen[seen["me"].isin(per.index[per > 1])]
        if torn.empty:
            continue
        # The odds of each value: its strongest pair (log2 odds, capped against overflow).
        best = torn.groupby(["me", "value"])["weight"].max().reset_index()
        best["odds"] = np.exp2(np.minimum(best["weight"].to_numpy(), 60.0))
        best["posterior"] = best["odds"] / (1.0 + best.groupby("me")["odds"].transform("sum"))
        winner = best[best["posterior"] >= 0.5].set_index("me")["value"]
        undecided = set(per.index[per > 1]) - set(winner.index.tolist())
        ambiguous |= undecided
        decided = torn[torn["me"].isin(winner.index)]
        losing = decided["value"].to_numpy() != winner.reindex(decided["me"]).to_numpy()
        dropped[decided["edge"].to_numpy()[losing]] = True
    if not ambiguous and not dropped.any():
        return pairs, ambiguous
    return [e for e, gone in zip(pairs, dropped.tolist(), strict=True)
            if not gone and e["a"] not in ambiguous and e["b"] not in ambiguous], ambiguous


# ------------------------------------------------------------------ evidence and writing


def _evidence(records: pa.Table, labels: np.ndarray, fresh: np.ndarray,
              steward_of: dict[int, int], best_edge: BestEdge,
              refs: list[str]) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
    """Each compared record's method, match probability and evidence (JSON text)."""
    n = records.num_rows
    cluster_size = np.bincount(labels, minlength=n)[labels]
    # Records of the compared records' clusters sharing their ID-number hash.
    near = np.flatnonzero(np.isin(labels, labels[fresh]) & records["id_number_hash"].is_valid()
                          .to_numpy(zero_copy_only=False))
    ids = pc.dictionary_encode(records["id_number_hash"].take(pa.array(near)).combine_chunks())
    cluster_and_id = labels[near].astype(np.int64) * len(ids.dictionary) + ids.indices.to_numpy()
    _, group, size = np.unique(cluster_and_id, return_inverse=True, return_counts=True)
    same_id = np.zeros(n, dtype=np.int64)
    same_id[near] = size[group]
    # Strongest first: a steward's merge, the ID number, the record's own scored link, a
    # cluster that stood (incremental: no link of its own), alone.
    steward = np.zeros(n, dtype=bool)
    steward[list(steward_of)] = True
    scored = np.zeros(n, dtype=bool)
    scored[list(best_edge)] = True
    by_id = ~steward & (same_id > 1)
    by_score = ~steward & ~by_id & scored
    via_cluster = ~steward & ~by_id & ~scored & (cluster_size > 1)
    methods = np.select([steward, by_id, by_score | via_cluster],
                        ["steward", "id_number", "probabilistic"], "singleton").astype(object)
    probabilities = np.where(steward | by_id, 1.0, np.nan)
    evidence = np.where(via_cluster, '{"via_cluster": true}', "{}").astype(object)
    evidence[by_id] = [f'{{"id_number_hash": "equal", "records": {c}}}'
                       for c in same_id[by_id].tolist()]
    for i in np.flatnonzero(steward & fresh).tolist():
        evidence[i] = json.dumps({"decision_id": steward_of[i]})
    for i in np.flatnonzero(by_score & fresh).tolist():
        edge, other = best_edge[i]
        probabilities[i] = edge["probability"]
        evidence[i] = json.dumps({"with": refs[other].split("\x1f", 1),
                                  "match_weight": edge["match_weight"],
                                  "comparisons": edge["comparisons"],
                                  **({"register": edge["register"]} if "register" in edge
                                     else {})}, ensure_ascii=False)
    return methods, probabilities, evidence.tolist()


def _write_person_keys(conn: psycopg.Connection, records: pa.Table, keys: np.ndarray,
                       changed: np.ndarray) -> None:
    """core.person.person_key of the records `changed` (compared again or rekeyed), from a
    staged copy."""
    rows = np.flatnonzero(changed)
    conn.execute("CREATE TEMP TABLE person_key_stage (row_id bigint, person_key text)"
                 " ON COMMIT DROP")
    copy_arrow(conn, pa.table({"row_id": records["row_id"].take(pa.array(rows)),
                               "person_key": pa.array(keys[rows].tolist(), pa.string())}),
               sql.Identifier("person_key_stage"))
    conn.execute("ANALYZE person_key_stage")
    # The version that was read (row_id): a new version a load wrote meanwhile keeps no key
    # and is linked by the next run.
    conn.execute(
        "UPDATE core.person p SET person_key = s.person_key FROM person_key_stage s"
        " WHERE p.row_id = s.row_id AND p.person_key IS DISTINCT FROM s.person_key")


def _write_links(conn: psycopg.Connection, records: pa.Table, keys: np.ndarray,
                 fresh: np.ndarray, rekeyed: np.ndarray, methods: np.ndarray,
                 probabilities: np.ndarray, evidence: list[str | None], model: Model,
                 vanished: list[tuple[str, str, str]]) -> None:
    """core.person_link, only where it changes: the links of records that have none COPYed
    in, the others' updated from a staged copy."""
    linked = np.asarray(records["linked"].to_numpy(zero_copy_only=False), dtype=bool)
    rows = np.flatnonzero(fresh)
    take = pa.array(rows)
    links = pa.table({
        "source_system": records["source_system"].take(take),
        "source_id": records["source_id"].take(take),
        "person_key": pa.array(keys[rows].tolist(), pa.string()),
        "method": pa.array(methods[rows].tolist(), pa.string()),
        "match_probability": pa.array(probabilities[rows], pa.float64(),
                                      mask=np.isnan(probabilities[rows])),
        "evidence": pa.array([evidence[i] for i in rows], pa.string()),
        "model_version": pa.array([model.version] * len(rows), pa.string()),
    })
    made = links.filter(pa.array(~linked[rows]))
    with person_store.bulk_write(conn, "core.person_link", made.num_rows):
        copy_arrow(conn, made, sql.Identifier("core", "person_link"))
    conn.execute("CREATE TEMP TABLE person_link_stage (source_system text, source_id text,"
                 " person_key text, method text, match_probability double precision,"
                 " evidence jsonb, model_version text) ON COMMIT DROP")
    copy_arrow(conn, links.filter(pa.array(linked[rows])), sql.Identifier("person_link_stage"))
    conn.execute("ANALYZE person_link_stage")
    conn.execute(
        "UPDATE core.person_link l SET person_key = s.person_key, method = s.method,"
        " match_probability = s.match_probability, evidence = s.evidence,"
        " model_version = s.model_version, linked_at = now() FROM person_link_stage s"
        " WHERE l.source_system = s.source_system AND l.source_id = s.source_id"
        " AND (l.person_key, l.method, l.match_probability, l.evidence, l.model_version)"
        " IS DISTINCT FROM (s.person_key, s.method, s.match_probability, s.evidence,"
        " s.model_version)")
    # Records not compared again whose cluster's key changed: the key alone.
    moved = np.flatnonzero(rekeyed & ~fresh)
    conn.execute(
        "UPDATE core.person_link l SET person_key = m.person_key, linked_at = now()"
        " FROM unnest(%s::text[], %s::text[], %s::text[]) AS m(source_system, source_id,"
        " person_key) WHERE l.source_system = m.source_system AND l.source_id = m.source_id"
        " AND l.person_key IS DISTINCT FROM m.person_key",
        (records["source_system"].take(pa.array(moved)).to_pylist(),
         records["source_id"].take(pa.array(moved)).to_pylist(), keys[moved].tolist()))
    if vanished:
        conn.execute(
            "DELETE FROM core.person_link WHERE (source_system, source_id) IN"
            " (SELECT * FROM unnest(%s::text[], %s::text[]))",
            ([v[0] for v in vanished], [v[1] for v in vanished]))


def _trust_rank(systems: pa.Array | pa.ChunkedArray, trust: tuple[str, ...]) -> pa.Array:
    def rank(system: str) -> int:
        for i, name in enumerate(trust):
            if system == name or system.startswith(name):
                return i
        return len(trust)

    distinct = pc.unique(systems).to_pylist()
    ranks = {s: rank(s) for s in distinct}
    return pa.array([ranks[s] for s in systems.to_pylist()], pa.int32())


# Survivorship: per attribute, the value of the most trusted platform's latest record that
# has one; several columns that belong together come from one record.
_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "name": ("name_n",),
    "gender": ("gender_n",),
    "birth_date": ("birth_date",),
    "id_number": ("id_number_hash", "id_number_masked"),
    "phone": ("phone_hash", "phone_masked"),
    "current_address": ("current_address",),
    "location": ("division_code", "street_code", "grid_code"),
}
_ORDER = "trust, valid_from DESC, source_system, source_id"


def _golden_sql() -> tuple[str, str]:
    """The golden rows of persons of one record (`golden_single`), and of those of several
    (`golden_input`): each ordered by key."""
    attributes = list(_ATTRIBUTES)
    picks = ", ".join(
        f"min(preference) FILTER (WHERE {' OR '.join(f'{c} IS NOT NULL' for c in columns)})"
        f" AS {a}" for a, columns in _ATTRIBUTES.items())
    chosen = " UNION ALL ".join(
        f"SELECT person_key, {i} AS pos, {a} AS preference FROM picked"  # noqa: S608
        f" WHERE {a} IS NOT NULL" for i, a in enumerate(attributes))
    names = "[" + ", ".join(f"'{a}'" for a in attributes) + "]"
    values = ", ".join(f"{a}.{c} AS {c.removesuffix('_n')}"
                       for a, columns in _ATTRIBUTES.items() for c in columns)
    joins = " ".join(f"LEFT JOIN ranked {a} ON {a}.preference = p.{a}" for a in attributes)
    single_values = ", ".join(f"{c} AS {c.removesuffix('_n')}"
                              for columns in _ATTRIBUTES.values() for c in columns)
    single_given = ", ".join(
        f"CASE WHEN {' OR '.join(f'{c} IS NOT NULL' for c in columns)} THEN '{a}' END"
        for a, columns in _ATTRIBUTES.items())
    # A person of one record (most of a city) is that record: no ranking, no grouping.
    single = f"""
SELECT person_key, {single_values}, 1 AS members, '{{' || source_system || '}}' AS source_systems,
       CASE WHEN len(attributes) = 0 THEN '[]' ELSE '[' || CAST(json_object(
            'source_system', source_system, 'source_id', source_id,
            'loaded_at', strftime(valid_from, '%Y-%m-%dT%H:%M:%S.%fZ'),
            'attributes', attributes) AS VARCHAR) || ']' END AS provenance
  FROM (SELECT *, list_filter([{single_given}], lambda a: a IS NOT NULL) AS attributes
          FROM golden_single)
 ORDER BY person_key
"""  # noqa: S608
    # One ordering of all records, most preferred first: each attribute takes the value of
    # its cluster's most preferred record that has one (the smallest preference number).
    # Provenance: one entry per record that gave the golden person something.
    return single, f"""
WITH ranked AS MATERIALIZED (
  SELECT *, strftime(valid_from, '%Y-%m-%dT%H:%M:%S.%fZ') AS loaded_at,
         row_number() OVER (ORDER BY {_ORDER}) AS preference
    FROM golden_input),
picked AS MATERIALIZED (
  SELECT person_key, count(*) AS members,
         list_sort(list_distinct(list(source_system))) AS source_systems, {picks}
    FROM ranked GROUP BY person_key),
given AS (
  SELECT person_key, preference,
         list_transform(list_sort(list(pos)), lambda i: {names}[i + 1]) AS attributes,
         min(pos) AS first_pos
    FROM ({chosen}) GROUP BY person_key, preference),
provenance AS (
  SELECT g.person_key, '[' || string_agg(CAST(json_object('source_system', r.source_system,
         'source_id', r.source_id, 'loaded_at', r.loaded_at, 'attributes', g.attributes)
         AS VARCHAR), ',' ORDER BY g.first_pos) || ']' AS provenance
    FROM given g JOIN ranked r ON r.preference = g.preference GROUP BY g.person_key)
SELECT p.person_key, {values}, p.members::int AS members,
       '{{' || array_to_string(p.source_systems, ',') || '}}' AS source_systems,
       coalesce(v.provenance, '[]') AS provenance
  FROM picked p {joins} LEFT JOIN provenance v ON v.person_key = p.person_key
 ORDER BY p.person_key
"""  # noqa: S608


_GOLDEN_COLUMNS = ("person_key", "name", "gender", "birth_date", "id_number_hash",
                   "id_number_masked", "phone_hash", "phone_masked", "current_address",
                   "division_code", "street_code", "grid_code", "members", "source_systems",
                   "provenance")


def _golden_rows(db: DuckDBAPI, records: pa.Table, features: pa.Table, keys: np.ndarray,
                 alone: np.ndarray, affected: set[str], trust: tuple[str, ...], *, full: bool
                 ) -> Iterator[pa.Table]:
    """The golden rows (_GOLDEN_COLUMNS) of the keys `affected` (every key in a full run),
    in two parts each ordered by key: first the persons of one record (`alone`: the
    records alone in their cluster), made at once, then those of several."""
    inputs = pa.table({
        "person_key": pa.array(keys.tolist(), pa.string()),
        "trust": _trust_rank(records["source_system"], trust),
        "source_system": records["source_system"], "source_id": records["source_id"],
        "valid_from": records["valid_from"],
        "name_n": features["name"], "gender_n": features["gender"],
        **{c: records[c] for c in ("birth_date", "id_number_hash", "id_number_masked",
                                    "phone_hash", "phone_masked", "current_address",
                                    "division_code", "street_code", "grid_code")},
    })
    if not full:
        wanted = pc.is_in(inputs["person_key"], pa.array(sorted(affected), pa.string()))
        inputs, alone = inputs.filter(wanted), alone[wanted.to_numpy(zero_copy_only=False)]
    single = pa.array(alone)
    con = db.duckdb_con
    con.register("golden_input", inputs.filter(pc.invert(single)))
    con.register("golden_single", inputs.filter(single))
    for query in _golden_sql():
        yield con.sql(query).to_arrow_table().select(list(_GOLDEN_COLUMNS))


class _Parts:
    """Tables handed from the run's thread to a write job as each is made: the job
    iterates (`for part in parts`) until the block that puts them ends, however it ends."""

    _END = object()

    def __init__(self) -> None:
        self._queue: Queue[Any] = Queue()

    def put(self, part: pa.Table) -> None:
        self._queue.put(part)

    def __iter__(self) -> Iterator[pa.Table]:
        return iter(self._queue.get, self._END)

    def __enter__(self) -> _Parts:
        return self

    def __exit__(self, *exc: object) -> None:
        self._queue.put(self._END)


def _write_goldens(conn: psycopg.Connection, parts: Iterable[pa.Table], previous: set[str],
                   new_keys: int, model: Model) -> int:
    """The golden rows (`parts` of _golden_rows, written as each comes) where they change:
    those of keys no record held before (not in `previous`; `new_keys` of them) COPYed
    in; how many."""
    held = pa.array(sorted(previous), pa.string())
    made, kept = 0, []
    with person_store.bulk_write(conn, "core.person_golden", new_keys):
        for part in parts:
            new = pc.invert(pc.is_in(part["person_key"], held))
            rows = part.filter(new)
            copy_arrow(conn, rows.append_column(
                "model_version", pa.array([model.version] * rows.num_rows, pa.string())),
                sql.Identifier("core", "person_golden"))
            made += rows.num_rows
            kept.append(part.filter(pc.invert(new)))
    goldens = pa.concat_tables(kept)
    conn.execute(
        "CREATE TEMP TABLE person_golden_stage (person_key text, name text, gender text,"
        " birth_date date, id_number_hash text, id_number_masked text, phone_hash text,"
        " phone_masked text, current_address text, division_code text, street_code text,"
        " grid_code text, members int, source_systems text[], provenance jsonb) ON COMMIT DROP")
    copy_arrow(conn, goldens, sql.Identifier("person_golden_stage"))
    conn.execute("ANALYZE person_golden_stage")
    columns = sql.SQL(", ").join(map(sql.Identifier, _GOLDEN_COLUMNS))
    compared = [sql.Identifier(c) for c in _GOLDEN_COLUMNS if c != "person_key"]
    updated = conn.execute(sql.SQL(
        "UPDATE core.person_golden g SET {sets}, model_version = %s, updated_at = now(),"
        " retired_at = NULL, replaced_by = NULL FROM person_golden_stage s"
        " WHERE g.person_key = s.person_key"
        " AND (g.retired_at IS NOT NULL OR ({old}) IS DISTINCT FROM ({new}))").format(
        sets=sql.SQL(", ").join(sql.SQL("{c} = s.{c}").format(c=c) for c in compared),
        old=sql.SQL(", ").join(sql.SQL("g.{}").format(c) for c in compared),
        new=sql.SQL(", ").join(sql.SQL("s.{}").format(c) for c in compared)),
        (model.version,)).rowcount
    inserted = conn.execute(sql.SQL(
        "INSERT INTO core.person_golden ({columns}, model_version)"
        " SELECT {columns}, %s FROM person_golden_stage s WHERE NOT EXISTS ("
        " SELECT 1 FROM core.person_golden g WHERE g.person_key = s.person_key)").format(
        columns=columns), (model.version,)).rowcount
    return made + updated + inserted


def _retire(conn: psycopg.Connection, retired: dict[str, str | None], unused: set[str]
            ) -> int:
    """Golden persons no record carries any more: kept, retired, pointing at their successor
    (`retired`); or at nothing (`unused`: in use before, no record of the run carries them:
    a full run's catch-all for records closed before any link was kept)."""
    keys = sorted(unused | set(retired))
    if not keys:
        return 0
    return conn.execute(
        "UPDATE core.person_golden g SET retired_at = now(), members = 0,"
        " replaced_by = r.replaced_by, updated_at = now()"
        " FROM unnest(%s::text[], %s::text[]) AS r(person_key, replaced_by)"
        " WHERE g.person_key = r.person_key AND g.retired_at IS NULL",
        (keys, [retired.get(k) for k in keys])).rowcount


def _latest_model(conn: psycopg.Connection) -> Model | None:
    row = conn.execute("SELECT model_version, settings, records FROM ops.link_model"
                       " WHERE entity = %s ORDER BY trained_at DESC, model_version LIMIT 1",
                       (ENTITY,)).fetchone()
    return Model(row[0], row[1], int(row[2])) if row else None


def _store_model(conn: psycopg.Connection, model: Model) -> None:
    # The same settings are the same model: retraining on the same records records
    # nothing new, but it becomes the latest.
    conn.execute(
        "INSERT INTO ops.link_model (model_version, entity, settings, records)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT (model_version) DO UPDATE SET trained_at = now()",
        (model.version, ENTITY, Jsonb(model.settings), model.records))


# ------------------------------------------------------------------ event reporters


def link_reporters(conn: psycopg.Connection) -> int:
    """Give every current event the person_key of its reporter: the person whose records
    carry the reporter's ID-number hash, else the one whose records carry the reporter's
    phone hash under the same masked name, where that is one person; NULL otherwise.
    Returns the events whose key changed."""
    return conn.execute("""
WITH by_id AS (
    SELECT id_number_hash AS h, min(person_key) AS k FROM core.person
     WHERE valid_to IS NULL AND person_key IS NOT NULL AND id_number_hash IS NOT NULL
     GROUP BY id_number_hash HAVING count(DISTINCT person_key) = 1),
by_phone AS (
    SELECT phone_hash AS h, mart.mask_name(name) AS n, min(person_key) AS k FROM core.person
     WHERE valid_to IS NULL AND person_key IS NOT NULL AND phone_hash IS NOT NULL
       AND name IS NOT NULL
     GROUP BY phone_hash, mart.mask_name(name) HAVING count(DISTINCT person_key) = 1),
wanted AS (
    SELECT e.row_id, coalesce(i.k, p.k) AS k FROM core.event e
      LEFT JOIN by_id i ON i.h = e.reporter_id_number_hash
      LEFT JOIN by_phone p ON p.h = e.reporter_phone_hash AND p.n = e.reporter_name_masked
     WHERE e.valid_to IS NULL
       AND (e.reporter_id_number_hash IS NOT NULL OR e.reporter_phone_hash IS NOT NULL
            OR e.reporter_person_key IS NOT NULL))
UPDATE core.event e SET reporter_person_key = w.k FROM wanted w
 WHERE e.row_id = w.row_id AND e.reporter_person_key IS DISTINCT FROM w.k
""").rowcount
