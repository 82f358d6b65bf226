"""binder/ (repo2docker): the packages `make setup` installs, scripts that parse, a start."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
import tempfile
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


def _python_for(user_cmd: list[str]) -> tuple[str, dict[str, str]]:
    """Return a Python the unprivileged user can run with the venv's packages, and its env.

    The venv's interpreter may live under root's home (pyenv), out of reach of another
    user; the system Python of the same version then runs the venv's site-packages.
    """
    site = sysconfig.get_paths()["purelib"]
    extra = {"PYTHONPATH": f"{repo_root()}:{site}"}
    wanted = f"{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (sys.executable, f"/usr/bin/python{wanted}"):
        probe = subprocess.run(
            # Through a shell, as start runs it: setpriv's own exec can still reach paths
            # the user's later processes can't.
            [*user_cmd, "sh", "-c", f'exec {candidate} -c "import sys; print(sys.version)"'],
            capture_output=True,
            text=True,
            env={**extra, "PATH": "/usr/bin:/bin"},
        )
        if probe.returncode == 0 and probe.stdout.startswith(wanted):
            return candidate, extra
    raise AssertionError(
        f"no Python {wanted} that an unprivileged user can run: install python{wanted} "
        "(Debian package) or a venv outside root's home"
    )


@pytest.mark.stack
@pytest.mark.process
def test_start_works_for_an_unprivileged_user_on_a_read_only_checkout():
    """As a hub user: not root, the checkout not writable, state in the user's own home."""
    if os.geteuid() != 0:
        pytest.skip("needs root to become another user (CI runs as root)")
    user_cmd = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    uid, gid = pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid
    home = Path(tempfile.mkdtemp(prefix="hub-user-"))  # under /tmp: reachable by nobody
    os.chown(home, uid, gid)
    python, extra = _python_for(user_cmd)
    bindir = Path(tempfile.mkdtemp(prefix="hub-bin-"))
    wrapper = bindir / "python"  # a script, not a symlink: PATH lookup stats the target
    wrapper.write_text(f'#!/bin/sh\nexec {python} "$@"\n')
    wrapper.chmod(0o755)
    bindir.chmod(0o755)
    env = {
        **extra,
        "PATH": f"{bindir}:/usr/bin:/bin",
        "HOME": str(home),
        "COURSE_PORT_OFFSET": str(int(os.environ["COURSE_PORT_OFFSET"]) + 300),
        "COURSE_HISTORY": "0",
        "COURSE_TRAFFIC": "0",
    }
    state = home / ".local" / "state" / "vrewcraft-course"
    writable = subprocess.run([*user_cmd, "test", "-w", str(repo_root())], env=env)
    assert writable.returncode != 0, "the checkout is writable by nobody: not read-only"
    try:
        result = subprocess.run(
            [*user_cmd, "bash", str(BINDER / "start"), "python", "-m", "course_lib", "status"],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        log = (state / "start.log").read_text() if (state / "start.log").exists() else ""
        assert result.returncode == 0, result.stdout + result.stderr + log
        assert "stack ready" in log, log  # state went to the user's home, not the checkout
        assert "prometheus" in result.stdout and "healthy" in result.stdout, result.stdout
        assert {p.stat().st_uid for p in state.rglob("*")} == {uid}  # all the user's own
    finally:
        subprocess.run(
            [*user_cmd, "python", "-m", "course_lib", "down"],
            env={**env, "COURSE_STATE_DIR": str(state)},
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(bindir, ignore_errors=True)
