"""File drops that are not what they should be (connectors.files, through the grid
connector): a bad file is rejected as a file and the stream goes on, a bad row is
quarantined and the rest of the file loads, a snapshot far too small loads nothing
until accepted. No warehouse: what the connector yields is what is checked."""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import openpyxl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from base.settings import CityConfig, SourceConfig
from connectors import files
from connectors.base import Extract, ReadContext
from connectors.files import CsvFile, FileStream, KeyScan, row_hashes
from connectors.gridmgmt import GRIDS, HOUSES, ORGS, RESIDENT_KEY, RESIDENTS, GridMgmt

CITY = CityConfig(code="2111", extent=(121.42, 40.65, 122.52, 41.45))
HEADER = list(RESIDENTS.file_fields)

# Personal data planted in the bad files: no reason, place or warning may hold it.
NAME = "王秀英"
ID_NUMBER = "11010519491231002X"
PHONE = "13912345678"
PLANTED = (NAME, ID_NUMBER, PHONE)


def connector(folder: Path, **settings: object) -> GridMgmt:
    return GridMgmt(SourceConfig(name="files_test", connector="gridmgmt", settings={
        "folder": str(folder), "base_url": "http://127.0.0.1:9", **settings}), CITY)


def resident(i: int, *, name: str | None = None, id_no: str | None = None,
             phone: str | None = None, address: str | None = None) -> list[str]:
    values = {
        "姓名": name or f"居民{i}", "性别": "女",
        "公民身份号码": id_no or f"2111031990{(i % 12) + 1:02d}01{i:03d}5"[:18],
        "出生日期": "1990-01-01", "民族": "汉族", "联系电话": phone or f"1380013{i:04d}",
        "户籍地址": "盘锦市兴隆台区", "现住址": address or f"兴隆大街{i}号", "人口类型": "户籍",
        "特殊人群": "", "所属网格": "211103001001001", "更新时间": "2026-11-01 09:00:00"}
    return [values[h] for h in HEADER]


def csv_text(rows: Iterable[Sequence[str]], header: Sequence[str] = HEADER) -> str:
    buf = io.StringIO(newline="")
    csv.writer(buf, lineterminator="\r\n").writerows([list(header), *rows])
    return buf.getvalue()


def write_csv(path: Path, rows: Iterable[Sequence[str]], *, encoding: str = "gbk",
              header: Sequence[str] = HEADER) -> Path:
    path.write_bytes(csv_text(rows, header).encode(encoding))
    return path


def write_houses(path: Path, n: int = 3) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(list(HOUSES.fields))
    for i in range(n):
        ws.append([f"21110300100100100{i:02d}", f"兴隆大街{i}号", "1", "2", f"{i}01", "住宅",
                   ID_NUMBER, "211103001001001"])
    wb.save(path)
    return path


def write_grids(path: Path, n: int = 2) -> Path:
    features = [{"type": "Feature", "properties": {
        "网格编码": f"21110300100100{i}", "网格名称": f"网格{i}", "网格类型": "综合",
        "所属社区": "社区", "网格员": NAME, "网格员电话": PHONE},
        "geometry": {"type": "Polygon", "coordinates": [[[121.5, 40.7], [121.6, 40.7],
                                                         [121.6, 40.8], [121.5, 40.7]]]}}
        for i in range(n)]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features},
                               ensure_ascii=False), encoding="utf-8")
    return path


def read(grid: GridMgmt, stream: FileStream, state: dict | None = None,
         context: ReadContext | None = None) -> list[Extract]:
    return list(grid.extract(stream, state, context or ReadContext()))


def records(extracts: Iterable[Extract]) -> list[dict]:
    return [r for e in extracts for r in e.records.to_pylist()]


def snapshots(extracts: Iterable[Extract]) -> list[str]:
    """The files loaded, in order (one per completed snapshot)."""
    return [(e.snapshot_id or "").split("#")[0] for e in extracts if e.snapshot_complete]


def messages(extracts: Iterable[Extract]) -> list[str]:
    """Everything an operator is shown: reasons, places, warnings."""
    out: list[str] = []
    for e in extracts:
        out += [f.reason for f in e.rejected_files] + e.warnings
        out += [t for r in e.rejects for t in (r.reason, r.where)]
        out += [f.get("reason", "") for f in e.cursor.get("files", {}).values()]
    return out


