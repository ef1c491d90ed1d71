"""The house's layers hold (import-linter contracts in pyproject.toml), and a forbidden import
breaks them: the check runs on a copy of the tree with one such import planted."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bandit", "policies", "simulator")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` over the packages found under ``root`` (its own pyproject's contracts)."""
    return subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command;"
                           "lint_imports_command()", "--config", str(ROOT / "pyproject.toml"),
                           "--no-cache"],
                          cwd=root, capture_output=True, text=True,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})


def test_the_tree_keeps_every_contract():
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize("module, planted, reported", [
    ("policies/base.py", "import bandit.domain.errors",
     "policies.base -> bandit.domain.errors"),
    ("bandit/store/events.py", "import bandit.core.joiner",
     "bandit.store.events -> bandit.core.joiner"),
    ("bandit/core/learner.py", "import bandit.cli.main", "bandit.core.learner -> bandit.cli.main"),
    ("simulator/worlds/runner.py", "import bandit.http.api",
     "simulator.worlds.runner -> bandit.http.api"),
    ("bandit/http/app.py", "import simulator.worlds.runner",
     "bandit.http.app -> simulator.worlds.runner"),
    ("bandit/store/rows.py", "import bandit.store.events", "No cycles are allowed in bandit.store"),
])
def test_a_forbidden_import_breaks_its_contract(tmp_path, module, planted, reported):
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    target = tmp_path / module
    # inside a function: imports there count as much as those at the top
    target.write_text(target.read_text() + f"\n\ndef _planted():\n    {planted}\n")
    done = lint_imports(tmp_path)
    assert done.returncode != 0, done.stdout
    assert reported in done.stdout.split("Broken contracts")[1], done.stdout
