"""The simulators' fast paths write what the plain ones wrote: the houses and orgs
workbooks byte for byte as openpyxl writes them, the same random streams."""

from __future__ import annotations

import random
from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox import city as citymod
from sandbox import gridmgmt
from sandbox.gridmgmt import HOUSE_HEADERS, _openpyxl_xlsx_bytes, _xlsx_bytes

DAY = date(2026, 11, 30)
# What a platform's text holds, markup characters and spaces at either end included.
TEXT = st.text(st.one_of(st.sampled_from("张王 盘锦市\u3000&<>\"'=#/!?N A1\t\n\r"),
                         st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"))),
               max_size=10)


def workbooks(rows: list[dict[str, str]], day: date = DAY) -> tuple[bytes, bytes]:
    table = [[row.get(h, "") for h in HOUSE_HEADERS] for row in rows]
    return (_xlsx_bytes("实有房屋", HOUSE_HEADERS, rows, day),
            _openpyxl_xlsx_bytes("实有房屋", HOUSE_HEADERS, table, day))


@settings(max_examples=40)
@given(st.lists(st.lists(TEXT, min_size=len(HOUSE_HEADERS), max_size=len(HOUSE_HEADERS)),
                max_size=12))
def test_the_workbook_is_the_one_openpyxl_writes(values):
    rows = [dict(zip(HOUSE_HEADERS, v, strict=True)) for v in values]
    fast, plain = workbooks(rows)
    assert fast == plain


def test_formulas_error_codes_and_long_text_go_the_openpyxl_way():
    for odd in ("=SUM(A1:A3)", "#N/A", "x" * 40_000):
        rows = [dict.fromkeys(HOUSE_HEADERS, "住宅") for _ in range(3)]
        rows[1]["地址"] = odd
        fast, plain = workbooks(rows)
        assert fast == plain


def test_a_days_houses_file_is_the_same_bytes_made_either_way():
    data = gridmgmt.GridData(citymod.City("2111", scale=0.002), days=2)
    for day in data.dates:
        fast, plain = workbooks(data.houses_on(day), day)
        assert gridmgmt.render(data, "houses", day) == fast == plain


def test_seeded_is_random_random():
    for text in ("", "20261124:person:7", "gridmgmt:1.0:3:2026-12-02T00:00:00:house:5",
                 "盘锦" * 50):
        fast, plain = citymod.seeded(text), random.Random(text)
        assert [fast.random() for _ in range(5)] == [plain.random() for _ in range(5)]
        assert fast.getrandbits(100) == plain.getrandbits(100)
        assert fast.sample(range(1000), 5) == plain.sample(range(1000), 5)
        assert fast.gauss(0, 1) == plain.gauss(0, 1)
