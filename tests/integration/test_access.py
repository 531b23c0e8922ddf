"""Departments let in: each role and a jurisdiction-scoped login, over real connections.

The warehouse holds a grid platform's residents, houses, organizations and events
(names, ID numbers, phones, home addresses) loaded by the real pipeline, plus whatever
the session's other tests loaded. Everything here logs in as the login it is about.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from typer.testing import CliRunner

from base import clock
from base.masking import _fold as fold
from base.masking import mask_address, mask_name
from base.masking import mask_text as python_mask_text
from hub.cli import app
from hub.pipeline import run_source
from sandbox.city import City
from sandbox.gridmgmt import GridData
from sandbox.gridmgmt_server import GridPlatform
from tests.support.sources import write_sources_file
from warehouse import access
from warehouse.access import Jurisdiction
from warehouse.db import Role, connect

SIM_END = datetime(2026, 11, 20)
DISTRICT = "211103"  # 兴隆台区
TOKEN = "access-test-token"
# 18-character ID numbers (valid check character or not: a mistyped number is still a
# person's) and mainland mobiles, not glued to other digits.
ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])\d{6}(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"
                       r"\d{3}[\dXx](?![0-9A-Za-z])")
HEX64 = re.compile(r"[0-9a-f]{64}")
MOBILE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
# Machine identifiers (GX's random UUIDs for each expectation and validation, md5
# fingerprints, digests): a run of digits inside one is no phone or ID number, and
# 11 digits in a row happen there about once in fifty GX results.
IDENTIFIER = re.compile(r"(?<![0-9a-f])(?:[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}|[0-9a-f]{32}"
                        r"|[0-9a-f]{64})(?![0-9a-f])")
READER_RELATIONS = ("mart.event_current", "mart.event", "mart.person", "mart.house",
                    "mart.organization", "mart.grid", "mart.thing")


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory, warehouse: str) -> str:
    """A grid platform's four days, loaded by the pipeline; returns the source name."""
    folder = tmp_path_factory.mktemp("access")
    data = GridData(City("2111", scale=0.001), days=4, end=SIM_END)
    source = f"grid_{uuid.uuid4().hex[:8]}"
    with pytest.MonkeyPatch.context() as mp, \
            GridPlatform(data, folder / "landing", api_token=TOKEN) as platform, \
            clock.pinned(SIM_END.replace(tzinfo=ZoneInfo("Asia/Shanghai"))):
        mp.setenv(f"HUB_{source.upper()}_API_TOKEN", TOKEN)
        platform.landing.drop_all()
        config = write_sources_file(folder / "sources.yaml", {source: {
            "connector": "gridmgmt", "settings": {
                "folder": str(platform.folder), "base_url": platform.url, "page_size": 100}}})
        run_source(source, config)
    return source


def login_url(warehouse: str, login: str) -> str:
    params = {k: v for k, v in conninfo_to_dict(warehouse).items() if k != "password"}
    return make_conninfo(**{**params, "user": login})


@pytest.fixture
def department(warehouse: str, city: str) -> Iterator[str]:
    """A department login of 兴隆台区 (granted as `hub access grant` does), dropped after."""
    login = f"dept_{uuid.uuid4().hex[:8]}"
    with connect(Role.OWNER) as conn:
        access.grant(conn, login, "兴隆台区城管局", Jurisdiction(districts=(DISTRICT,)),
                     clear_pii=False, granted_by="test")
    yield login
    drop_login(warehouse, login)


@pytest.fixture
def pii_department(warehouse: str, city: str) -> Iterator[str]:
    login = f"pii_{uuid.uuid4().hex[:8]}"
    with connect(Role.OWNER) as conn:
        access.grant(conn, login, "兴隆台区民政局", Jurisdiction(districts=(DISTRICT,)),
                     clear_pii=True, granted_by="test", reason="case work")
    yield login
    drop_login(warehouse, login)


def drop_login(warehouse: str, login: str) -> None:
    with psycopg.connect(warehouse, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(login)))


def as_login(warehouse: str, login: str) -> psycopg.Connection:
    return psycopg.connect(login_url(warehouse, login), autocommit=True)


def refused(conn: psycopg.Connection, statement: str) -> str:
    with pytest.raises(psycopg.Error) as caught:
        conn.execute(statement.encode())
    return str(caught.value)


def readable_relations(conn: psycopg.Connection, role: str) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT format('%%I.%%I', n.nspname, c.relname) FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f')"
        " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
        " AND n.nspname NOT LIKE 'pg_toast%%'"
        " AND has_schema_privilege(%s, n.oid, 'USAGE')"
        " AND has_table_privilege(%s, c.oid, 'SELECT') ORDER BY 1", (role, role))]


