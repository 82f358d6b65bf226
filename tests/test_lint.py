"""The code base, notebooks included, is ruff clean (the repository's pyproject settings)."""

import subprocess
import sys

from course_lib.config import repo_root


def test_ruff_is_clean():
    out = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "."],
        cwd=repo_root(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
