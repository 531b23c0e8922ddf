"""The file-drop base (connectors.files), the grid connector and conformer on files
written by hand, and the grid platform simulator itself."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import numpy as np
import openpyxl
import pyarrow as pa
import pytest

from base.pii import keyed_hash
from base.settings import CityConfig, SourceConfig
from conform.gridmgmt import ResidentsConformer, party_id_numbers
from connectors.base import SourceError
from connectors.files import (
    LandedFile,
    ProcessedFiles,
    landed_files,
    read_csv,
    read_geojson,
    read_xlsx,
)
from connectors.gridmgmt import RESIDENTS, GridMgmt, resident_keys
from quality import checks
from sandbox.city import City
from sandbox.gridmgmt import RESIDENT_HEADERS, GridData, Landing, file_name, render
from sandbox.gridmgmt_server import start_for_demo

CITY = CityConfig(code="2111", extent=(121.42, 40.65, 122.52, 41.45))
END = datetime(2026, 11, 20)


def write_gbk_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    buf = io.StringIO(newline="")
    csv.writer(buf, lineterminator="\r\n").writerows([header, *rows])
    path.write_bytes(buf.getvalue().encode("gbk"))
    return path


def connector(folder: Path, **settings: object) -> GridMgmt:
    return GridMgmt(SourceConfig(name="files_test", connector="gridmgmt", settings={
        "folder": str(folder), "base_url": "http://127.0.0.1:9", **settings}), CITY)


# ------------------------------------------------------------------------ readers


def test_gbk_csv_is_read_as_text_in_chunks(tmp_path):
    rows = [[f"张{i}", "0427" + str(i).zfill(7), f"盘锦市\"兴隆\"大街{i}号\n二单元", ""]
            for i in range(10)]
    path = write_gbk_csv(tmp_path / "x.csv", ["姓名", "联系电话", "现住址", "特殊人群"], rows)
    chunks = list(read_csv(path, ["现住址", "姓名", "联系电话"], encoding="gb18030",
                           chunk_rows=4))
    assert [c.num_rows for c in chunks] == [4, 4, 2]
    table = pa.concat_tables(chunks)
    assert table.column_names == ["现住址", "姓名", "联系电话"]
    assert all(t == pa.string() for t in table.schema.types)
    assert table["联系电话"].to_pylist() == [r[1] for r in rows]  # leading zeros kept
    assert table["现住址"].to_pylist() == [r[2] for r in rows]  # quotes, newlines verbatim


def test_a_missing_column_is_a_clear_error(tmp_path):
    path = write_gbk_csv(tmp_path / "x.csv", ["姓名"], [["张三"]])
    with pytest.raises(SourceError, match="联系电话"):
        list(read_csv(path, ["姓名", "联系电话"], encoding="gbk", chunk_rows=10))


def test_xlsx_cells_come_out_as_the_text_people_see(tmp_path):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["房屋编码", "房号", "用途", "备注"])
    ws.append(["2111020020010010001", 1201, "住宅", None])
    ws.append([None, None, None, None])  # an empty formatted row
    ws.append(["2111020020010010002", 3.5, None, datetime(2026, 1, 2, 3, 4, 5)])
    wb.save(tmp_path / "h.xlsx")
    table = pa.concat_tables(read_xlsx(tmp_path / "h.xlsx", ["房屋编码", "房号", "用途", "备注"],
                                       chunk_rows=1))
    assert table.to_pylist() == [
        {"房屋编码": "2111020020010010001", "房号": "1201", "用途": "住宅", "备注": None},
        {"房屋编码": "2111020020010010002", "房号": "3.5", "用途": None,
         "备注": "2026-01-02 03:04:05"},
    ]


def test_geojson_features_with_geometry_as_json(tmp_path):
    fc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"网格编码": "A", "n": 1},
         "geometry": {"type": "Point", "coordinates": [1, 2]}},
        {"type": "Feature", "properties": {"网格编码": "B"}, "geometry": None}]}
    (tmp_path / "g.geojson").write_text(json.dumps(fc, ensure_ascii=False), encoding="utf-8")
    table = pa.concat_tables(read_geojson(tmp_path / "g.geojson", ["网格编码", "n", "geometry"],
                                          chunk_rows=1))
    assert table.to_pylist() == [
        {"网格编码": "A", "n": "1", "geometry": '{"type": "Point", "coordinates": [1, 2]}'},
        {"网格编码": "B", "n": None, "geometry": None}]


# -------------------------------------------------------- landing and file record


def test_only_complete_files_count_oldest_first(tmp_path):
    for name in ("residents_20261103.csv", "residents_20261101.csv", "residents_20261102.csv.part",
                 ".residents_20261104.csv.part", "residents_2026110.csv", "houses_20261101.xlsx",
                 "residents_20261399.csv"):
        (tmp_path / name).write_text("x")
    found = landed_files(tmp_path, r"residents_(?P<date>\d{8})\.csv")
    assert [f.name for f in found] == ["residents_20261101.csv", "residents_20261103.csv"]
    young = landed_files(tmp_path, r"residents_(?P<date>\d{8})\.csv", min_age_seconds=60)
    assert young == []
    # Two minutes older, as the file system tells time (not this process's clock).
    settled = tmp_path / "residents_20261101.csv"
    old = settled.stat().st_mtime - 120
    os.utime(settled, (old, old))
    young = landed_files(tmp_path, r"residents_(?P<date>\d{8})\.csv", min_age_seconds=60)
    assert [f.name for f in young] == ["residents_20261101.csv"]
    with pytest.raises(SourceError, match="does not exist"):
        landed_files(tmp_path / "nowhere", r"(?P<date>\d{8})")


def test_file_record_verdicts():
    def landed(name: str, day: str) -> LandedFile:
        return LandedFile(Path(name), date.fromisoformat(day))

    record = ProcessedFiles.from_state(None)
    a = landed("r_20261101.csv", "2026-11-01")
    assert record.verdict(a, "aaa") == "load"
    record.note(a, "aaa", "loaded", 10)
    assert record.seen("r_20261101.csv", "aaa")
    assert record.verdict(landed("r_20261102.csv", "2026-11-02"), "aaa") == "identical"
    assert record.verdict(landed("r_20261031.csv", "2026-10-31"), "zzz") == "stale"
    assert record.verdict(landed("r_20261102.csv", "2026-11-02"), "bbb") == "load"
    # The last file again with other bytes: a corrected delivery of the same day.
    assert record.verdict(a, "ccc") == "load"
    state = json.loads(json.dumps(record.to_state(keep=5)))  # what the cursor holds
    assert ProcessedFiles.from_state(state).last == "r_20261101.csv"


def test_settings_refuse_a_pattern_without_a_date(tmp_path):
    with pytest.raises(ValueError, match="date"):
        connector(tmp_path, file_patterns={"residents": r"residents\.csv"})


# ------------------------------------------------ the connector on hand-made files


def test_one_resident_in_three_spellings_is_one_key_and_one_number(tmp_path):
    """`21110319900101104X`, `211103 19900101 104x` and legacy `211103900101104` in three
    days' files: one key, one normalised number; a wrong check digit is a finding."""
    spellings = ["21110319900101104X", "211103 19900101 104x", "211103900101104"]
    for day, id_no in zip((1, 2, 3), spellings, strict=True):
        other = "211103199001011050" if day == 1 else "211103199001011058"  # …8 is right
        rows = [["王伟", "男", id_no, "1990-01-01", "汉族", "13800138000", "户籍", "现住",
                 "户籍", "低保户、残疾人", "211103001001001", "2026-11-01 09:00:00"],
                ["李娜", "女", other, "1990-01-01", "汉族", "+86 138-0013-8001", "户籍", "现住",
                 "流动", "", "211103001001001", "2026-11-01 09:00:00"]]
        write_gbk_csv(tmp_path / f"residents_2026110{day}.csv", list(RESIDENT_HEADERS), rows)
    grid = connector(tmp_path, chunk_rows=1)
    extracts = list(grid.extract(RESIDENTS, None))
    # Each file is one snapshot, read in chunks; only its last chunk completes it.
    assert [(e.snapshot_id or "").split("#")[0] for e in extracts] == [
        f"residents_2026110{d}.csv" for d in (1, 1, 2, 2, 3, 3)]
    assert [e.snapshot_complete for e in extracts] == [False, True] * 3
    assert extracts[0].cursor == {"files": {}, "last": None}  # committed only when complete
    assert extracts[-1].cursor["last"] == "residents_20261103.csv"

    conformer = ResidentsConformer(grid.settings, CITY)
    raw = pa.concat_tables(e.records for e in extracts)
    rows = conformer.conform(raw).table.to_pylist()
    wang = [r for r in rows if r["name"] == "王伟"]
    assert {r["source_id"] for r in wang} == {wang[0]["source_id"]}
    assert {r["id_number"] for r in wang} == {"21110319900101104X"}
    assert not wang[0]["source_id"].removeprefix("resident:").startswith("2111")
    li = [r for r in rows if r["name"] == "李娜"]
    assert len({r["source_id"] for r in li}) == 1  # a mistyped check digit still links
    codes = checks.citizen_id(pa.array([r["id_number"] for r in li]), date(2026, 11, 20))
    assert list(np.asarray(codes)) == [2, 0, 0]  # the first file's check digit is wrong
    assert wang[0]["special_groups"] == "低保户,残疾人"
    assert li[0]["phone"] == "13800138001"
    assert wang[0]["street_code"] == "211103001" and wang[0]["division_code"] == "211103"

    # Everything was read: a second pass over the same folder finds nothing new.
    assert list(grid.extract(RESIDENTS, extracts[-1].cursor)) == []


