"""The layers point one way, and no module hides an import inside a function.

import-linter (`make test` runs `lint-imports`) checks the contracts in pyproject.toml
over every import statement; this adds what it cannot see: an import of the hub's own
packages placed inside a function — the usual way a cycle is hidden instead of fixed.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIRST_PARTY = {"base", "schemas", "connectors", "conform", "quality", "warehouse", "link", "hub",
               "sandbox", "bench"}
PRODUCT = ("base", "schemas", "connectors", "conform", "quality", "warehouse", "link", "hub")
# Airflow parses DAG files every few seconds: a task imports the heavy pipeline (GX,
# pyarrow, the warehouse) when it runs, not when the scheduler reads the file.
TASK_TIME_IMPORTS = {"hub/dag_factory.py": {"hub.pipeline", "warehouse.migrate", "warehouse.db"},
                     "hub/dag_reports.py": {"quality.report", "quality.report_data"},
                     "hub/dag_refresh.py": {"hub.pipeline", "quality.consistency",
                                            "warehouse.migrate", "warehouse.db"}}


def imports_inside_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(func):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            where = str(path.relative_to(ROOT))
            for name in names:
                if name.split(".")[0] in FIRST_PARTY \
                        and name not in TASK_TIME_IMPORTS.get(where, set()):
                    found.append(f"{where}:{node.lineno} imports {name}")
    return found


def test_no_first_party_import_hides_inside_a_function():
    found = [hit for package in PRODUCT for path in sorted((ROOT / package).rglob("*.py"))
             for hit in imports_inside_functions(path)]
    assert found == []


def test_the_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout[-4000:]
