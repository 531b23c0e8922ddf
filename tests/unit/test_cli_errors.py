"""A failing command says what failed in one line, with no traceback unless asked."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from base.settings import PROJECT_ROOT
from hub.cli import app


def test_an_unreachable_warehouse_is_one_line_and_exit_1() -> None:
    # The unit tests' warehouse URL points at a port nothing listens on.
    result = CliRunner().invoke(app, ["collect", "nonexistent"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output and "hub -v" in lines[0]


def test_verbose_keeps_the_traceback() -> None:
    result = CliRunner().invoke(app, ["-v", "collect", "nonexistent"])
    assert result.exit_code == 1
    assert result.exception is not None and not isinstance(result.exception, SystemExit)


def test_a_run_that_cannot_work_says_what_to_set_before_it_is_recorded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped sources file's grid source, where no landing folder exists: refused
    before the warehouse is touched (the unit tests' warehouse URL reaches nothing, so
    a recorded run would fail on the connection instead)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HUB_GRIDMGMT_API_TOKEN", "t")
    result = CliRunner().invoke(app, ["run", "gridmgmt", "--config",
                                      str(PROJECT_ROOT / "sources.yaml")])
    assert result.exit_code == 1
    assert "landing folder .hub/landing/gridmgmt does not exist" in result.output
    assert "sources.gridmgmt.settings.folder" in result.output
    assert "connection" not in result.output and "Traceback" not in result.output


def test_boolean_options_are_plain_flags() -> None:
    shown = CliRunner().invoke(app, ["quarantine", "list", "--help"])
    assert shown.exit_code == 0 and "<bool>" not in shown.output
    assert any(line.split()[:1] == ["--all"] for line in shown.output.splitlines())
    wrong = CliRunner().invoke(app, ["quarantine", "list", "--all", "true"])
    assert wrong.exit_code == 2 and "Traceback" not in wrong.output