def assert_no_personal_data(extracts: Iterable[Extract]) -> None:
    for text in messages(extracts):
        for planted in PLANTED:
            assert planted not in text, text


def rejected(extracts: Iterable[Extract]) -> list[tuple[str, str]]:
    return [(f.name, f.kind) for e in extracts for f in e.rejected_files]


# ------------------------------------------------------------------ unreadable files


def test_invalid_gbk_bytes_reject_the_file_and_everything_else_still_loads(tmp_path):
    good = csv_text([resident(1), resident(2, name=NAME, id_no=ID_NUMBER, phone=PHONE)])
    bad = good.encode("gbk").replace("兴隆大街2号".encode("gbk"), b"\xff\xfe")
    (tmp_path / "residents_20261101.csv").write_bytes(bad)
    write_csv(tmp_path / "residents_20261102.csv", [resident(1), resident(3)])
    write_houses(tmp_path / "houses_20261101.xlsx")
    write_grids(tmp_path / "grids_20261101.geojson")
    grid = connector(tmp_path)

    extracts = read(grid, RESIDENTS)
    first = extracts[0]
    assert first.records.num_rows == 0 and first.snapshot_id is None
    assert not first.snapshot_complete  # a rejected file closes nobody
    [file] = first.rejected_files
    assert (file.name, file.kind) == ("residents_20261101.csv", "unreadable")
    assert "residents_20261101.csv" in file.reason and "gb18030" in file.reason
    assert "line 3" in file.reason  # header, a good row, then the bad bytes
    assert first.cursor["files"]["residents_20261101.csv"]["outcome"] == "rejected"
    assert first.cursor["files"]["residents_20261101.csv"]["reason"] == file.reason
    # The stream went on with its next file.
    assert snapshots(extracts) == ["residents_20261102.csv"]
    assert [r["姓名"] for r in records(extracts)] == ["居民1", "居民3"]
    assert_no_personal_data(extracts)
    # The rejected file is not read again; the other streams read as ever.
    assert read(grid, RESIDENTS, extracts[-1].cursor) == []
    assert snapshots(read(grid, HOUSES)) == ["houses_20261101.xlsx"]
    assert snapshots(read(grid, GRIDS)) == ["grids_20261101.geojson"]


def test_a_corrected_file_under_the_same_name_is_read(tmp_path):
    path = tmp_path / "residents_20261101.csv"
    path.write_bytes(csv_text([resident(1)]).encode("gbk") + b"\x81\x20,\r\n")
    grid = connector(tmp_path)
    extracts = read(grid, RESIDENTS)
    assert rejected(extracts) == [("residents_20261101.csv", "unreadable")]
    assert "line 3" in extracts[0].rejected_files[0].reason
    state = extracts[-1].cursor
    assert read(grid, RESIDENTS, state) == []  # retried: still skipped, no new verdict

    write_csv(path, [resident(1), resident(2)])  # the platform delivers it again, fixed
    again = read(grid, RESIDENTS, state)
    assert snapshots(again) == ["residents_20261101.csv"] and len(records(again)) == 2
    assert again[-1].cursor["files"]["residents_20261101.csv"]["outcome"] == "loaded"


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16-le", "utf-16-be"])
def test_a_byte_order_mark_wins_over_the_configured_encoding(tmp_path, encoding):
    rows = [resident(1, name=NAME, address="盘锦市\"兴隆\"大街1号\n二单元"), resident(2)]
    text = csv_text(rows)
    data = text.encode(encoding)
    if encoding == "utf-16-le":
        data = codecs.BOM_UTF16_LE + data
    elif encoding == "utf-16-be":
        data = codecs.BOM_UTF16_BE + data
    (tmp_path / "residents_20261101.csv").write_bytes(data)
    extracts = read(connector(tmp_path, csv_encoding="gbk"), RESIDENTS)
    assert rejected(extracts) == []
    got = records(extracts)
    assert [[r[h] for h in HEADER] for r in got] == rows


