"""The xlsx reader reads every cell as the text the openpyxl reader before it read:
property-tested against that reader, kept here as the reference. A sheet of text cells goes
through fastexcel instead of calamine's Python binding: tested against the binding's read."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator, Sequence
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl.chart import BarChart, Reference

from connectors.files import (
    UnreadableFile,
    _calamine_xlsx,
    _cell_text,
    _guarded,
    _missing,
    _text_table,
    _values_up_front,
    _xlsx_text_columns,
    read_xlsx,
)


def openpyxl_reader(path: Path, fields: Sequence[str], *, chunk_rows: int,
                    sheet: str | None = None) -> Iterator[pa.Table]:
    """The reader read_xlsx replaced (openpyxl's read-only mode), as it was."""
    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        ws = wb[sheet] if sheet else wb.worksheets[0]
        rows = ws.iter_rows(values_only=True)
        header = [_cell_text(v) or "" for v in next(rows, ())]
        header = [h.strip() for h in header]
        _missing(path, fields, header)
        positions = {f: header.index(f) for f in fields}
        columns: dict[str, list[str | None]] = {f: [] for f in fields}
        n = 0
        for row in rows:
            if not any(v is not None and v != "" for v in row):
                continue
            for f, i in positions.items():
                columns[f].append(_cell_text(row[i]) if i < len(row) else None)
            n += 1
            if n == chunk_rows:
                yield _text_table(fields, columns)
                columns, n = {f: [] for f in fields}, 0
        if n:
            yield _text_table(fields, columns)
    finally:
        wb.close()


def write(path: Path, rows: Sequence[Sequence[Any]], sheet: str = "实有房屋",
          before: Sequence[str] = ()) -> Path:
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for name in before:
        wb.create_sheet(name).append(["其他"])
    ws = wb.create_sheet(sheet)
    for row in rows:
        ws.append(list(row))
    wb.save(path)
    return path


def both(path: Path, fields: Sequence[str], chunk_rows: int, sheet: str | None = None
         ) -> tuple[list[list[dict]], list[list[dict]]]:
    new = [t.to_pylist() for t in read_xlsx(path, fields, chunk_rows=chunk_rows, sheet=sheet)]
    old = [t.to_pylist() for t in openpyxl_reader(path, fields, chunk_rows=chunk_rows,
                                                   sheet=sheet)]
    return new, old


def by_calamine(path: Path, fields: Sequence[str], chunk_rows: int,
                sheet: str | None = None) -> list[pa.Table]:
    """The sheet as calamine's binding reads it (every sheet did before fastexcel)."""
    return list(_calamine_xlsx(path, path.read_bytes(), fields, chunk_rows=chunk_rows,
                               sheet=sheet))


def fast(path: Path, sheet: str | None = None) -> bool:
    """Whether fastexcel reads the sheet (it holds text cells only)."""
    return _xlsx_text_columns(path.read_bytes(), sheet) is not None


def same_as_calamine(path: Path, fields: Sequence[str], chunk_rows: int,
                     sheet: str | None = None) -> list[pa.Table]:
    new = list(read_xlsx(path, fields, chunk_rows=chunk_rows, sheet=sheet))
    old = by_calamine(path, fields, chunk_rows, sheet)
    assert [t.schema for t in new] == [t.schema for t in old]
    assert [t.to_pylist() for t in new] == [t.to_pylist() for t in old]
    return new


def shared_strings(path: Path) -> Path:
    """The workbook with its text in a shared-string table, as Excel writes it (openpyxl
    writes text inline); every other string in rich text (runs of formatted text)."""
    with zipfile.ZipFile(path) as src:
        parts = {info.filename: src.read(info) for info in src.infolist()}
    strings: list[bytes] = []

    def shared(m: re.Match[bytes]) -> bytes:
        strings.append(b"<r><rPr><b/></rPr>%s</r>" % m[2] if len(strings) % 2 else m[2])
        return b'<c r="%s" t="s"><v>%d</v></c>' % (m[1], len(strings) - 1)

    sheet = "xl/worksheets/sheet1.xml"
    parts[sheet] = re.sub(rb'<c r="(\w+)" t="inlineStr"><is>(.*?)</is></c>', shared, parts[sheet])
    parts["xl/sharedStrings.xml"] = (
        b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="%d"'
        b' uniqueCount="%d">' % (len(strings), len(strings))
        + b"".join(b"<si>%s</si>" % si for si in strings) + b"</sst>")
    parts["[Content_Types].xml"] = parts["[Content_Types].xml"].replace(
        b"</Types>", b'<Override PartName="/xl/sharedStrings.xml" ContentType="application/'
        b'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>')
    parts["xl/_rels/workbook.xml.rels"] = parts["xl/_rels/workbook.xml.rels"].replace(
        b"</Relationships>", b'<Relationship Id="rIdStrings" Type="http://schemas.openxml'
        b'formats.org/officeDocument/2006/relationships/sharedStrings" '
        b'Target="sharedStrings.xml"/></Relationships>')
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for name, content in parts.items():
            dst.writestr(name, content)
    return path


# Text a person types: CJK, Latin, digits, spaces (leading and trailing too), punctuation;
# no control characters (XML 1.0 cannot hold them; openpyxl refuses them), nothing that
# would make openpyxl write a formula.
TEXT = st.text(st.one_of(
    st.sampled_from("张王李伟芳盘锦市兴隆台区号楼单元室 　-_/()（）#,.，。、xX0123456789"),
    st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF),
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Co", "Cn"))),
    max_size=12).filter(lambda s: not s.startswith("="))
CELLS = st.one_of(
    st.none(),
    st.just(""),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.integers(min_value=-(10**12), max_value=10**12).map(float),  # integral floats
    TEXT,
    st.booleans(),
    st.dates(min_value=date(1900, 3, 1)),
    st.datetimes(min_value=datetime(1900, 3, 1)),
    # Excel keeps a time to the millisecond (at exactly half a millisecond openpyxl
    # rounds to even and calamine up: a time no one types).
    st.times().map(lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000)),
)
WIDTH = 5


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(st.one_of(st.lists(CELLS, min_size=WIDTH, max_size=WIDTH),
                               st.just([None] * WIDTH)),  # an empty (formatted) row
                     max_size=25),
       chunk_rows=st.integers(1, 7), picked=st.permutations(range(WIDTH)),
       n_fields=st.integers(1, WIDTH))