def test_a_resident_without_an_id_number_is_keyed_by_name_birth_date_and_address():
    # Blank, whitespace or separators only: no ID number. Such a record's key is the
    # keyed hash of its details; every other record's, of its ID number's identity.
    records = pa.table({"公民身份号码": ["21110319900101104X", None, " ", "--", "２１１１０３ 19900101 104ｘ"],
                        "姓名": ["甲", "乙", None, "丁", "戊"],
                        "出生日期": ["1990-01-01", None, "1991-02-03", "1992-03-04", "1990-01-01"],
                        "现住址": ["一号", "二号", "三号", None, "五号"]})
    wang = "resident:" + keyed_hash("21110319900101104X")
    assert resident_keys(records).to_pylist() == [
        wang, "resident:noid:" + keyed_hash("乙||二号"),
        "resident:noid:" + keyed_hash("|1991-02-03|三号"),
        "resident:noid:" + keyed_hash("丁|1992-03-04|"), wang]


def test_party_id_numbers_as_list_or_text():
    assert party_id_numbers('["211103 19900101 104x", "21110319900101105X"]') == [
        "211103 19900101 104x", "21110319900101105X"]
    assert party_id_numbers("21110319900101104X、211103900101104") == [
        "21110319900101104X", "211103900101104"]
    assert party_id_numbers("[]") == [] and party_id_numbers(None) == []


