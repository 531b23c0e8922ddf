"""The data dictionary: every column a reader or steward can see is documented, the
dictionary lists them all, its examples run as the role they are for, and the copy
committed under docs/ is the one a freshly migrated warehouse gives.

The catalog is asked directly here (has_table_privilege and friends), not through
warehouse.dictionary, so the dictionary is checked against the warehouse and not
against itself.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from base.settings import PROJECT_ROOT
from hub.cli import app
from warehouse import dictionary
from warehouse.db import Role, connect

DOCS = PROJECT_ROOT / "docs"
REGENERATE = ("HUB_UPDATE_DOCS=1 .venv/bin/pytest -q tests/integration/test_dictionary.py"
              " -k committed")
# Schemas of the server itself, readable by everyone and no part of the hub.
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")

# Every column a role may SELECT, by relation (a column grant counts).
VISIBLE_COLUMNS = """
SELECT n.nspname || '.' || c.relname, a.attname, coalesce(col_description(c.oid, a.attnum), ''),
       coalesce(obj_description(c.oid, 'pg_class'), '')
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
   AND n.nspname <> ALL(%(system)s) AND n.nspname NOT LIKE 'pg_temp%%'
   AND has_schema_privilege(%(role)s, n.oid, 'USAGE')
   AND (has_table_privilege(%(role)s, c.oid, 'SELECT')
        OR has_column_privilege(%(role)s, c.oid, a.attnum, 'SELECT'))
 ORDER BY 1, a.attnum
"""


def visible(db: psycopg.Connection, role: Role) -> list[tuple[str, str, str, str]]:
    return db.execute(VISIBLE_COLUMNS, {"role": role.value,
                                        "system": list(SYSTEM_SCHEMAS)}).fetchall()


@pytest.mark.parametrize("role", [Role.READER, Role.STEWARD])
def test_every_column_the_role_may_read_has_a_comment(db: psycopg.Connection, role: Role):
    columns = visible(db, role)
    assert {r[0] for r in columns} >= {"mart.event_current", "mart.person"}
    bare = [f"{r[0]}.{r[1]}" for r in columns if not r[2].strip()]
    assert bare == [], (f"{role.value} may read these columns, which have no comment: add one"
                        " in a new migration (what the value means, its unit, its code standard,"
                        " how it is masked)")
    undescribed = sorted({r[0] for r in columns if not r[3].strip()})
    assert undescribed == [], f"{role.value} may read these relations, which have no comment"


def test_readers_reach_the_marts_only(db: psycopg.Connection):
    """What hub_reader may read is the mart schema plus the three small ops tables the
    hub's reading commands check the warehouse with; nothing of core, raw or quality."""
    schemas = {r[0].split(".")[0] for r in visible(db, Role.READER)}
    assert schemas == {"mart", "ops"}
    ops_tables = {r[0] for r in visible(db, Role.READER) if r[0].startswith("ops.")}
    assert ops_tables <= {"ops.schema_state", "ops.schema_migration", "ops.city_setting"}


@pytest.fixture(scope="module")
def reader_dictionary(warehouse: str) -> dictionary.Dictionary:
    with connect(Role.READER) as conn:
        return dictionary.build(conn, Role.READER)


@pytest.fixture(scope="module")
def steward_dictionary(warehouse: str) -> dictionary.Dictionary:
    with connect(Role.STEWARD) as conn:
        return dictionary.build(conn, Role.STEWARD)


def section(markdown: str, relation: str) -> str:
    """The Markdown of one relation: from its heading to the next relation's."""
    start = markdown.index(f"### `{relation}`")
    following = markdown.find("\n### ", start + 1)
    return markdown[start:following if following > 0 else len(markdown)]


@pytest.mark.parametrize("role", [Role.READER, Role.STEWARD])
def test_the_dictionary_lists_every_column_the_role_may_read(
        db: psycopg.Connection, role: Role, reader_dictionary: dictionary.Dictionary,
        steward_dictionary: dictionary.Dictionary):
    d = reader_dictionary if role is Role.READER else steward_dictionary
    markdown = dictionary.to_markdown(d)
    page = dictionary.to_html(d)
    assert f"Role described: `{role.value}`" in markdown
    columns = visible(db, role)
    assert {r.qualified for r in d.relations} == {r[0] for r in columns}
    for relation, column, comment, _ in columns:
        text = section(markdown, relation)
        assert f"| `{column}` |" in text, f"{relation}.{column} missing from the dictionary"
        listed = d.relation(relation)
        assert [c.meaning for c in listed.columns if c.name == column] == [comment]
        assert f"<code>{column}</code>" in page
    # The steward's view of the quarantine leaves the sealed payload out.
    if role is Role.STEWARD:
        assert not any("payload_sealed" in (c.name for c in r.columns) for r in d.relations)


