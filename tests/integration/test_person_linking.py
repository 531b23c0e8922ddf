"""Person linking over a real warehouse: who links, who stays apart, and what lasts.

The records are written straight into core.person of a database of this module's own
(migrated by the hub), so link_people sees these people and nobody else's: one person
on three platforms spelled three ways, namesakes in one grid, twins, a parent and child
sharing a phone, a father and son of one name. Each run is link_people as the pipeline
(hub_loader) runs it.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterator
from datetime import date
from typing import Any

import duckdb
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from base.identity import citizen_id_identity, phone_identity
from base.pii import keyed_hash
from base.settings import settings
from link import people
from link.people import LinkInProgress, LinkSummary, link_people, merge, revoke, split
from sandbox.city import citizen_id
from warehouse.db import Role, connect, conninfo
from warehouse.migrate import migrate

G1 = "211103001001001"
G2 = "211103001001002"
STREET = "211103001"
ADDRESS = "辽宁省盘锦市兴隆台区兴隆街道兴隆大街12号幸福社区5号楼3单元201室"
ID_A = citizen_id("211103", date(1980, 5, 12), 11, True)
PHONE_A = "13840001111"
FAMILY_PHONE = "13840002222"
CHEN_PHONE = "13840003333"


@pytest.fixture(scope="module")
def people_db(warehouse: str) -> Iterator[str]:
    """A migrated database of the module's own; the hub points at it meanwhile."""
    params = conninfo_to_dict(warehouse)
    name = f"{params['dbname']}_people"
    with psycopg.connect(warehouse, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_conninfo(**{**params, "dbname": name})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HUB_WAREHOUSE_URL", url)
        # The first run writes into empty tables as a city's first run does (a million
        # rows): their secondary indexes are built after the rows, at any size here.
        mp.setenv("HUB_DEFER_INDEXES_FROM", "1")
        settings.cache_clear()
        conninfo.cache_clear()
        migrate()
        yield url
    settings.cache_clear()
    conninfo.cache_clear()
    with psycopg.connect(warehouse, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def id_hash(number: str) -> str:
    return keyed_hash(citizen_id_identity(number))


def phone_hash(number: str) -> str:
    return keyed_hash(phone_identity(number))


def person(system: str, sid: str, name: str | None, *, id_number: str | None = None,
           phone: str | None = None, birth: date | None = None, gender: str | None = None,
           grid: str | None = None, address: str | None = None, role: str = "resident"
           ) -> dict[str, Any]:
    return {"source_system": system, "source_id": sid, "name": name, "gender": gender,
            "id_number_hash": id_hash(id_number) if id_number else None,
            "id_number_masked": (id_number[:6] + "********" + id_number[-4:]) if id_number
            else None,
            "birth_date": birth, "phone_hash": phone_hash(phone) if phone else None,
            "phone_masked": (phone[:3] + "****" + phone[-4:]) if phone else None,
            "current_address": address, "role": role, "division_code": "211103",
            "street_code": STREET, "grid_code": grid}


def insert(db: psycopg.Connection, rows: list[dict[str, Any]]) -> None:
    for r in rows:
        db.execute(sql.SQL("INSERT INTO core.person ({}, record_hash, valid_from, source_stream)"
                           " VALUES ({}, md5(random()::text), now(), 'test')").format(
            sql.SQL(", ").join(map(sql.Identifier, r)),
            sql.SQL(", ").join(sql.Placeholder() * len(r))), list(r.values()))


def close(db: psycopg.Connection, system: str, sid: str) -> None:
    db.execute("UPDATE core.person SET valid_to = now() WHERE source_system = %s"
               " AND source_id = %s AND valid_to IS NULL", (system, sid))


def keys(db: psycopg.Connection) -> dict[tuple[str, str], str]:
    return {(s, i): k for s, i, k in db.execute(
        "SELECT source_system, source_id, person_key FROM core.person WHERE valid_to IS NULL")}


def run(full: bool = False) -> LinkSummary:
    with connect(Role.LOADER) as conn:
        summary = link_people(conn, full=full)
        conn.commit()
    return summary


def city() -> list[dict[str, Any]]:
    """The module's people as the platforms hold them, hashed when asked for: under the
    session's personal-data key, not at import (collection runs before the session's
    environment is set, and would hash under the checkout's own key file)."""
    return [
        # One person on three platforms: grid resident, 综治 party (traditional characters,
        # the ID keyed with spaces), 12345 caller (a full-width space, no ID).
        person("gridmgmt", "R-A", "刘伟", id_number=ID_A, phone=PHONE_A, birth=date(1980, 5, 12),
               gender="男", grid=G1, address=ADDRESS),
        person("zongzhi", "party:a", "劉偉", id_number=f"{ID_A[:6]} {ID_A[6:14]} {ID_A[14:]}",
               phone=PHONE_A, grid=G1, role="party"),
        person("hotline12345", "caller:a", "刘\u3000伟", phone=PHONE_A, role="caller"),
        # Namesakes in one grid: two with IDs, one without and born another day.
        person("gridmgmt", "R-F1", "王芳", id_number=citizen_id("211103", date(1975, 3, 1), 21, False),
               birth=date(1975, 3, 1), gender="女", grid=G1, phone="13840004444"),
        person("gridmgmt", "R-F2", "王芳", id_number=citizen_id("211103", date(1990, 8, 9), 22, False),
               birth=date(1990, 8, 9), gender="女", grid=G1),
        person("citymgmt", "F3", "王芳", birth=date(1968, 1, 30), gender="女", grid=G1),
        # Twins: one birth date, one address, one family phone, two IDs.
        person("gridmgmt", "R-T1", "张子涵", id_number=citizen_id("211103", date(2001, 6, 1), 31, True),
               birth=date(2001, 6, 1), gender="男", grid=G2, phone=FAMILY_PHONE, address=ADDRESS),
        person("gridmgmt", "R-T2", "张子轩", id_number=citizen_id("211103", date(2001, 6, 1), 32, True),
               birth=date(2001, 6, 1), gender="男", grid=G2, phone=FAMILY_PHONE, address=ADDRESS),
        person("hotline12345", "caller:t", "張子涵", phone=FAMILY_PHONE, role="caller"),
        # Parent and child sharing a phone; the child also a party without ID.
        person("gridmgmt", "R-P", "陈建国", id_number=citizen_id("211103", date(1955, 2, 2), 41, True),
               birth=date(1955, 2, 2), gender="男", grid=G2, phone=CHEN_PHONE),
        person("gridmgmt", "R-C", "陈明", id_number=citizen_id("211103", date(1985, 9, 9), 42, True),
               birth=date(1985, 9, 9), gender="男", grid=G2, phone=CHEN_PHONE),
        person("zongzhi", "party:c", "陈 明", phone=CHEN_PHONE, role="party"),
        # Father and son of one name and one phone, the son known without an ID.
        person("gridmgmt", "R-W1", "赵伟", id_number=citizen_id("211103", date(1950, 4, 4), 51, True),
               birth=date(1950, 4, 4), gender="男", grid=G2, phone="13840005555"),
        person("citymgmt", "W2", "赵伟", birth=date(1979, 7, 7), gender="男", grid=G2,
               phone="13840005555"),
    ]


_LINK_TABLES = ("core.person_match", "core.person_link", "core.person_golden")


def indexes(db: psycopg.Connection) -> dict[str, int]:
    """The secondary (non-unique) indexes of linking's tables: name → oid."""
    return {name: oid for name, oid in db.execute(
        "SELECT i.indexrelid::regclass::text, i.indexrelid::bigint FROM pg_index i"
        " WHERE i.indrelid = ANY(%s::regclass[]) AND NOT i.indisunique", (list(_LINK_TABLES),))}


@pytest.fixture(scope="module")
def linked(people_db: str) -> dict[str, Any]:
    assert run().records == 0  # nothing to link yet: a run that does nothing
    with psycopg.connect(people_db, autocommit=True) as db:
        before = indexes(db)
        insert(db, city())
        db.execute(
            "INSERT INTO core.event (source_system, source_id, record_hash, valid_from,"
            " reporter_id_number_hash, reporter_phone_hash, reporter_name_masked) VALUES"
            " ('hotline12345', 'E1', 'h', now(), %s, NULL, '刘*'),"
            " ('hotline12345', 'E2', 'h', now(), NULL, %s, '刘*'),"
            " ('hotline12345', 'E3', 'h', now(), NULL, %s, '张**'),"
            " ('hotline12345', 'E4', 'h', now(), NULL, %s, '李*')",
            (id_hash(ID_A), phone_hash(PHONE_A), phone_hash(FAMILY_PHONE), phone_hash(PHONE_A)))
    summary = run(full=True)
    with psycopg.connect(people_db, autocommit=True) as db:
        return {"summary": summary, "keys": keys(db), "indexes": (before, indexes(db))}


def test_the_first_run_builds_its_tables_indexes_after_their_rows(linked, people_db):
    before, after = linked["indexes"]
    assert len(before) == 6 and before.keys() == after.keys()  # every one there again
    assert all(after[name] != oid for name, oid in before.items())  # each built anew
    with psycopg.connect(people_db, autocommit=True) as db:
        assert db.execute("SELECT count(*) FROM ops.deferred_index").fetchone() == (0,)
        # The tables were analyzed with their indexes: the planner knows their rows.
        for table in _LINK_TABLES:
            assert db.execute("SELECT reltuples > 0 FROM pg_class WHERE oid = %s::regclass",
                              (table,)).fetchone() == (True,)


def test_one_person_on_three_platforms_links(linked, people_db):
    k = linked["keys"]
    assert k[("gridmgmt", "R-A")] == k[("zongzhi", "party:a")] == k[("hotline12345", "caller:a")]
    assert re.fullmatch(r"P[a-z]{12}", k[("gridmgmt", "R-A")])
    with psycopg.connect(people_db) as db:
        links = {sid: (m, p, e) for sid, m, p, e in db.execute(
            "SELECT source_id, method, match_probability, evidence FROM core.person_link"
            " WHERE source_id IN ('R-A', 'party:a', 'caller:a')")}
        golden = db.execute("SELECT name, members, source_systems, provenance, birth_date,"
                            " id_number_hash FROM core.person_golden WHERE person_key = %s",
                            (k[("gridmgmt", "R-A")],)).fetchone()
    assert links["R-A"][0] == links["party:a"][0] == "id_number"
    method, probability, evidence = links["caller:a"]
    assert method == "probabilistic" and probability >= 0.99
    assert evidence["comparisons"]["name"] == "exact" and evidence["comparisons"]["phone"] == "exact"
    name, members, systems, provenance, birth, id_number = golden
    assert (name, members, birth) == ("刘伟", 3, date(1980, 5, 12))
    assert systems == ["gridmgmt", "hotline12345", "zongzhi"]
    assert id_number == id_hash(ID_A)
    # The most trusted platform's values: the grid platform's resident record; the phone
    # too (the 综治 party's record is the same person's, but less trusted).
    assert provenance[0]["source_id"] == "R-A" and provenance[0]["attributes"] == [
        "name", "gender", "birth_date", "id_number", "phone", "current_address", "location"]
    assert len(provenance) == 1


def test_namesakes_twins_and_families_stay_apart(linked):
    k = linked["keys"]
    assert len({k[("gridmgmt", "R-F1")], k[("gridmgmt", "R-F2")], k[("citymgmt", "F3")]}) == 3
    assert k[("gridmgmt", "R-T1")] != k[("gridmgmt", "R-T2")]
    # The caller who gave one twin's name is that twin, not the other.
    assert k[("hotline12345", "caller:t")] == k[("gridmgmt", "R-T1")]
    assert k[("gridmgmt", "R-P")] != k[("gridmgmt", "R-C")]
    assert k[("zongzhi", "party:c")] == k[("gridmgmt", "R-C")]
    # One name, one phone, two birth dates: father and son.
    assert k[("gridmgmt", "R-W1")] != k[("citymgmt", "W2")]
    assert linked["summary"].mode == "full"


def test_event_reporters_get_their_person(linked, people_db):
    k = linked["keys"]
    with psycopg.connect(people_db) as db:
        reporters = dict(db.execute("SELECT source_id, reporter_person_key FROM core.event"
                                    " WHERE valid_to IS NULL"))
    assert reporters["E1"] == reporters["E2"] == k[("gridmgmt", "R-A")]
    assert reporters["E3"] is None  # the twins' phone and 张**: two people
    assert reporters["E4"] is None  # the phone, another name


def test_readers_see_keys_and_golden_persons_masked(linked):
    with connect(Role.READER) as conn:
        columns = [r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'mart'"
            " AND table_name IN ('person', 'person_golden')")]
        assert "person_key" in columns and not [c for c in columns if c.endswith("_hash")]
        shown = conn.execute("SELECT person_key FROM mart.person WHERE source_system = 'gridmgmt'"
                             " AND source_id = 'R-A'").fetchone()
        assert shown == (linked["keys"][("gridmgmt", "R-A")],)
        golden = conn.execute("SELECT name_masked, birth_year, members, source_systems"
                              " FROM mart.person_golden WHERE person_key = %s", shown).fetchone()
    assert golden == ("刘*", 1980, 3, ["gridmgmt", "hotline12345", "zongzhi"])


def test_keys_stand_through_new_records_an_incremental_run_and_a_rebuild(linked, people_db):
    before = keys_now(people_db)
    with psycopg.connect(people_db, autocommit=True) as db:
        # A new platform record of A, and a new version of the caller record.
        insert(db, [person("video", "v:a", "刘伟", id_number=ID_A, role="party")])
        close(db, "hotline12345", "caller:a")
        insert(db, [person("hotline12345", "caller:a", "刘伟", phone=PHONE_A, role="caller")])
    summary = run()
    assert summary.mode == "incremental"
    assert summary.compared < summary.records
    after = keys_now(people_db)
    assert after[("video", "v:a")] == before[("gridmgmt", "R-A")]
    assert {r: k for r, k in after.items() if r in before} == before
    rebuilt = run(full=True)
    assert rebuilt.mode == "full" and keys_now(people_db) == after


def test_a_split_holds_through_reruns_and_a_merge_joins(linked, people_db):
    with connect(Role.LOADER) as conn:
        decision = split(conn, ("hotline12345", "caller:t"), ("gridmgmt", "R-T1"), "王科长",
                         "called about the other twin's case: checked with the grid worker")
        conn.commit()
    run()
    k = keys_now(people_db)
    assert k[("hotline12345", "caller:t")] != k[("gridmgmt", "R-T1")]
    run(full=True)
    assert keys_now(people_db) == k
    with connect(Role.LOADER) as conn:
        with pytest.raises(ValueError, match="reason"):
            merge(conn, k[("gridmgmt", "R-F2")], k[("citymgmt", "F3")], "王科长", " ")
        merge(conn, k[("gridmgmt", "R-F2")], k[("citymgmt", "F3")], "王科长",
              "same woman: 1968 is a typo in 城管's register, checked on site")
        revoke(conn, decision, "王科长", "the caller was the twin after all")
        conn.commit()
    run()
    k = keys_now(people_db)
    assert k[("gridmgmt", "R-F2")] == k[("citymgmt", "F3")]
    assert k[("gridmgmt", "R-F1")] != k[("gridmgmt", "R-F2")]
    assert k[("hotline12345", "caller:t")] == k[("gridmgmt", "R-T1")]
    run(full=True)
    assert keys_now(people_db) == k


def test_a_new_call_finds_its_resident_by_name_in_her_street(linked, people_db):
    """An incremental run: a resident registered without a phone, then her 12345 call (name
    and phone, no ID) links to her; a caller giving only a name two residents of the street
    share links to neither."""
    with psycopg.connect(people_db, autocommit=True) as db:
        insert(db, [person("gridmgmt", "R-S", "孙丽华", id_number=citizen_id(
            "211103", date(1962, 10, 3), 61, False), birth=date(1962, 10, 3), gender="女",
            grid=G2)])
    run()
    with psycopg.connect(people_db, autocommit=True) as db:
        insert(db, [person("hotline12345", "caller:s", "孫麗華", phone="13840006666",
                           role="caller"),
                    person("hotline12345", "caller:f", "王芳", phone="13840007777",
                           role="caller")])
    summary = run()
    assert summary.mode == "incremental" and summary.compared < summary.records
    k = keys_now(people_db)
    assert k[("hotline12345", "caller:s")] == k[("gridmgmt", "R-S")]
    assert k[("hotline12345", "caller:f")] not in {
        k[("gridmgmt", "R-F1")], k[("gridmgmt", "R-F2")], k[("citymgmt", "F3")]}
    run(full=True)
    assert keys_now(people_db) == k


def test_a_vanished_record_leaves_its_person(linked, people_db):
    k = keys_now(people_db)
    with psycopg.connect(people_db, autocommit=True) as db:
        close(db, "citymgmt", "W2")
    run()
    with psycopg.connect(people_db) as db:
        golden = db.execute("SELECT members, retired_at IS NOT NULL FROM core.person_golden"
                            " WHERE person_key = %s", (k[("citymgmt", "W2")],)).fetchone()
        link = db.execute("SELECT 1 FROM core.person_link WHERE source_id = 'W2'").fetchone()
    assert golden == (0, True) and link is None


def keys_now(url: str) -> dict[tuple[str, str], str]:
    with psycopg.connect(url) as db:
        return keys(db)


def test_side_writes_a_run_could_not_commit_are_written_by_the_next(linked, people_db,
                                                                    monkeypatch):
    """The run commits, then its process ends before its side writes (the records' keys
    and the golden persons, each on a connection of its own) are committed: the next run
    is a full one and writes them."""
    with psycopg.connect(people_db, autocommit=True) as db:
        insert(db, [person("citymgmt", "C-A", "刘伟", id_number=ID_A, role="party"),
                    person("citymgmt", "C-N", "欧阳晓", phone="13840009999", role="party")])

    def process_ends(*run: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(people, "_commit_sides", process_ends)
    with pytest.raises(KeyboardInterrupt):
        run(full=True)
    monkeypatch.undo()
    with psycopg.connect(people_db, autocommit=True) as db:
        # Loaded long before (person_store.LOAD_WINDOW): an incremental run would not
        # compare the records again.
        db.execute("UPDATE core.person SET valid_from = valid_from - interval '2 days'"
                   " WHERE source_id IN ('C-A', 'C-N')")
    with psycopg.connect(people_db) as db:
        links = dict(db.execute("SELECT source_id, person_key FROM core.person_link"
                                " WHERE source_id IN ('C-A', 'C-N')").fetchall())
        assert links.keys() == {"C-A", "C-N"}  # the run committed its links
        assert keys(db)[("citymgmt", "C-A")] is None  # and not the records' keys
        assert db.execute("SELECT count(*) FROM core.person_golden WHERE person_key = %s",
                          (links["C-N"],)).fetchone() == (0,)  # nor the new golden person
        assert db.execute("SELECT side_writes_pending FROM ops.link_run WHERE entity ="
                          " 'person' ORDER BY started_at DESC LIMIT 1").fetchone() == (True,)
    assert run().mode == "full"
    with psycopg.connect(people_db) as db:
        assert keys(db)[("citymgmt", "C-A")] == links["C-A"] == keys(db)[("gridmgmt", "R-A")]
        assert keys(db)[("citymgmt", "C-N")] == links["C-N"]
        unlike = db.execute(
            "SELECT count(*) FROM core.person p JOIN core.person_link l USING (source_system,"
            " source_id) WHERE p.valid_to IS NULL AND p.person_key IS DISTINCT FROM"
            " l.person_key").fetchone()
        no_golden = db.execute(
            "SELECT count(*) FROM core.person_link l WHERE NOT EXISTS (SELECT 1 FROM"
            " core.person_golden g WHERE g.person_key = l.person_key AND g.retired_at IS NULL"
            " AND g.members > 0)").fetchone()
        pending = db.execute("SELECT count(*) FROM ops.link_run WHERE side_writes_pending"
                             ).fetchone()
    assert unlike == (0,) and no_golden == (0,) and pending == (0,)
    assert run().mode == "incremental"  # and the one after that as asked


def test_no_run_starts_before_every_write_of_the_last_is_committed(linked, people_db,
                                                                   monkeypatch):
    commit_sides = people._commit_sides
    free_meanwhile = []

    def committing(*run: Any) -> None:  # the run's own transaction has committed
        with psycopg.connect(people_db) as other:
            got = other.execute("SELECT pg_try_advisory_xact_lock(hashtext(%s))",
                                (people._LOCK,)).fetchone()
            free_meanwhile.append(got is not None and got[0])
        commit_sides(*run)

    monkeypatch.setattr(people, "_commit_sides", committing)
    run()
    assert free_meanwhile == [False]
    with psycopg.connect(people_db) as holder:  # a run under way: another is refused
        holder.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (people._LOCK,))
        with pytest.raises(LinkInProgress):
            run()
    assert run().mode == "incremental"  # and nothing of it stands in the next one's way


def test_a_run_inside_the_callers_transaction_commits_its_keys_with_it(linked, people_db):
    with psycopg.connect(people_db, autocommit=True) as db:
        insert(db, [person("video", "v:c", "陈明", phone=CHEN_PHONE, role="party")])
    with connect(Role.LOADER) as conn:
        conn.execute("SELECT 1")  # the caller's transaction is open
        link_people(conn)
        conn.rollback()  # and the caller changes its mind: nothing of the run stays
    assert ("video", "v:c") in keys_now(people_db) and keys_now(people_db)[("video", "v:c")] is None
    with connect(Role.LOADER) as conn:
        conn.execute("SELECT 1")
        summary = link_people(conn)
        conn.commit()
    assert summary.compared >= 1
    with psycopg.connect(people_db) as db:
        link = db.execute("SELECT person_key FROM core.person_link WHERE source_id = 'v:c'"
                          ).fetchone()
        assert link is not None and keys(db)[("video", "v:c")] == link[0]
        assert db.execute("SELECT side_writes_pending FROM ops.link_run WHERE entity ="
                          " 'person' ORDER BY started_at DESC LIMIT 1").fetchone() == (False,)


def test_the_cycle_collector_pauses_for_a_run_and_is_left_as_it_was(linked, monkeypatch):
    during = []
    drop_ambiguous = people._drop_ambiguous

    def watched(*args: Any) -> Any:
        during.append(gc.isenabled())
        return drop_ambiguous(*args)

    monkeypatch.setattr(people, "_drop_ambiguous", watched)
    run()
    assert during == [False] and gc.isenabled()
    gc.disable()  # a caller that keeps it off finds it off
    try:
        run()
        assert during == [False, False] and not gc.isenabled()
    finally:
        gc.enable()


# A write job left waiting for a part never made would hang the run: the thread method
# ends the whole session with every thread's stack instead.
@pytest.mark.timeout(120, method="thread")
def test_a_run_failing_while_its_golden_rows_are_written_ends_and_keeps_nothing(
        linked, people_db, monkeypatch):
    """The golden rows go to the warehouse part by part as they are made: a failure
    making the second part ends the run (the write of the first does not wait for ever)
    and the run leaves nothing."""
    with psycopg.connect(people_db, autocommit=True) as db:
        insert(db, [person("video", "v:f", "赵伟", phone="13840005555", role="party")])
        runs = db.execute("SELECT count(*) FROM ops.link_run").fetchone()
    single, _ = people._golden_sql()
    monkeypatch.setattr(people, "_golden_sql", lambda: (single, "SELECT no_such_column"))
    with pytest.raises(duckdb.Error):
        run()
    assert gc.isenabled()  # the collector paused for the run is back however it ended
    monkeypatch.undo()
    with psycopg.connect(people_db) as db:
        assert db.execute("SELECT count(*) FROM ops.link_run").fetchone() == runs
        assert db.execute("SELECT count(*) FROM core.person_link WHERE source_id = 'v:f'"
                          ).fetchone() == (0,)
    assert run().compared >= 1
    assert keys_now(people_db)[("video", "v:f")] is not None