# --------------------------------------------------------------------- simulator


def test_the_simulator_is_a_pure_function_of_its_inputs():
    a = GridData(City("2111", scale=0.001), days=4, end=END)
    b = GridData(City("2111", scale=0.001), days=4, end=END)
    for kind in ("residents", "houses", "orgs", "grids"):
        assert render(a, kind, a.dates[0]) == render(b, kind, b.dates[0]), kind
    assert a.events == b.events and a.truth.present == b.truth.present
    assert render(a, "houses", a.dates[0]) != render(a, "houses", a.dates[1])
    # Residents move: each day differs from the one before, and nobody planted drifts off.
    days = a.dates
    assert all(a.truth.present[x] != a.truth.present[y] for x, y in zip(days, days[1:], strict=False))
    assert a.truth.out_and_back not in a.truth.present[a.delivered[1]]
    assert all(a.truth.out_and_back in a.truth.present[d] for d in (a.delivered[0],
                                                                    a.delivered[2]))


def test_files_land_complete_and_the_dirt_is_there(tmp_path):
    data = GridData(City("2111", scale=0.001), days=4, end=END)
    landing = Landing(data, tmp_path)
    names = landing.drop_all()
    missing = next(iter(data.truth.missing_dates))
    assert len(names) == 4 * len(data.delivered)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".part")) == [
        f"{file_name('residents', missing)}.part"]
    first, second = data.delivered[:2]
    orgs = [(tmp_path / file_name("orgs", d)).read_bytes() for d in (first, second)]
    assert orgs[0] == orgs[1]  # yesterday's file sent again
    text = (tmp_path / file_name("residents", first)).read_bytes().decode("gbk")
    assert text.splitlines()[0] == ",".join(RESIDENT_HEADERS)