def readable_text_columns(conn: psycopg.Connection, role: str, relation: str) -> list[str]:
    schema, name = relation.split(".")
    return [r[0] for r in conn.execute(
        "SELECT a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped"
        " AND has_column_privilege(%s, c.oid, a.attnum, 'SELECT')"
        " AND format_type(a.atttypid, a.atttypmod) IN ('text', 'jsonb', 'json', 'bytea',"
        "   'character varying', 'text[]')", (schema, name, role))]


# ------------------------------------------------------------------------ the roles


def test_roles_exist_and_none_is_privileged(db: psycopg.Connection) -> None:
    rows = {r[0]: r[1:] for r in db.execute(
        "SELECT rolname, rolsuper, rolbypassrls, rolcreaterole FROM pg_roles"
        " WHERE rolname = ANY(%s)", ([r.value for r in Role],))}
    assert set(rows) == {r.value for r in Role}
    for name, (superuser, bypass, createrole) in rows.items():
        assert not superuser, name
        # Only the pipeline passes row-level security: it writes every district's rows.
        assert bypass == (name == "hub_loader"), name
        assert createrole == (name == "hub_owner"), name


def test_the_owner_owns_every_hub_object(db: psycopg.Connection, city: str) -> None:
    foreign = db.execute(
        "SELECT n.nspname || '.' || c.relname, pg_get_userbyid(c.relowner) FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname IN ('raw', 'core', 'quality', 'mart', 'ops')"
        " AND c.relowner <> 'hub_owner'::regrole").fetchall()
    assert foreign == []


def test_each_job_connects_as_its_own_role(city: str) -> None:
    for role in (Role.LOADER, Role.READER, Role.STEWARD, Role.PII_READER):
        with connect(role) as conn:
            row = conn.execute("SELECT current_user, (SELECT rolsuper FROM pg_roles"
                               " WHERE rolname = current_user)").fetchone()
        assert row == (role.value, False)
    with connect(Role.OWNER) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("hub_owner",)


# ------------------------------------------------------------------ the jurisdiction


def test_a_department_sees_its_district_only(warehouse: str, db: psycopg.Connection,
                                             department: str) -> None:
    with as_login(warehouse, department) as conn:
        for relation in READER_RELATIONS:
            seen = conn.execute(sql.SQL(
                "SELECT count(*), count(*) FILTER (WHERE division_code IS DISTINCT FROM %s)"
                " FROM {}").format(sql.SQL(relation)), (DISTRICT,)).fetchone()
            expected = db.execute(sql.SQL(
                "SELECT count(*) FROM {} WHERE division_code = %s").format(sql.SQL(relation)),
                (DISTRICT,)).fetchone()[0]
            assert seen == (expected, 0), relation
        assert conn.execute("SELECT count(*) FROM mart.person").fetchone()[0] > 0
        # Aggregates and joins see no other district either.
        districts = {r[0] for r in conn.execute(
            "SELECT DISTINCT division_code FROM mart.governance_weekly_district")}
        assert districts <= {DISTRICT}
        joined = conn.execute(
            "SELECT count(*) FILTER (WHERE p.division_code <> %s OR e.division_code <> %s)"
            " FROM mart.event e JOIN mart.person p ON p.grid_code = e.grid_code",
            (DISTRICT, DISTRICT)).fetchone()[0]
        assert joined == 0
        # And the whole city's figures are not derivable: its totals are the district's.
        total = conn.execute("SELECT coalesce(sum(events), 0) FROM mart.governance_weekly"
                             ).fetchone()[0]
        assert total == db.execute("SELECT count(*) FROM mart.event_current"
                                   " WHERE report_week IS NOT NULL AND division_code = %s",
                                   (DISTRICT,)).fetchone()[0]


def test_a_login_without_a_grant_sees_nothing(warehouse: str, db: psycopg.Connection,
                                              department: str) -> None:
    with connect(Role.OWNER) as conn:
        access.revoke(conn, department, revoked_by="test")
    # Revoked: it can no longer log in at all.
    with pytest.raises(psycopg.OperationalError, match="not permitted to log in"):
        as_login(warehouse, department)
    # A login that holds hub_reader but has no grant: rows, none.
    db.execute(sql.SQL("ALTER ROLE {} LOGIN").format(sql.Identifier(department)))
    db.execute(sql.SQL("GRANT hub_reader TO {}").format(sql.Identifier(department)))
    with as_login(warehouse, department) as conn:
        for relation in READER_RELATIONS:
            assert conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.SQL(relation))
                                ).fetchone()[0] == 0, relation