def test_calamine_reads_what_openpyxl_read(tmp_path_factory, rows, chunk_rows, picked,
                                           n_fields):
    path = tmp_path_factory.mktemp("xlsx") / "h.xlsx"
    header = [f" 字段{i} " if i % 2 else f"字段{i}" for i in range(WIDTH)]  # stripped
    write(path, [header, *rows])
    fields = [f"字段{i}" for i in picked[:n_fields]]
    new, old = both(path, fields, chunk_rows)
    assert new == old


# Text cells, and text that looks like something else; openpyxl writes "#N/A" as an error
# value, which both readers read as an empty cell.
TEXT_CELLS = st.one_of(st.none(), st.just(""), TEXT, st.sampled_from(
    [" ", "　", " 两端 ", "&amp;<>\"'", "_x000D_", "0042", "1.50", "TRUE", "#N/A"]))


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(st.one_of(st.lists(TEXT_CELLS, min_size=WIDTH, max_size=WIDTH),
                               st.just([None] * WIDTH)),
                     max_size=25),
       lead=st.integers(0, 2), excel=st.booleans(), chunk_rows=st.integers(1, 7),
       picked=st.permutations(range(WIDTH)), n_fields=st.integers(1, WIDTH))
def test_a_sheet_of_text_goes_through_fastexcel_as_calamine_read_it(
        tmp_path_factory, rows, lead, excel, chunk_rows, picked, n_fields):
    path = tmp_path_factory.mktemp("xlsx") / "h.xlsx"
    header = [f" 字段{i} " if i % 2 else f"字段{i}" for i in range(WIDTH)]
    write(path, [[None] * lead + row for row in [header, *rows]])  # from column A, B or C
    if excel:
        shared_strings(path)
    assert fast(path)
    same_as_calamine(path, [f"字段{i}" for i in picked[:n_fields]], chunk_rows)


