"""A failing command says what failed in one line, with no traceback unless asked."""

from __future__ import annotations

from typer.testing import CliRunner

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