def test_category_and_organization_limits(warehouse: str, db: psycopg.Connection,
                                          city: str) -> None:
    source = f"limits_{uuid.uuid4().hex[:6]}"
    for no, category, org in (("1", "SR01", "兴隆台区城管局"), ("2", "SR01", "兴隆台区住建局"),
                              ("3", "SZ01", "兴隆台区城管局")):
        db.execute(
            "INSERT INTO core.event (source_system, source_id, valid_from, channel, category_code,"
            " source_category, status, source_status, division_code, handling_org,"
            " source_updated_at) VALUES (%s, %s, now(), '电话', %s, 'x', 'accepted', 'x', %s, %s,"
            " now())", (source, no, category, DISTRICT, org))
    login = f"lim_{uuid.uuid4().hex[:8]}"
    with connect(Role.OWNER) as conn:
        # SR covers its sub-codes (SR01 占道经营 …).
        access.grant(conn, login, "城管执法", Jurisdiction(districts=(DISTRICT,),
                                                        categories=("SR",),
                                                        handling_orgs=("兴隆台区城管局",)),
                     clear_pii=False, granted_by="test")
        with pytest.raises(access.AccessError, match="limits must agree"):
            access.grant(conn, login, "另一个", Jurisdiction(districts=("211102",)),
                         clear_pii=False, granted_by="test")
    try:
        with as_login(warehouse, login) as conn:
            seen = conn.execute("SELECT source_id FROM mart.event WHERE source_system = %s",
                                (source,)).fetchall()
        assert seen == [("1",)]
    finally:
        drop_login(warehouse, login)


# ------------------------------------------------------------------ personal data


@pytest.mark.parametrize("role", [Role.READER, Role.STEWARD])
def test_no_clear_personal_data_is_reachable(db: psycopg.Connection, city: str,
                                             role: Role) -> None:
    """Every column the role can read, scanned for ID numbers, mobiles, clear names and
    the keyed hashes."""
    names = {r[0] for r in db.execute(
        "SELECT DISTINCT btrim(name) FROM core.person WHERE char_length(btrim(name)) >= 2"
        " UNION SELECT btrim(worker_name) FROM core.grid WHERE char_length(btrim(worker_name)) >= 2")}
    hashes = {r[0] for r in db.execute(
        "SELECT phone_hash FROM core.person WHERE phone_hash IS NOT NULL"
        " UNION SELECT id_number_hash FROM core.person WHERE id_number_hash IS NOT NULL")}
    assert names and hashes
    with connect(role) as conn:
        relations = readable_relations(conn, role.value)
        assert "mart.person" in relations
        assert not [r for r in relations if r.startswith("core.")]
        scanned, covered = 0, set()
        for relation in relations:
            for column in readable_text_columns(conn, role.value, relation):
                assert not column.endswith("_hash") and column != "payload_sealed", \
                    (relation, column)
                if (relation, column) == ("quality.report", "pdf"):
                    # Chromium's print of the report's html, scanned as its own column:
                    # compressed bytes, whose hex digits would read as anything.
                    continue
                query = sql.SQL("SELECT {c}::text FROM {r} WHERE {c} IS NOT NULL").format(
                    c=sql.Identifier(column), r=sql.SQL(relation))
                for (value,) in conn.execute(query):
                    scanned += 1
                    covered.add(f"{relation}.{column}")
                    assert not hashes.intersection(HEX64.findall(value)), (relation, column, "hash")
                    assert value.strip() not in names, (relation, column, "name")
                    text = IDENTIFIER.sub(" ", value)
                    assert not ID_NUMBER.search(text), (relation, column, "ID number")
                    assert not MOBILE.search(text), (relation, column, "mobile")
        assert scanned > 1000
    assert {"mart.person.name_masked", "mart.event.description"} <= covered
    if role is Role.STEWARD:
        assert "quality.quarantine_review.payload" in covered


def test_readers_see_masked_values_and_a_stable_key(db: psycopg.Connection, city: str) -> None:
    with connect(Role.READER) as conn:
        row = conn.execute(
            "SELECT name_masked, id_number_masked, phone_masked, current_address_masked"
            " FROM mart.person WHERE source_system = %s AND id_number_masked IS NOT NULL"
            " AND current_address_masked IS NOT NULL LIMIT 1", (city,)).fetchone()
    name, id_number, phone, address = row
    assert re.fullmatch(r"\w\*+", name)
    assert re.fullmatch(r"\d{6}\*{8}[\dXx*]{4}", id_number)
    assert address.endswith("***")


