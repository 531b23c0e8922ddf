"""Quarantine from a user's side: list, inspect (masked), fix, replay; and the CLI around it."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from base.settings import settings
from conform import mappings
from hub.cli import app
from hub.console import console
from hub.pipeline import run_source
from hub.replay import replay
from quality import rules
from quality.report_data import Week, collect
from warehouse.db import Role, connect

runner = CliRunner()


@pytest.fixture
def strict_categories(tmp_path, monkeypatch):
    """A deployment that holds back unmapped categories, with its own mapping folder."""
    spec = yaml.safe_load(rules.RULES_FILE.read_text(encoding="utf-8"))
    spec["category_mapped"]["severity"] = "blocking"
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("HUB_RULES_FILE", str(rules_file))
    folder = tmp_path / "mappings"
    shutil.copytree(mappings.MAPPINGS, folder)
    monkeypatch.setattr(mappings, "MAPPINGS", folder)

    def clear() -> None:
        settings.cache_clear()
        rules.definitions.cache_clear()
        rules._applied.cache_clear()
        mappings.category_mapping.cache_clear()

    clear()
    yield folder
    monkeypatch.undo()
    clear()


def test_a_mapping_fix_then_replay_loads_the_held_records(db, hotline, strict_categories):
    source, config, server = hotline()
    first = run_source(source, config)
    unknown = {no for no, t in server.data.truth.items() if "unknown_category" in t.defects}
    held = dict(db.execute("SELECT source_id, quarantine_id FROM quality.quarantine WHERE"
                           " source_system = %s AND rule = 'category_mapped' AND state = 'open'",
                           (source,)).fetchall())
    assert held and set(held) <= unknown
    assert first.quarantined >= len(held)

    # The fix: the platform's new categories get a line in the mapping file.
    codes = {server.data.orders[no]["categoryCode"]: server.data.orders[no]["categoryName"]
             for no in held}
    with open(strict_categories / "hotline12345" / "categories.csv", "a", encoding="utf-8") as f:
        for code, name in codes.items():
            f.write(f"{code},{name},QT\n")
    mappings.category_mapping.cache_clear()

    [summary] = replay(source, "category_mapped", config)
    assert summary.extracted == len(held)
    assert (summary.loaded, summary.quarantined) == (len(held), 0)
    states = dict(db.execute("SELECT source_id, state FROM quality.quarantine WHERE"
                             " quarantine_id = ANY(%s)", (list(held.values()),)).fetchall())
    assert set(states.values()) == {"replayed"}
    loaded = dict(db.execute("SELECT source_id, category_code FROM core.event WHERE"
                             " source_system = %s AND source_id = ANY(%s) AND valid_to IS NULL",
                             (source, list(held))).fetchall())
    assert loaded == {no: "QT" for no in held}
    run = db.execute("SELECT trigger, extracted, loaded, quarantined FROM ops.run"
                     " WHERE run_id = %s", (summary.run_id,)).fetchone()
    assert run == ("replay", len(held), len(held), 0)

    # The report of the week the replay happened in counts them as replayed (the
    # database stamped it; the hub clock is pinned to the simulated history).
    replayed_at = db.execute("SELECT max(resolved_at) FROM quality.quarantine"
                             " WHERE source_system = %s", (source,)).fetchone()[0]
    week = Week.containing(replayed_at)
    with connect(Role.OWNER) as conn:
        data = collect(conn, week, now=replayed_at + timedelta(seconds=1))
    [row] = [r for r in data.quarantine if r["source_system"] == source]
    assert row["replayed"] == len(held)


def test_replay_of_still_bad_records_keeps_them_held(db, hotline):
    source, config, _ = hotline()
    run_source(source, config)
    held = db.execute("SELECT count(*) FROM quality.quarantine WHERE source_system = %s"
                      " AND state = 'open'", (source,)).fetchone()[0]
    assert held > 0
    [summary] = replay(source, None, config)
    assert (summary.extracted, summary.loaded, summary.quarantined) == (held, 0, held)
    still = db.execute("SELECT count(*) FROM quality.quarantine WHERE source_system = %s"
                       " AND state = 'open'", (source,)).fetchone()[0]
    assert still == held


def test_cli_lists_and_shows_quarantine_with_personal_data_masked(db, hotline):
    source, config, server = hotline()
    run_source(source, config)
    listed = runner.invoke(app, ["quarantine", "list", "--source", source])
    assert listed.exit_code == 0, listed.output
    assert "lifecycle_order" in listed.output

    qid, sid = db.execute("SELECT quarantine_id, source_id FROM quality.quarantine WHERE"
                          " source_system = %s AND payload->>'callerPhone' <> '' ORDER BY 1"
                          " LIMIT 1", (source,)).fetchone()
    phone = re.sub(r"\D", "", server.data.orders[sid]["callerPhone"])[-11:]
    shown = runner.invoke(app, ["quarantine", "show", str(qid)])
    assert shown.exit_code == 0, shown.output
    assert sid in shown.output and phone not in re.sub(r"\D", "", shown.output)
    reads = db.execute("SELECT count(*) FROM ops.pii_read WHERE reference = %s",
                       (str(qid),)).fetchone()[0]
    no_reason = runner.invoke(app, ["quarantine", "show", str(qid), "--unmasked"])
    assert no_reason.exit_code == 2 and "--reason" in no_reason.output
    clear = runner.invoke(app, ["quarantine", "show", str(qid), "--unmasked",
                                "--reason", "核对来电号码"])
    assert clear.exit_code == 0 and phone in re.sub(r"\D", "", clear.output)
    assert db.execute("SELECT login, reason FROM ops.pii_read WHERE reference = %s"
                      " ORDER BY read_id", (str(qid),)).fetchall()[reads:] == [
        ("hub_pii_reader", "核对来电号码")]


def test_cli_sql_and_status(db, hotline, monkeypatch):
    source, config, _ = hotline()
    summary = run_source(source, config)
    query = f"select count(*) as n from mart.event where source_system = '{source}'"  # noqa: S608 (the user's own SQL, as typed at the prompt)
    out = runner.invoke(app, ["sql", query, "--csv"])
    assert out.exit_code == 0, out.output
    assert list(csv.reader(io.StringIO(out.output))) == [["n"], [str(summary.loaded)]]
    table = runner.invoke(app, ["sql", query])
    assert str(summary.loaded) in table.output and "(1 row)" in table.output
    bad = runner.invoke(app, ["sql", "select * from no_such_table"])
    assert bad.exit_code == 1 and "query failed" in bad.output
    monkeypatch.setattr(console, "width", 80)  # an 80-column terminal
    status = runner.invoke(app, ["status"])
    assert status.exit_code == 0 and source in status.output
    # It fits an 80-column terminal, and no count is split over two lines.
    assert max(len(line) for line in status.output.splitlines()) <= 80
    run_line = next(line for line in status.output.splitlines()
                    if line.split()[:2] == [source, str(summary.run_id)])
    assert f"{summary.extracted:,}" in run_line.split() and "ok" in run_line.split()
    as_json = runner.invoke(app, ["status", "--json"])
    assert as_json.exit_code == 0, as_json.output
    state = json.loads(as_json.output)
    assert {(c["source"], c["stream"]) for c in state["cursors"]} >= {(source, "workorders")}
    assert any(r["run"] == summary.run_id and r["outcome"] == "succeeded" for r in state["runs"])


def test_cli_run_reports_counts(hotline):
    source, config, _ = hotline()
    out = runner.invoke(app, ["run", source, "--config", str(config)])
    assert out.exit_code == 0, out.output
    assert re.search(r"\d+ extracted = \d+ loaded \+ \d+ quarantined", out.output)
    assert re.search(r"\d+ unchanged, \d+ closed;", out.output)


def test_cli_run_of_an_unknown_source_says_so(tmp_path: Path, hotline):
    _, config, _ = hotline()
    out = runner.invoke(app, ["run", "nope", "--config", str(config)])
    assert out.exit_code == 1 and "no source 'nope'" in out.output