def test_start_for_demo_gives_settings_env_and_moves_on(tmp_path):
    demo = start_for_demo(City("2111", scale=0.001), days=2, workdir=tmp_path)
    try:
        assert set(demo.settings) == {"folder", "base_url"}
        assert list(demo.env) == ["HUB_GRIDMGMT_API_TOKEN"]
        files = set(os.listdir(demo.settings["folder"]))
        assert demo.advance() > 0
        assert len(set(os.listdir(demo.settings["folder"])) - files) == 4
    finally:
        demo.stop()


def test_the_simulator_runs_standalone(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox.gridmgmt_server", "--folder", str(tmp_path),
         "--port", "0", "--scale", "0.001", "--days", "2", "--end", "2026-11-20"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        cwd=Path(__file__).resolve().parents[2])
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        import httpx

        body = httpx.get(f"{url}/grid/api/v2/events", params={"limit": 5}, timeout=5).json()
        assert body["success"] and len(body["events"]) == 5 and body["nextCursor"]
        bad = httpx.get(f"{url}/grid/api/v2/events", params={"cursor": "nope"}, timeout=5)
        assert bad.status_code == 400 and bad.json()["errorCode"] == "INVALID_CURSOR"
        assert (tmp_path / "residents_20261119.csv").exists()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_grid_polygons_in_a_projected_crs_are_stored_in_wgs84(tmp_path):
    from pyproj import Transformer

    from conform.gridmgmt import GridsConformer

    grid = City("2111", scale=0.001).grids[0]
    to_utm = Transformer.from_crs("EPSG:4326", "EPSG:32651", always_xy=True)
    x0, y0, x1, y1 = grid.bbox
    ring = [list(to_utm.transform(x, y)) for x, y in
            ((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0))]
    raw = pa.table({f: pa.array([v], pa.string()) for f, v in {
        "网格编码": grid.code, "网格名称": grid.name, "网格类型": grid.grid_type,
        "所属社区": grid.community_name, "网格员": "王伟", "网格员电话": "13800138000",
        "geometry": json.dumps({"type": "Polygon", "coordinates": [ring]})}.items()})
    bad = raw.set_column(6, "geometry", pa.array(['{"type": "Point", "coordinates": [1, 2]}']))
    conformer = GridsConformer(connector(tmp_path, grid_crs="EPSG:32651").settings, CITY)
    row = conformer.conform(raw).table.to_pylist()[0]
    import shapely

    bounds = shapely.from_wkt(row["boundary_wkt"]).bounds
    assert np.allclose(bounds, grid.bbox, atol=1e-6)
    assert row["division_code"] == grid.district_code and row["street_code"] == grid.street_code
    assert list(conformer.conform(bad).unparseable["geometry"]) == [True]


def test_mappings_cover_every_platform_value_but_the_planted_unknowns():
    from conform.gridmgmt import PLATFORM, org_type_mapping
    from conform.mappings import category_mapping, status_mapping
    from sandbox import gridmgmt as sim

    categories = category_mapping(PLATFORM, "source_event_type")
    assert set(sim.EVENT_TYPES) <= set(categories)
    assert not set(sim.UNKNOWN_EVENT_TYPES) & set(categories)
    assert set(status_mapping(PLATFORM)) == set(sim.EVENT_STATUSES)
    city = City("2111", scale=0.001)
    assert {city.organization(i).org_type for i in range(200)} <= set(org_type_mapping())