# ------------------------------------------------------------------ what is refused


@pytest.mark.parametrize("statement", [
    "SELECT * FROM core.person",
    "SELECT * FROM ops.pii_read",
    "SELECT payload_sealed FROM quality.quarantine",
    "INSERT INTO mart.event_category (code, name, version) VALUES ('ZZ', 'x', 'v1')",
    "DELETE FROM mart.event_status",
    "CREATE TABLE mart.mine (a int)",
    "CREATE TABLE public.mine (a int)",
    "CREATE TEMP TABLE mine (a int)",
    "COPY (SELECT 1) TO PROGRAM 'id'",
    "SELECT pg_read_file('/etc/passwd')",
    "DELETE FROM ops.pii_read",
    "SET ROLE hub_loader",
    "SELECT ops.person_clear('x', 'y', 'curious')",
])
def test_a_department_login_may_not(warehouse: str, department: str, statement: str) -> None:
    with as_login(warehouse, department) as conn:
        message = refused(conn, statement)
    assert "permission denied" in message or "must be" in message or "must have" in message, \
        message


@pytest.mark.parametrize("role", [Role.LOADER, Role.STEWARD, Role.PII_READER, Role.READER])
def test_nobody_but_the_owner_edits_the_audit(role: Role, city: str) -> None:
    with connect(role, autocommit=True) as conn:
        for statement in ("DELETE FROM ops.pii_read", "UPDATE ops.pii_read SET reason = 'x'",
                          "TRUNCATE ops.pii_read",
                          "INSERT INTO ops.pii_read (what, reference, reason)"
                          " VALUES ('x', 'y', 'forged')"):
            assert "permission denied" in refused(conn, statement), (role, statement)


def test_the_audit_refuses_changes_even_with_a_stray_grant(db: psycopg.Connection,
                                                           city: str) -> None:
    with connect(Role.PII_READER) as conn:
        conn.execute("SELECT ops.person_clear('x', 'y', 'an entry to protect')")
    db.execute("GRANT SELECT, UPDATE, DELETE ON ops.pii_read TO hub_loader")
    try:
        with connect(Role.LOADER, autocommit=True) as conn:
            assert "append-only" in refused(conn, "DELETE FROM ops.pii_read")
            assert "append-only" in refused(conn, "UPDATE ops.pii_read SET reason = 'x'")
    finally:
        db.execute("REVOKE SELECT, UPDATE, DELETE ON ops.pii_read FROM hub_loader")


# ------------------------------------------------------------------ clear reads


def test_a_clear_read_is_audited_with_the_real_login(warehouse: str, db: psycopg.Connection,
                                                     city: str, pii_department: str) -> None:
    # The record as a reader finds it in mart.person (a party's key is shown shortened).
    source_id, name = db.execute(
        "SELECT mart.record_ref(source_id), name FROM core.person WHERE source_system = %s"
        " AND valid_to IS NULL AND division_code = %s AND name IS NOT NULL"
        " ORDER BY source_id LIKE 'party:%%' DESC LIMIT 1", (city, DISTRICT)).fetchone()
    outside = db.execute(
        "SELECT mart.record_ref(source_id) FROM core.person WHERE source_system = %s"
        " AND valid_to IS NULL AND division_code <> %s LIMIT 1", (city, DISTRICT)).fetchone()[0]
    with as_login(warehouse, pii_department) as conn:
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="needs a reason"):
            conn.execute("SELECT * FROM ops.person_clear(%s, %s, '')", (city, source_id))
        got = conn.execute("SELECT name FROM ops.person_clear(%s, %s, %s)",
                           (city, source_id, "家访核实住址")).fetchall()
        assert got == [(name,)]
        # Outside its district: nothing, though the read is still recorded.
        assert conn.execute("SELECT name FROM ops.person_clear(%s, %s, %s)",
                            (city, outside, "核实")).fetchall() == []
    audit = db.execute("SELECT login, what, reference, reason FROM ops.pii_read"
                       " WHERE login = %s ORDER BY read_id", (pii_department,)).fetchall()
    assert audit == [(pii_department, "core.person", f"{city}/{source_id}", "家访核实住址"),
                     (pii_department, "core.person", f"{city}/{outside}", "核实")]


# ------------------------------------------------------------------ the command line


