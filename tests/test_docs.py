"""The guide: the README stays a guide, the docs site builds with --strict (a broken link fails),
and the generated pages are current (configuration reference, results)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from bandit.config import reference

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
QUICK_START = ('pip install -e ".[server]" && cartwheel serve',
               'pip install -e ".[dev]" && python -m pytest')


def test_the_readme_is_a_guide_with_the_two_commands():
    assert len(README.splitlines()) <= 250
    block = re.search(r"## Quick start \(Python 3\.11\)\n\n```bash\n(.*?)```", README, re.S)
    assert block is not None, "the quick start's code block is missing"
    assert block.group(1).splitlines() == list(QUICK_START)
    for package in ("redis-server", "chromium"):
        assert package in README


def test_ci_runs_the_readmes_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert QUICK_START[1] in ci


def test_the_site_builds_strictly(tmp_path):
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                           str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "configuration" / "index.html").exists()
    # nothing is fetched from a CDN when the site is read (no web fonts, no remote scripts)
    for page in (tmp_path / "site").rglob("*.html"):
        text = page.read_text()
        assert "fonts.googleapis" not in text and "fonts.gstatic" not in text, page
        assert not re.search(r"<script[^>]+src=\"https?://", text), page


def test_the_configuration_reference_is_generated_from_the_example_shop():
    page = (ROOT / "docs" / "configuration.md").read_text()
    assert page == reference.render(), (
        "docs/configuration.md is out of date: python -m bandit.config.reference > "
        "docs/configuration.md")
    # every key the example shop sets is on the page, in its table
    for table, _, keys in reference.sections(reference.example_text()):
        for key in keys:
            assert f"| `{key}` |" in page, (table, key)


def test_the_results_pages_are_generated_from_the_benchmark_results():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "publish_results.py"),
                           "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for table in (ROOT / "benchmarks" / "results").glob("*.txt"):
        page = (ROOT / "docs" / "results" / f"{table.stem}.md").read_text()
        assert table.read_text().rstrip() in page, table.name


def test_the_readmes_python_snippet_runs(tmp_path):
    snippet = re.search(r"```python\n(.*?)```", README, re.S).group(1)
    done = subprocess.run([sys.executable, "-c", snippet + "\nprint('captured', "
                           "round(result.captured_gain, 3))"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert 0.0 < float(done.stdout.split("captured")[-1]) < 1.0
    assert (tmp_path / "cartwheel-data" / "events.sqlite3").exists()  # Engine.open()'s default


def test_every_command_of_the_readmes_tour_exists():
    commands = re.findall(r"(?:^|`|&& )cartwheel (\w+)", README, re.M)
    assert {"serve", "init", "simulate", "export", "replay", "report", "segments",
            "policies"} <= set(commands)
    for command in set(commands):
        done = subprocess.run([sys.executable, "-m", "bandit.cli", command, "--help"],
                              capture_output=True, text=True)
        assert done.returncode == 0, (command, done.stderr)
