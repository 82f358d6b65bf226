"""The code base, notebooks included, is ruff clean and ruff formatted (pyproject settings)."""

import subprocess
import sys

import pytest

from course_lib.config import repo_root


@pytest.mark.parametrize("command", [["check", "."], ["format", "--check", "."]])
def test_ruff_is_clean(command):
    out = subprocess.run(
        [sys.executable, "-m", "ruff", *command],
        cwd=repo_root(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
