"""Migrations: versioned, idempotent, and the real division table loaded."""

from __future__ import annotations

import pytest

from warehouse.migrate import migrate, migrations


def test_migrating_again_applies_nothing(warehouse, db):
    assert migrate() == []
    applied = [r[0] for r in db.execute("SELECT version FROM ops.schema_migration ORDER BY 1")]
    assert applied == [m.version for m in migrations()]


def test_layers_exist(db, warehouse):
    schemas = {r[0] for r in db.execute("SELECT nspname FROM pg_namespace")}
    assert {"raw", "core", "quality", "mart", "ops"} <= schemas
    tables = {r[0] for r in db.execute(
        "SELECT table_schema || '.' || table_name FROM information_schema.tables")}
    assert {"core.division", "core.grid", "core.house", "core.person", "core.organization",
            "core.thing", "core.event", "quality.quarantine", "ops.run"} <= tables


@pytest.mark.parametrize("code, name", [("211103", "兴隆台区"), ("211122", "盘山县"),
                                        ("320614", "海门区"), ("2111", "盘锦市")])
def test_real_division_codes_are_loaded(db, warehouse, code, name):
    row = db.execute("SELECT name, table_version FROM core.division WHERE code = %s"
                     " AND valid_to IS NULL", (code,)).fetchone()
    assert row == (name, "2022-10-31")


def test_a_retired_code_is_known_as_retired(db, warehouse):
    row = db.execute("SELECT retired_on::text, replaced_by FROM core.division"
                     " WHERE code = '320684'").fetchone()
    assert row == ("2020-06-01", "320614")


def test_streets_of_panjin_are_there(db, warehouse):
    n = db.execute("SELECT count(*) FROM core.division WHERE level = 'street'"
                   " AND parent_code LIKE '2111%'").fetchone()[0]
    assert n == 50


def test_tables_and_columns_are_documented(db, warehouse):
    comment = db.execute("SELECT obj_description('core.event'::regclass)").fetchone()[0]
    assert "Grain:" in comment
    undocumented = db.execute(
        "SELECT a.attname FROM pg_attribute a WHERE a.attrelid = 'core.event'::regclass"
        " AND a.attnum > 0 AND NOT a.attisdropped AND a.attname <> 'row_id'"
        " AND col_description(a.attrelid, a.attnum) IS NULL").fetchall()
    assert undocumented == []


def test_an_edited_migration_is_refused(db, warehouse):
    db.execute("UPDATE ops.schema_migration SET checksum = 'edited' WHERE version = 1")
    try:
        with pytest.raises(RuntimeError, match="edited after it was applied"):
            migrate()
    finally:
        db.execute("UPDATE ops.schema_migration SET checksum = %s WHERE version = 1",
                   (migrations()[0].checksum,))