def test_masked_columns_and_code_standards_are_flagged(reader_dictionary: dictionary.Dictionary):
    person = {c.name: c for c in reader_dictionary.relation("mart.person").columns}
    for name in ("name_masked", "id_number_masked", "phone_masked", "household_address_masked",
                 "current_address_masked"):
        assert person[name].masked, name
    assert "211103********123X" in (person["id_number_masked"].masked or "")
    assert "mart.mask_address" in (person["current_address_masked"].masked or "")
    assert "GB 11643" in person["id_number_masked"].standards
    assert person["gender"].masked is None and person["population_type"].masked is None
    event = {c.name: c for c in reader_dictionary.relation("mart.event").columns}
    assert "mart.mask_text" in (event["description"].masked or "")
    assert event["reporter_name_masked"].masked and event["reporter_phone_masked"].masked
    assert "hub taxonomy" in event["category_code"].standards
    assert "hub statuses" in event["status"].standards
    assert "GB/T 2260" in event["division_code"].standards
    assert "GB 32100" in {s for c in reader_dictionary.relation("mart.organization").columns
                          for s in c.standards}
    assert "GB/T 28181" in {s for c in reader_dictionary.relation("mart.thing").columns
                            for s in c.standards}
    # Each masked column of the Markdown shows it, stars escaped so they stay stars.
    markdown = dictionary.to_markdown(reader_dictionary)
    assert "211103\\*\\*\\*\\*\\*\\*\\*\\*123X" in section(markdown, "mart.person")


def test_grains_rows_and_reference_lists(reader_dictionary: dictionary.Dictionary):
    person = reader_dictionary.relation("mart.person")
    assert person.grain.startswith("one row per person record per source platform")
    assert person.row_security and person.reads == ("core.person",)
    assert reader_dictionary.relation("mart.governance_weekly").row_security
    assert reader_dictionary.relation("mart.governance_weekly").grain.startswith(
        "one row per report week")
    assert not reader_dictionary.relation("mart.event_category").row_security
    codes = {c.code for c in reader_dictionary.categories}
    assert {"SR", "SR01", "MD", "QT"} <= codes
    assert [s.status for s in reader_dictionary.statuses][:3] == [
        "reported", "accepted", "dispatched"]
    markdown = dictionary.to_markdown(reader_dictionary)
    for figure in ("办结率", "按期办结率", "满意率", "响应时长", "处置时长", "重复报告率"):
        assert f"| {figure} |" in markdown
    # The figures' columns exist where the dictionary says they are.
    weekly = {c.name for c in reader_dictionary.relation("mart.governance_weekly").columns}
    for f in dictionary.FIGURES:
        assert {c.strip() for c in f.column.split(",")} <= weekly, f.column


def test_every_mart_view_has_an_example_that_runs_as_its_reader(
        warehouse: str, reader_dictionary: dictionary.Dictionary,
        steward_dictionary: dictionary.Dictionary):
    marts = [r.qualified for r in reader_dictionary.relations if r.schema == "mart"]
    assert sorted(set(marts) - set(dictionary.EXAMPLES)) == [], "mart views without an example"
    steward_only = {r.qualified for r in steward_dictionary.relations} - set(marts)
    for qualified, example in sorted(dictionary.EXAMPLES.items()):
        role = Role.READER if qualified.startswith("mart.") else Role.STEWARD
        assert qualified in marts or qualified in steward_only, f"{qualified}: not {role.value}'s"
        assert qualified in example.sql
        with connect(role) as conn:
            conn.execute("SET TRANSACTION READ ONLY")
            conn.execute(example.sql.encode()).fetchall()  # a fixed query of the hub's own
            conn.rollback()


def test_hub_docs_writes_markdown_and_html(warehouse: str, tmp_path: Path):
    runner = CliRunner()
    result = runner.invoke(app, ["docs", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    md, page = tmp_path / "data-dictionary.md", tmp_path / "data-dictionary.html"
    assert result.output.split() == [str(md), str(page)]
    html = page.read_text(encoding="utf-8")
    # Self-contained: nothing fetched from elsewhere.
    assert not re.search(r"<(link|script|img)\b|\bsrc=|url\(", html)
    assert "mart.event_current" in html and "hub_reader" in md.read_text(encoding="utf-8")

    result = runner.invoke(app, ["docs", "--out", str(tmp_path), "--role", "steward"])
    assert result.exit_code == 0, result.output
    steward = (tmp_path / "data-dictionary-steward.md").read_text(encoding="utf-8")
    assert "Role described: `hub_steward`" in steward and "### `ops.run_review`" in steward
    assert "### `ops.run_review`" not in md.read_text(encoding="utf-8")


def test_the_committed_dictionary_is_current(reader_dictionary: dictionary.Dictionary):
    expected = {DOCS / "data-dictionary.md": dictionary.to_markdown(reader_dictionary),
                DOCS / "data-dictionary.html": dictionary.to_html(reader_dictionary)}
    if os.environ.get("HUB_UPDATE_DOCS"):
        dictionary.write(reader_dictionary, DOCS)
    for path, text in expected.items():
        assert path.is_file() and path.read_text(encoding="utf-8") == text, (
            f"{path.relative_to(PROJECT_ROOT)} is not what the warehouse's catalog gives now;"
            f" regenerate it: {REGENERATE}")
