"""binder/ (repo2docker): the packages `make setup` installs, scripts that parse, a start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from course_lib.config import repo_root

BINDER = repo_root() / "binder"


def _install_script_packages() -> set[str]:
    """Debian packages the install script installs: the course's lines of the one list."""
    from course_lib.supervisor import system_binaries

    return {b.debian for b in system_binaries() if b.needed_by == "course"}


def _apt_txt() -> set[str]:
    lines = (BINDER / "apt.txt").read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def test_apt_txt_lists_the_install_scripts_packages():
    assert _install_script_packages() == _apt_txt()


@pytest.mark.process
def test_binder_scripts_parse_and_are_executable():
    for name in ("postBuild", "start"):
        script = BINDER / name
        assert os.access(script, os.X_OK), f"{script} must be executable"
        result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    assert (BINDER / "start").read_text().rstrip().endswith('exec "$@"')
    assert "-r requirements.txt" in (BINDER / "postBuild").read_text()  # the one pinned lock


def test_runtime_matches_the_python_the_course_needs():
    import tomllib

    runtime = (BINDER / "runtime.txt").read_text().strip()
    wanted = tomllib.loads((repo_root() / "pyproject.toml").read_text())["project"][
        "requires-python"
    ]
    assert runtime == f"python-{wanted.removeprefix('>=')}", (runtime, wanted)


@pytest.mark.stack
@pytest.mark.process
def test_start_launches_the_stack_then_runs_the_server_command(tmp_path):
    """`start` brings a stack up (own ports and state dir here) and execs its arguments."""
    state = tmp_path / "state"
    offset = int(os.environ["COURSE_PORT_OFFSET"]) + 200  # not the test stack's ports
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "HOME": str(tmp_path / "home"),
        "COURSE_STATE_DIR": str(state),
        "COURSE_PORT_OFFSET": str(offset),
        "COURSE_HISTORY": "0",  # the backfill is tested elsewhere; keep this quick
        "COURSE_TRAFFIC": "0",
    }
    try:
        result = subprocess.run(
            ["bash", str(BINDER / "start"), "python", "-m", "course_lib", "status"],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        log = (state / "start.log").read_text() if (state / "start.log").exists() else ""
        assert result.returncode == 0, result.stdout + result.stderr + log
        assert "stack ready" in log, log
        # `status` ran after start (exec "$@"): every component is up.
        assert "prometheus" in result.stdout and "healthy" in result.stdout, result.stdout
        assert " dead " not in result.stdout, result.stdout
    finally:
        subprocess.run(
            [sys.executable, "-m", "course_lib", "down"], env=env, capture_output=True, timeout=60
        )
