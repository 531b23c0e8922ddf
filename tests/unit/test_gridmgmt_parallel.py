"""The grid platform's files made in forked processes (sandbox.gridmgmt.Landing.drop_all
with workers) are the files one process makes, byte for byte, with the same truth."""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path

from sandbox.city import City
from sandbox.gridmgmt import PARALLEL_FROM, GridData, Landing, default_workers

END = datetime(2026, 12, 2)


def dropped(folder: Path, workers: int, days: int = 4) -> tuple[GridData, list[str], dict]:
    data = GridData(City("2111", scale=0.01), days=days, end=END)
    names = Landing(data, folder).drop_all(workers=workers)
    digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
               for p in sorted(folder.iterdir())}
    return data, names, digests


def test_forked_workers_write_the_files_one_process_writes(tmp_path):
    serial, serial_names, serial_files = dropped(tmp_path / "serial", 1)
    forked, forked_names, forked_files = dropped(tmp_path / "forked", 2)
    assert forked_names == serial_names
    assert forked_files == serial_files
    # The missing day's half-written leftover and the repeated orgs file are there too.
    assert any(n.endswith(".csv.part") for n in forked_files)
    assert serial.truth.repeated_files
    assert forked.truth == serial.truth
    ever = serial.residents_ever()
    assert forked.residents_ever() == ever
    assert [forked.resident(i) for i in ever] == [serial.resident(i) for i in ever]
    assert forked._houses() == serial._houses()
    # The platform lives on: the next day's files are the same as well.
    for data, folder in ((serial, tmp_path / "serial"), (forked, tmp_path / "forked")):
        data.advance_day()
        Landing(data, folder).drop(data.dates[-1])
    assert ({p.name: p.read_bytes() for p in (tmp_path / "forked").iterdir()}
            == {p.name: p.read_bytes() for p in (tmp_path / "serial").iterdir()})


def test_three_workers_and_a_short_history(tmp_path):
    _, serial_names, serial_files = dropped(tmp_path / "serial", 1, days=2)
    _, forked_names, forked_files = dropped(tmp_path / "forked", 3, days=2)
    assert (forked_names, forked_files) == (serial_names, serial_files)


def test_small_cities_stay_in_one_process():
    assert default_workers(PARALLEL_FROM - 1) == 1
    assert 1 <= default_workers(PARALLEL_FROM) <= 2