def test_empty_rows_error_values_and_shared_strings_in_a_sheet_of_text(tmp_path):
    path = write(tmp_path / "h.xlsx", [
        ["编码", "名称", "地址"],
        ["A1", "", "盘锦市"],
        [None, None, None],
        ["A2", "甲", None],
        ["", "", ""],  # cells holding nothing
        ["A3", "乙", "#N/A"],  # an error value (openpyxl reads it as "#N/A")
    ])
    wb = openpyxl.load_workbook(path)
    wb.active["A7"].number_format = wb.active["C7"].number_format = "@"  # formatted, empty
    wb.save(path)
    expected = [{"编码": "A1", "名称": None, "地址": "盘锦市"},
                {"编码": "A2", "名称": "甲", "地址": None},
                {"编码": "A3", "名称": "乙", "地址": None}]
    for workbook in (path, shared_strings(tmp_path / "h.xlsx")):
        assert fast(workbook)
        chunks = same_as_calamine(workbook, ["编码", "名称", "地址"], 2)
        assert [t.to_pylist() for t in chunks] == [expected[:2], expected[2:]]


def test_a_chart_sheet_first_goes_through_calamine(tmp_path):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "房屋"
    ws.append(["编码"])
    ws.append(["A1"])
    chart = BarChart()
    chart.add_data(Reference(ws, min_col=1, min_row=1, max_row=2))
    wb.create_chartsheet("图表", 0).add_chart(chart)
    wb.save(tmp_path / "c.xlsx")
    assert not fast(tmp_path / "c.xlsx")  # fastexcel finds no cell in the chart sheet
    assert [t.to_pylist() for t in read_xlsx(tmp_path / "c.xlsx", ["编码"], chunk_rows=5)] == [
        [{"编码": "A1"}]]


def test_a_number_past_the_first_rows_is_found_all_the_same(tmp_path):
    path = write(tmp_path / "h.xlsx", [["编码", "房号"], *([f"A{i}", f"{i}01"] for i in range(3000)),
                                       ["B1", 1201]])
    assert not _values_up_front(path.read_bytes())  # too far down for the quick look
    assert not fast(path)  # fastexcel finds it: calamine's binding makes it text
    new, old = both(path, ["房号"], 1000)
    assert new == old and new[-1] == [{"房号": "1201"}]


def test_a_missing_column_is_told_as_calamine_told_it(tmp_path):
    wb = openpyxl.Workbook()
    wb.active["C1"], wb.active["C2"] = "编码", "A1"
    wb.save(tmp_path / "h.xlsx")
    assert fast(tmp_path / "h.xlsx")
    with pytest.raises(UnreadableFile) as new:
        list(read_xlsx(tmp_path / "h.xlsx", ["名称"], chunk_rows=5))
    with pytest.raises(UnreadableFile) as old:
        by_calamine(tmp_path / "h.xlsx", ["名称"], 5)
    assert str(new.value) == str(old.value) and "(3 columns)" in str(new.value)