def test_the_encoding_is_set_per_stream_and_bad_utf8_is_rejected(tmp_path):
    write_csv(tmp_path / "residents_20261101.csv", [resident(1, name=NAME)], encoding="utf-8")
    grid = connector(tmp_path, csv_encodings={"residents": "utf-8"})
    assert grid.csv_encoding(RESIDENTS) == "utf-8"
    assert [r["姓名"] for r in records(read(grid, RESIDENTS))] == [NAME]

    good = csv_text([resident(1), resident(2), resident(3)]).encode("utf-8")
    (tmp_path / "residents_20261102.csv").write_bytes(good.replace("居民3".encode(), b"\xe5\x00"))
    extracts = read(grid, RESIDENTS)
    [file] = extracts[-1].rejected_files
    assert file.name == "residents_20261102.csv" and "utf-8" in file.reason
    assert "line 4" in file.reason

    with pytest.raises(ValueError, match="encoding"):
        connector(tmp_path, csv_encodings={"residents": "no-such-codec"})


@pytest.mark.parametrize("content", [
    b"",  # an empty file: not even a header
    "姓名,性别\r\n王秀英,女\r\n".encode("gbk"),  # columns missing
])
def test_a_file_without_the_columns_is_rejected_without_quoting_it(tmp_path, content):
    (tmp_path / "residents_20261101.csv").write_bytes(content)
    extracts = read(connector(tmp_path), RESIDENTS)
    assert rejected(extracts) == [("residents_20261101.csv", "unreadable")]
    assert_no_personal_data(extracts)


