"""Quarantine holds no personal data in clear: `payload`, reasons and failed rules are
masked, the record itself is sealed (`payload_sealed`) and digested (`payload_digest`);
replay opens the seal; entries written before sealing are sealed by the migration."""

from __future__ import annotations

import json
import re
import unicodedata
import uuid

import psycopg
from psycopg.types.json import Jsonb

from base.masking import mask_payload
from base.pii import canonical_json, payload_digest, unseal_payload
from connectors.base import RowReject
from hub.pipeline import run_source
from hub.replay import replay
from quality.store import record_rejects
from schemas.model import entity
from warehouse.migrate import MIGRATIONS
from warehouse.quarantine_seal import seal_legacy_payloads

CLEAR_ID = re.compile(r"(?<![0-9])[1-9][0-9]{16}[0-9Xx](?![0-9])")
CLEAR_MOBILE = re.compile(r"(?<![0-9])1[3-9][0-9]{9}(?![0-9])")


def digits_joined(text: str) -> str:
    """The text as NFKC, with the blanks and dashes between digits dropped (a number
    keyed in groups is still the number)."""
    return re.sub(r"(?<=[0-9])[ \-](?=[0-9Xx])", "", unicodedata.normalize("NFKC", text))


def clear_numbers(text: str) -> list[str]:
    joined = digits_joined(text)
    return CLEAR_ID.findall(joined) + CLEAR_MOBILE.findall(joined)


def entries(db: psycopg.Connection, source: str) -> list[tuple]:
    return db.execute(
        "SELECT quarantine_id, source_id, payload_kind, payload, reason, failed_rules::text,"
        " payload_sealed, payload_digest, state FROM quality.quarantine"
        " WHERE source_system = %s ORDER BY quarantine_id", (source,)).fetchall()


def test_quarantine_shows_no_number_in_clear_and_keeps_the_record_sealed(db, hotline):
    source, config, server = hotline()
    summary = run_source(source, config)
    rows = entries(db, source)
    assert rows and summary.quarantined > 0
    clear_records = 0
    for _qid, sid, kind, payload, reason, failed, sealed, digest, _ in rows:
        shown = json.dumps(payload, ensure_ascii=False) + reason + failed
        assert clear_numbers(shown) == [], shown
        assert sealed is not None and digest is not None
        record = unseal_payload(sealed)
        assert digest == payload_digest(canonical_json(record))
        assert payload == mask_payload(record)
        clear_records += bool(clear_numbers(json.dumps(record, ensure_ascii=False)))
        if kind == "source" and record.get("callerPhone"):
            sent = server.data.orders[sid]["callerPhone"]
            assert re.sub(r"\D", "", record["callerPhone"]) == re.sub(r"\D", "", sent)
    assert clear_records > 0  # the seal holds what the platform sent, numbers and all
    findings = db.execute("SELECT reason FROM quality.finding WHERE source_system = %s",
                          (source,)).fetchall()
    for (reason,) in findings:
        assert clear_numbers(reason) == [], reason


def test_replay_opens_the_seal_and_a_record_met_again_stays_one_entry(db, hotline):
    source, config, _ = hotline()
    run_source(source, config)
    before = entries(db, source)
    held = sum(1 for r in before if r[2] == "source" and r[8] == "open")
    assert held > 0
    [summary] = replay(source, None, config)
    assert (summary.extracted, summary.loaded) == (held, 0)
    after = entries(db, source)
    # Same records, same digests: the open entries stand (no new entry, none superseded).
    assert [(r[0], r[7], r[8]) for r in after] == [(r[0], r[7], r[8]) for r in before]


def _run(db: psycopg.Connection, source: str) -> int:
    return db.execute("INSERT INTO ops.run (source_system, connector) VALUES (%s, 'test')"
                      " RETURNING run_id", (source,)).fetchone()[0]