def test_cells_as_a_person_sees_them(tmp_path):
    path = write(tmp_path / "h.xlsx", [
        ["房屋编码", "房号", "面积", "登记", "启用", "时刻", "时长"],
        ["2111020020010010001", 1201, 1201.0, date(2026, 1, 2), True, time(8, 30), None],
        [None, "", None, None, None, None, None],
        ["　全角空格 ", 3.5, 0.1, datetime(2026, 1, 2, 3, 4, 5), False, time(0, 0, 1),
         timedelta(hours=30)],
    ])
    fields = ["房屋编码", "房号", "面积", "登记", "启用", "时刻", "时长"]
    assert not fast(path)  # numbers, dates, booleans: calamine's binding makes them text
    new, old = both(path, fields, 10)
    assert new == old
    assert new == [[
        {"房屋编码": "2111020020010010001", "房号": "1201", "面积": "1201",
         "登记": "2026-01-02 00:00:00", "启用": "true", "时刻": "08:30:00", "时长": None},
        {"房屋编码": "　全角空格 ", "房号": "3.5", "面积": "0.1", "登记": "2026-01-02 03:04:05",
         "启用": "false", "时刻": "00:00:01", "时长": "1 day, 6:00:00"}]]


def test_named_or_first_worksheet_and_sheets_starting_off_a1(tmp_path):
    path = write(tmp_path / "h.xlsx", [["编码", "名称"], ["A1", "甲"]], sheet="组织",
                 before=["说明"])
    assert both(path, ["名称"], 5, sheet="组织") == ([[{"名称": "甲"}]],) * 2
    with pytest.raises(UnreadableFile, match="名称"):  # the first sheet has no such column
        list(read_xlsx(path, ["名称"], chunk_rows=5))
    # Data starting at B3: row 1 is the header row, and it is empty.
    wb = openpyxl.Workbook()
    wb.active["B3"], wb.active["C4"] = "编码", 5
    wb.save(tmp_path / "off.xlsx")
    with pytest.raises(UnreadableFile, match="编码"):
        list(read_xlsx(tmp_path / "off.xlsx", ["编码"], chunk_rows=5))
    wb = openpyxl.Workbook()
    wb.active["B1"], wb.active["C1"], wb.active["C3"] = "编码", "名称", 5
    wb.save(tmp_path / "off.xlsx")
    new, old = both(tmp_path / "off.xlsx", ["名称", "编码"], 5)
    assert new == old == [[{"名称": "5", "编码": None}]]


def test_an_empty_workbook_or_one_without_the_column(tmp_path):
    openpyxl.Workbook().save(tmp_path / "empty.xlsx")
    with pytest.raises(UnreadableFile, match="empty"):
        list(read_xlsx(tmp_path / "empty.xlsx", ["编码"], chunk_rows=5))
    write(tmp_path / "h.xlsx", [["编码"]])  # a header and no record: no chunk
    assert list(read_xlsx(tmp_path / "h.xlsx", ["编码"], chunk_rows=5)) == []


def test_a_broken_workbook_is_unreadable_and_a_missing_one_an_os_error(tmp_path):
    good = write(tmp_path / "h.xlsx", [["编码"], *([f"张三{i}"] for i in range(200))])
    data = good.read_bytes()
    (tmp_path / "half.xlsx").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.xlsx").write_bytes("张三,110101199003070014\n".encode())
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(tmp_path / "badxml.xlsx", "w") as dst:
        for info in src.infolist():
            content = src.read(info.filename)
            if info.filename.startswith("xl/worksheets/"):
                content = content[: len(content) // 2]
            dst.writestr(info, content)
    for name in ("half.xlsx", "junk.xlsx", "badxml.xlsx"):
        with pytest.raises(UnreadableFile) as caught:
            list(_guarded(name, "XLSX", lambda n=name: read_xlsx(
                tmp_path / n, ["编码"], chunk_rows=50)))
        assert name in str(caught.value) and "张三" not in str(caught.value)
    with pytest.raises(UnreadableFile, match="WorksheetNotFound"):
        list(_guarded("h.xlsx", "XLSX", lambda: read_xlsx(good, ["编码"], chunk_rows=5,
                                                          sheet="无此表")))
    with pytest.raises(FileNotFoundError):  # no verdict on a file that is not there
        list(_guarded("gone.xlsx", "XLSX", lambda: read_xlsx(
            tmp_path / "gone.xlsx", ["编码"], chunk_rows=5)))