def test_a_truncated_workbook_is_rejected_and_the_next_one_loads(tmp_path):
    data = write_houses(tmp_path / "h.xlsx", n=50).read_bytes()
    (tmp_path / "h.xlsx").unlink()
    (tmp_path / "houses_20261101.xlsx").write_bytes(data[: len(data) // 2])
    write_houses(tmp_path / "houses_20261102.xlsx")
    grid = connector(tmp_path)
    extracts = read(grid, HOUSES)
    assert rejected(extracts) == [("houses_20261101.xlsx", "unreadable")]
    assert "houses_20261101.xlsx" in extracts[0].rejected_files[0].reason
    assert snapshots(extracts) == ["houses_20261102.xlsx"]
    assert len(records(extracts)) == 3
    assert_no_personal_data(extracts)


@pytest.mark.parametrize("content", [
    '{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"网格员',
    '{"type": "Feature", "properties": {"网格员": "王秀英"}}',
    '{"type": "FeatureCollection", "features": ["王秀英"]}',
    "\ufeff[1, 2, 3]",
])
def test_a_broken_geojson_is_rejected_and_the_next_one_loads(tmp_path, content):
    (tmp_path / "grids_20261101.geojson").write_text(content, encoding="utf-8")
    write_grids(tmp_path / "grids_20261102.geojson")
    extracts = read(connector(tmp_path), GRIDS)
    assert rejected(extracts) == [("grids_20261101.geojson", "unreadable")]
    assert snapshots(extracts) == ["grids_20261102.geojson"]
    assert_no_personal_data(extracts)


# --------------------------------------------------------------------- bad rows


def test_rows_with_the_wrong_number_of_fields_are_rejects_and_the_rest_loads(tmp_path):
    ok = resident(1, address="兴隆大街\n二单元")  # a value over two lines: lines 2-3
    too_many = [*resident(2, name=NAME, id_no=ID_NUMBER, phone=PHONE), "多余"]  # line 4
    too_few = resident(3, name=NAME, id_no=ID_NUMBER, phone=PHONE)[:-1]  # line 5
    rows = [ok, too_many, too_few, resident(4)]
    write_csv(tmp_path / "residents_20261101.csv", rows)
    extracts = read(connector(tmp_path, chunk_rows=1), RESIDENTS)

    assert [r["姓名"] for r in records(extracts)] == ["居民1", "居民4"]
    assert rejected(extracts) == []
    # The rejects ride on the extracts of the snapshot.
    assert all(e.snapshot_id for e in extracts if e.rejects)
    rejects = [r for e in extracts for r in e.rejects]
    assert [(r.rule, r.where) for r in rejects] == [
        ("row_readable", "residents_20261101.csv line 4"),
        ("row_readable", "residents_20261101.csv line 5")]
    assert "13 fields where the header has 12" in rejects[0].reason
    assert "11 fields where the header has 12" in rejects[1].reason
    # The payload is the row as read, under the header's names.
    assert rejects[0].payload["姓名"] == NAME and rejects[0].payload["_field_13"] == "多余"
    assert rejects[1].payload["公民身份号码"] == ID_NUMBER and "更新时间" not in rejects[1].payload
    # Whose row it was: the key a good row with that ID number gets (not the number).
    write_csv(tmp_path / "residents_20261102.csv", [too_few + ["2026-11-02 09:00:00"]])
    [good] = records(read(connector(tmp_path), RESIDENTS, extracts[-1].cursor))
    assert rejects[0].source_id == rejects[1].source_id == good[RESIDENT_KEY]
    assert_no_personal_data(extracts)
    assert extracts[-1].cursor["files"]["residents_20261101.csv"]["rejected_rows"] == 2


def test_a_field_of_two_mib_is_read(tmp_path):
    huge = "大" * (1 << 20)  # 2 MiB in GBK, 3 MiB once pyarrow has it as UTF-8
    rows = [resident(1), resident(2, address=huge), resident(3)]
    path = write_csv(tmp_path / "residents_20261101.csv", rows)
    extracts = read(connector(tmp_path, chunk_rows=2), RESIDENTS)
    assert rejected(extracts) == []
    assert [r["现住址"] for r in records(extracts)] == ["兴隆大街1号", huge, "兴隆大街3号"]

    csv_file = CsvFile(path, HEADER, encoding="gbk")
    assert sum(t.num_rows for t in csv_file.chunks(10)) == 3
    assert csv_file.block_size > 3 << 20  # grown, and kept for the next read


# ------------------------------------------------------------ conflicts in a file


def test_two_residents_under_one_id_number_conflict(tmp_path):
    rows = [resident(1, name=NAME, id_no=ID_NUMBER), resident(2),
            resident(3, name="李娜", id_no=ID_NUMBER)]
    write_csv(tmp_path / "residents_20261101.csv", rows)
    extracts = read(connector(tmp_path, chunk_rows=1), RESIDENTS)
    got = records(extracts)
    assert [r["姓名"] for r in got] == [NAME, "居民2", "李娜"]  # both still yielded
    key = got[0][RESIDENT_KEY]
    assert got[2][RESIDENT_KEY] == key
    # Every extract of the snapshot carries them, whichever batch a record falls in.
    assert len(extracts) == 3
    assert all(set(e.conflicting_keys) == {key} for e in extracts)


def test_an_identical_repeated_row_is_no_conflict(tmp_path):
    rows = [resident(1, name=NAME, id_no=ID_NUMBER), resident(2),
            resident(1, name=NAME, id_no=ID_NUMBER)]
    write_csv(tmp_path / "residents_20261101.csv", rows)
    extracts = read(connector(tmp_path), RESIDENTS)
    assert len(records(extracts)) == 3
    assert all(not e.conflicting_keys for e in extracts)


def test_houses_keyed_twice_with_different_rows_conflict(tmp_path):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(list(HOUSES.fields))
    ws.append(["H1", "地址1", "1", "1", "101", "住宅", "", "211103001001001"])
    ws.append(["H1", "地址1", "1", "1", "102", "住宅", "", "211103001001001"])
    ws.append(["H2", "地址2", "1", "1", "101", "住宅", "", "211103001001001"])
    ws.append(["H2", "地址2", "1", "1", "101", "住宅", "", "211103001001001"])
    wb.save(tmp_path / "houses_20261101.xlsx")
    [extract] = read(connector(tmp_path), HOUSES)
    assert set(extract.conflicting_keys) == {"H1"}


# ------------------------------------------------------------------- size guard


def test_a_snapshot_far_too_small_loads_nothing_until_accepted(tmp_path):
    write_csv(tmp_path / "residents_20261101.csv", [resident(i) for i in range(2)])
    grid = connector(tmp_path)
    context = ReadContext(current_records=20)  # 10 % of what is current

    extracts = read(grid, RESIDENTS, None, context)
    [only] = extracts
    assert only.records.num_rows == 0 and only.snapshot_id is None
    [file] = only.rejected_files
    assert file.kind == "too_small"
    snapshot_id = f"residents_20261101.csv#{file.sha256}"
    assert "2 records" in file.reason and "20 are current" in file.reason
    assert f"hub snapshot accept files_test residents {snapshot_id}" in file.reason
    state = only.cursor
    assert state["files"]["residents_20261101.csv"]["outcome"] == "refused"

    for _ in range(10):  # retried: still refused, nothing read
        assert read(grid, RESIDENTS, state, context) == []
        again = read(grid, RESIDENTS, None, context)
        assert rejected(again) == [("residents_20261101.csv", "too_small")]
        assert records(again) == []

    accepted = ReadContext(current_records=20, accepted_snapshots=frozenset({snapshot_id}))
    loaded = read(grid, RESIDENTS, state, accepted)
    assert snapshots(loaded) == ["residents_20261101.csv"] and len(records(loaded)) == 2
    assert loaded[-1].snapshot_id == snapshot_id
    assert loaded[-1].cursor["files"]["residents_20261101.csv"]["outcome"] == "loaded"
    assert read(grid, RESIDENTS, loaded[-1].cursor, accepted) == []

    # Off at 0, and a file as big as the register passes.
    assert snapshots(read(connector(tmp_path, min_snapshot_ratio=0), RESIDENTS, None,
                          context)) == ["residents_20261101.csv"]
    assert snapshots(read(grid, RESIDENTS, None, ReadContext(current_records=4))) == [
        "residents_20261101.csv"]


def test_an_accepted_snapshot_older_than_the_last_loaded_is_still_stale(tmp_path):
    write_csv(tmp_path / "residents_20261101.csv", [resident(1)])
    grid = connector(tmp_path)
    context = ReadContext(current_records=10)
    [refused] = read(grid, RESIDENTS, None, context)
    sha = refused.rejected_files[0].sha256
    write_csv(tmp_path / "residents_20261102.csv", [resident(i) for i in range(10)])
    newer = read(grid, RESIDENTS, refused.cursor, context)
    assert snapshots(newer) == ["residents_20261102.csv"]
    accepted = ReadContext(current_records=10,
                           accepted_snapshots=frozenset({f"residents_20261101.csv#{sha}"}))
    [stale] = read(grid, RESIDENTS, newer[-1].cursor, accepted)
    assert stale.records.num_rows == 0 and not stale.snapshot_complete
    assert stale.cursor["files"]["residents_20261101.csv"]["outcome"] == "stale"


# -------------------------------------------------------------- the landing folder


def test_files_no_stream_reads_are_reported_once(tmp_path):
    for name in ("readme.txt", "residents_2026.csv", "residents_20261399.csv",
                 "houses_20261101.xlsx.part", ".residents_20261102.csv", "~$orgs_20261101.xlsx",
                 "grids_20261101.geojson.tmp"):
        (tmp_path / name).write_text("x")
    (tmp_path / "archive").mkdir()
    write_csv(tmp_path / "residents_20261101.csv", [resident(1)])
    write_grids(tmp_path / "grids_20261101.geojson")
    grid = connector(tmp_path)
    assert grid.unmatched_files() == ["readme.txt", "residents_2026.csv",
                                      "residents_20261399.csv"]

    # The first file stream (grids) carries the warnings, on its first extract only.
    grids = read(grid, GRIDS)
    assert [len(e.warnings) for e in grids] == [3]
    assert all("matches no stream" in w for w in grids[0].warnings)
    assert any(w.startswith("readme.txt:") for w in grids[0].warnings)
    for stream in (HOUSES, ORGS, RESIDENTS):
        assert all(not e.warnings for e in read(grid, stream))
    # Nothing new to read: an extract of its own carries them, the cursor unchanged.
    [again] = read(grid, GRIDS, grids[-1].cursor)
    assert again.records.num_rows == 0 and len(again.warnings) == 3
    assert again.cursor == grids[-1].cursor
    assert_no_personal_data([*grids, again])


def test_a_clean_folder_warns_of_nothing(tmp_path):
    write_grids(tmp_path / "grids_20261101.geojson")
    grid = connector(tmp_path)
    extracts = read(grid, GRIDS)
    assert all(not e.warnings for e in extracts)
    assert read(grid, GRIDS, extracts[-1].cursor) == []


def test_skipped_files_ride_on_the_next_extract(tmp_path):
    """A resend and a stale file cost no batch of their own, rejected files or not."""
    write_csv(tmp_path / "residents_20261101.csv", [resident(1)])
    grid = connector(tmp_path)
    first = read(grid, RESIDENTS)
    data = (tmp_path / "residents_20261101.csv").read_bytes()
    (tmp_path / "residents_20261102.csv").write_bytes(data)  # yesterday's file again
    (tmp_path / "residents_20261103.csv").write_bytes(b"\xff\xff\r\n")  # unreadable
    (tmp_path / "residents_20261104.csv").write_bytes(data)  # again
    extracts = read(grid, RESIDENTS, first[-1].cursor)
    [only] = extracts
    assert rejected(extracts) == [("residents_20261103.csv", "unreadable")]
    outcomes = {n: f["outcome"] for n, f in only.cursor["files"].items()}
    assert outcomes == {"residents_20261101.csv": "loaded", "residents_20261102.csv": "identical",
                        "residents_20261103.csv": "rejected",
                        "residents_20261104.csv": "identical"}


def test_bad_rows_far_into_a_big_file_have_their_lines_and_ride_with_their_part(tmp_path):
    rows = [resident(i, address=f"兴隆大街{i}号\n二单元" if i % 7 == 0 else None)
            for i in range(20_000)]  # about 3 MB: pyarrow reads it in several blocks
    bad = {150: rows[150][:5], 12_000: [*rows[12_000], "x"], 19_990: rows[19_990][:1]}
    rows = [bad.get(i, r) for i, r in enumerate(rows)]
    write_csv(tmp_path / "residents_20261101.csv", rows)
    lines, line = {}, 2
    for i, r in enumerate(rows):  # the physical line each row starts on
        lines[i] = line
        line += 1 + sum(v.count("\n") for v in r)
    extracts = read(connector(tmp_path, chunk_rows=1_000), RESIDENTS)
    assert len(records(extracts)) == 20_000 - 3
    placed = [(n, r.where) for n, e in enumerate(extracts) for r in e.rejects]
    assert [w for _, w in placed] == [f"residents_20261101.csv line {lines[i]}" for i in bad]
    # Each rides on the extract of the rows around it (1,000 good rows an extract).
    assert [n for n, _ in placed] == [150 // 1000, (12_000 - 1) // 1000, (19_990 - 2) // 1000]


def test_a_file_is_parsed_once_and_its_spool_is_gone_after_the_read(tmp_path, monkeypatch):
    # The pre-pass spools the records it parsed (with their keys derived) for the read
    # that yields them: the file is parsed once, and no spool outlives its file, whether
    # the read ends, stops midway (a run that crashed) or the file is refused.
    spools = tmp_path / "spools"
    spools.mkdir()
    monkeypatch.setenv("TMPDIR", str(spools))
    monkeypatch.setattr("tempfile.tempdir", None)
    rows = [resident(i) for i in range(2_500)]
    write_csv(tmp_path / "residents_20261101.csv", rows)
    grid = connector(tmp_path, chunk_rows=1_000)
    parsed: list[int] = []
    read_file = grid.read_file

    def counted(*args, **kwargs):
        parsed.append(1)
        return read_file(*args, **kwargs)

    monkeypatch.setattr(grid, "read_file", counted)
    extracts = read(grid, RESIDENTS)
    assert parsed == [1]
    assert [e.records.num_rows for e in extracts] == [1_000, 1_000, 500]
    got = records(extracts)
    assert [{f: r[f] for f in HEADER} for r in got] == [dict(zip(HEADER, r, strict=True))
                                                       for r in rows]
    assert all(r[RESIDENT_KEY].startswith("resident:") for r in got)
    assert list(spools.iterdir()) == []

    write_csv(tmp_path / "residents_20261102.csv", rows)
    stopped = grid.extract(RESIDENTS, extracts[-1].cursor, ReadContext())
    next(stopped)
    assert len(list(spools.iterdir())) <= 1  # mapped while read (unlinked once open)
    stopped.close()
    assert list(spools.iterdir()) == []

    read(grid, RESIDENTS, extracts[-1].cursor,
         ReadContext(current_records=1_000_000))  # refused as far too small
    assert list(spools.iterdir()) == []


def test_row_hashes_stay_with_their_rows_and_tell_null_from_empty():
    # DuckDB hashes a big table across threads: each hash must still be its own row's
    # (as hashing the rows one slice at a time gives), and null is not "".
    n = 300_000
    table = pa.table({"a": pa.array([f"居民{i}" for i in range(n)]),
                      "b": pa.array([None if i % 3 == 0 else "" if i % 3 == 1 else "x"
                                     for i in range(n)], pa.string())})
    whole = row_hashes(table, ["a", "b"]).to_pylist()
    sliced = [h for at in range(0, n, 7_919)
              for h in row_hashes(table.slice(at, 7_919), ["a", "b"]).to_pylist()]
    assert whole == sliced
    assert len(set(whole)) == n
    pair = pa.table({"a": ["x", "x"], "b": pa.array([None, ""], pa.string())})
    first, second = row_hashes(pair, ["a", "b"]).to_pylist()
    assert first != second


@settings(max_examples=150)
@given(st.lists(st.tuples(st.sampled_from(["k1", "k2", "k3", "", None]),
                          st.sampled_from(["a", "b", None])), max_size=40),
       st.integers(1, 7))
def test_a_snapshots_keys_and_conflicts_are_counted_as_by_hand(rows, chunk):
    # Null and blank keys are no key; identical repeated rows are one record; a key is
    # conflicting when it holds two different records, whichever chunks they are in.
    scan = KeyScan("key", ["key", "value"])
    table = pa.table({"key": pa.array([k for k, _ in rows], pa.string()),
                      "value": pa.array([v for _, v in rows], pa.string())})
    for at in range(0, len(rows), chunk):
        scan.add(table.slice(at, chunk))
    records: dict[str, set] = {}
    for k, v in rows:
        if k:
            records.setdefault(k, set()).add(v)
    assert scan.rows == len(rows)
    keys, conflicting = scan.result()
    assert (keys, set(conflicting)) == (len(records), {k for k, vs in records.items()
                                                       if len(vs) > 1})
    # A key's digest is of the records it holds, whatever their order and chunks.
    again = KeyScan("key", ["key", "value"])
    if rows:
        again.add(table.take(pa.array(list(reversed(range(len(rows)))), pa.int64())))
    assert again.result()[1] == conflicting


def test_a_file_dealt_with_is_not_read_again_to_know_it(tmp_path, monkeypatch):
    write_csv(tmp_path / "residents_20261101.csv", [resident(1)])
    # The folder's clock a minute on: the file has long settled.
    monkeypatch.setattr(files, "folder_now", lambda folder: time.time() + 60)
    grid = connector(tmp_path)
    state = read(grid, RESIDENTS)[-1].cursor

    def unread(path: Path) -> str:
        raise AssertionError(f"{path.name} read again")

    with monkeypatch.context() as mp:
        mp.setattr(files, "sha256_of", unread)
        assert read(grid, RESIDENTS, state) == []


@pytest.mark.parametrize("settled", [True, False])
def test_a_file_written_again_with_its_size_and_time_kept_is_read_again(
        tmp_path, monkeypatch, settled):
    path = write_csv(tmp_path / "residents_20261101.csv", [resident(1)])
    monkeypatch.setattr(files, "folder_now",
                        lambda folder: time.time() + (60 if settled else 0))
    grid = connector(tmp_path)
    state = read(grid, RESIDENTS)[-1].cursor
    before = path.stat()
    time.sleep(0.02)  # past the file system's time step
    # Other bytes of the same length, the modification time put back.
    write_csv(path, [resident(1, name="居民9")])
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size
    again = read(grid, RESIDENTS, state)
    assert snapshots(again) == ["residents_20261101.csv"]
    assert [r["姓名"] for r in records(again)] == ["居民9"]