def test_records_differing_only_in_masked_digits_are_not_conflated(warehouse, db):
    source = f"sealed_{uuid.uuid4().hex[:8]}"
    run_id = _run(db, source)
    one = {"房屋编码": "H1", "产权人身份号码": "211103199001011043", "联系电话": "13812348000"}
    other = {**one, "联系电话": "13812358000"}  # masked alike: 138****8000
    rejects = [RowReject(rule="row_readable", reason=f"line {i}", where=f"line {i}",
                         payload=p, source_id="H1") for i, p in enumerate((one, other, one))]
    with psycopg.connect(warehouse) as conn:
        record_rejects(conn, run_id, source, "houses", entity("house"), rejects)
        # Met again in the next read: no new entry.
        record_rejects(conn, run_id, source, "houses", entity("house"), rejects[:1])
    rows = entries(db, source)
    assert len(rows) == 2
    assert rows[0][3] == rows[1][3] == mask_payload(one)  # the same to the eye
    assert rows[0][7] != rows[1][7]
    assert [unseal_payload(r[6]) for r in rows] == [one, other]
    assert [json.loads(r[5])[0]["where"] for r in rows] == ["line 0", "line 1"]


def test_entries_written_before_sealing_are_sealed_and_masked(warehouse, db):
    source = f"legacy_{uuid.uuid4().hex[:8]}"
    run_id = _run(db, source)
    records = [{"姓名": "张三丰", "公民身份号码": "211103199001011043", "联系电话": "13812348000",
                "现住址": "盘锦市兴隆台区兴隆街道幸福小区3号楼"},
               {"callerName": "卢帅帆", "callerPhone": "13466714525", "orderNo": "2111261110000001"},
               {"name": "李四", "parties": [{"name": "王五", "idNo": "21110319900101104X"}]}]
    for i, r in enumerate(records):
        db.execute("INSERT INTO quality.quarantine (source_system, stream, source_id, entity,"
                   " run_id, rule, reason, payload, payload_kind) VALUES (%s, 's', %s, 'person',"
                   " %s, 'r', 'why', %s, 'source')", (source, f"P{i}", run_id, Jsonb(r)))
    with psycopg.connect(warehouse) as conn:
        assert seal_legacy_payloads(conn, batch_rows=2) >= len(records)
        assert seal_legacy_payloads(conn) == 0  # nothing left
    rows = entries(db, source)
    assert [unseal_payload(r[6]) for r in rows] == records
    for row, record in zip(rows, records, strict=True):
        assert row[3] == mask_payload(record)
        assert row[7] == payload_digest(canonical_json(record))
        assert clear_numbers(json.dumps(row[3], ensure_ascii=False)) == []
    assert rows[0][3]["姓名"] == "张**" and rows[0][3]["现住址"] == "盘锦市兴隆台区兴隆街道***"


def test_entries_kept_before_show_their_hash_derived_keys_as_references(warehouse, db):
    """Migration 0023 rewrites the masked payloads kept before a hash-derived key was
    shown as its reference: as base.masking masks a new entry, at any depth; the sealed
    record and its digest untouched."""
    source = f"refs_{uuid.uuid4().hex[:8]}"
    run_id = _run(db, source)
    key = "resident:" + "0a65c6feae2d8524" * 4
    kept = {"residentKey": key, "姓名": "孟*", "ids": [{"partyKey": "party:" + "ab" * 16}],
            "deviceId": "B1024"}
    db.execute("INSERT INTO quality.quarantine (source_system, stream, source_id, entity,"
               " run_id, rule, reason, payload, payload_sealed, payload_digest, payload_kind)"
               " VALUES (%s, 's', %s, 'person', %s, 'r', 'why', %s, '\\x00', 'd', 'source')",
               (source, key, run_id, Jsonb(kept)))
    migration = MIGRATIONS / "0023_quarantine_payload_refs.sql"
    with psycopg.connect(warehouse) as conn:
        conn.execute(migration.read_text())
    (payload, sealed, digest), = db.execute(
        "SELECT payload, payload_sealed, payload_digest FROM quality.quarantine"
        " WHERE source_system = %s", (source,)).fetchall()
    assert payload == mask_payload(kept)
    assert payload["residentKey"] == db.execute("SELECT mart.record_ref(%s)", (key,)).fetchone()[0]
    assert not re.search(r"[0-9a-f]{32}", json.dumps(payload))
    assert payload["deviceId"] == "B1024" and (bytes(sealed), digest) == (b"\x00", "d")
