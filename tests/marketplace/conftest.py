"""Fixtures of the project-level tests: the wheel, built once per test module from a copy of the checkout (its build
output beside it, in `<wheel>.log`)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    source = tmp_path_factory.mktemp("src") / "repo"
    ignore = shutil.ignore_patterns(
        ".venv", ".git", "__pycache__", "*.sqlite3*", "staticfiles", "build", "*.egg-info", "var"
    )
    shutil.copytree(REPO, source, ignore=ignore)
    result = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(source)],
        check=True,
        capture_output=True,
        text=True,
        timeout=240,
    )
    (built,) = out.glob("*.whl")
    built.with_suffix(".log").write_text(result.stdout + result.stderr)  # what the build said, for test_wheel.py
    return built