def test_hub_sql_reads_one_statement_as_a_reader(city: str) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["sql", "select count(*) as n from mart.event_current", "--csv"])
    assert ok.exit_code == 0, ok.output
    assert ok.output.splitlines()[0] == "n"

    drop = runner.invoke(app, ["sql", "drop table core.event"])
    assert drop.exit_code == 1
    assert "refused" in drop.output and "Traceback" not in drop.output

    two = runner.invoke(app, ["sql", "select 1; select 2"])
    assert two.exit_code == 1
    assert "one statement at a time" in two.output

    write = runner.invoke(app, ["sql", "create table mart.x (a int)", "--as", "steward"])
    assert write.exit_code == 1 and "refused" in write.output

    owner = runner.invoke(app, ["sql", "select current_user", "--write", "--csv"])
    assert owner.exit_code == 0 and "hub_owner" in owner.output
    assert "read-write" in owner.output


def test_hub_access_grant_list_revoke_audit(warehouse: str, db: psycopg.Connection,
                                            city: str, tmp_path: Path) -> None:
    runner = CliRunner()
    login = f"cli_{uuid.uuid4().hex[:8]}"
    try:
        granted = runner.invoke(app, ["access", "grant", login, "--department", "兴隆台区城管局",
                                      "--district", DISTRICT, "--reason", "城管案件分析"])
        assert granted.exit_code == 0, granted.output
        assert f"user={login}" in granted.output
        bad = runner.invoke(app, ["access", "grant", "x_dept", "--department", "d",
                                  "--district", "999999"])
        assert bad.exit_code == 1 and "unknown or retired district" in bad.output
        listed = runner.invoke(app, ["access", "list"])
        assert login in listed.output and "兴隆台区城管局" in listed.output
        row = db.execute("SELECT granted_by, districts FROM ops.access_grant WHERE login = %s",
                         (login,)).fetchone()
        assert row[1] == [DISTRICT] and "(as " in row[0]
        with as_login(warehouse, login) as conn:
            assert conn.execute("SELECT count(*) FROM mart.person").fetchone()[0] > 0
        revoked = runner.invoke(app, ["access", "revoke", login])
        assert revoked.exit_code == 0, revoked.output
        with pytest.raises(psycopg.OperationalError):
            as_login(warehouse, login)
        audit = runner.invoke(app, ["access", "audit"])
        assert audit.exit_code == 0, audit.output
    finally:
        drop_login(warehouse, login)


# ------------------------------------------------- one masking policy, in SQL and Python

ADDRESSES = ["辽宁省盘锦市兴隆台区兴隆街道幸福小区3号楼501", "盘锦市渤海路12号幸福小区3号楼",
             "兴隆台区振兴街道红旗社区", "盘山县太平镇大荒村3组", "北京市朝阳区建国路88号",
             "幸福小区3号楼", "盘锦市", "新疆维吾尔自治区乌鲁木齐市天山区",
             "内蒙古自治区锡林郭勒盟正蓝旗上都镇", "  ", "济南市市中区二七新村街道"]
TEXT_ALPHABET = "0123456789０１２３４５６７８９XxＸ -－　+()（）86张三路号反映电话身份证"


def test_sql_and_python_mask_addresses_alike(db: psycopg.Connection, city: str) -> None:
    found = [r[0] for r in db.execute(
        "SELECT DISTINCT a FROM (SELECT current_address FROM core.person UNION ALL"
        " SELECT household_address FROM core.person UNION ALL SELECT address FROM core.house"
        " UNION ALL SELECT address FROM core.event) x(a) WHERE a IS NOT NULL LIMIT 2000")]
    assert len(found) > 50
    for address in ADDRESSES + found:
        sql_masked = db.execute("SELECT mart.mask_address(%s)", (address,)).fetchone()[0]
        assert sql_masked == mask_address(address), address
    for name in ("张三丰", " 李四 ", "欧阳娜娜", "王"):
        assert db.execute("SELECT mart.mask_name(%s)", (name,)).fetchone()[0] == mask_name(name)


@settings(max_examples=300,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=TEXT_ALPHABET, max_size=60),
       st.sampled_from(["211103199001011234", "21110319900101123X", "211103900101123",
                        "13812348000", "+86 138-1234-8000", "0427-2812345", "０４２７２８１２３４５",
                        "２１１１０３１９９００１０１１２３４", "211 103 1990 0101 1234"]))
def test_sql_masks_free_text_as_python_does(db: psycopg.Connection, noise: str,
                                            number: str) -> None:
    text = noise[: len(noise) // 2] + number + noise[len(noise) // 2:]
    sql_masked = db.execute("SELECT mart.mask_text(%s)", (text,)).fetchone()[0]
    # What SQL writes folds every full-width digit; Python folds the numbers it masks.
    assert sql_masked == fold(python_mask_text(text))
    assert python_mask_text(sql_masked) == sql_masked  # nothing left to mask
