"""The xlsx reader (calamine) reads every cell as the text the openpyxl reader before it
read: property-tested against that reader, kept here as the reference."""

from __future__ import annotations

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

from connectors.files import (
    UnreadableFile,
    _cell_text,
    _guarded,
    _missing,
    _text_table,
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


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
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


def test_cells_as_a_person_sees_them(tmp_path):
    path = write(tmp_path / "h.xlsx", [
        ["房屋编码", "房号", "面积", "登记", "启用", "时刻", "时长"],
        ["2111020020010010001", 1201, 1201.0, date(2026, 1, 2), True, time(8, 30), None],
        [None, "", None, None, None, None, None],
        ["　全角空格 ", 3.5, 0.1, datetime(2026, 1, 2, 3, 4, 5), False, time(0, 0, 1),
         timedelta(hours=30)],
    ])
    fields = ["房屋编码", "房号", "面积", "登记", "启用", "时刻", "时长"]
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
