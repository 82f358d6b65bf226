"""Shared fixtures: every test talks to an isolated stack (own ports, own state directory).

The environment is set before any test runs, so notebook kernels started by
papermill inherit it and reach the same isolated stack, never a learner's
`make lab` stack on the default ports.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TEST_PORT_OFFSET = os.environ.get("COURSE_TEST_PORT_OFFSET", "10000")


def pytest_configure(config):
    os.environ["COURSE_STATE_DIR"] = str(REPO / ".course-test")
    os.environ["COURSE_PORT_OFFSET"] = TEST_PORT_OFFSET
    for var in (
        "COURSE_PROMETHEUS_URL",
        "COURSE_ALERTMANAGER_URL",
        "COURSE_PUSHGATEWAY_URL",
        "COURSE_SERVICE_URL",
    ):
        os.environ.pop(var, None)
    # Per-component port overrides from a learner's shell would break isolation.
    for var in [v for v in os.environ if v.startswith("COURSE_") and v.endswith("_PORT")]:
        os.environ.pop(var)


@pytest.fixture(scope="session")
def stack():
    """Start (or reuse) the isolated test stack once per session; stop it at the end."""
    from course_lib import stack as stack_mod

    running = stack_mod.ensure_running(progress=lambda msg: print(f"[test stack] {msg}"))
    yield running
    stack_mod.down(running.config)


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium driven by Playwright (it can't download its own browser here)."""
    import shutil

    from playwright.sync_api import sync_playwright

    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "no chromium on PATH: `make test` installs it (scripts/install-system-deps.sh)"
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=path, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def lab_server(stack, tmp_path_factory):
    """JupyterLab started the way `make lab` starts it, on a copy of notebooks/; yields its URL.

    A copy, because running cells in a browser autosaves outputs into the notebook.
    """
    import secrets
    import shutil
    import subprocess
    import sys
    import time

    import requests

    from course_lib import lab

    root = tmp_path_factory.mktemp("lab") / "notebooks"
    shutil.copytree(REPO / "notebooks", root)
    token = secrets.token_hex(16)
    port = lab.jupyter_port()
    argv = lab.lab_argv(port, token, root)
    argv[0] = str(Path(sys.executable).with_name("jupyter"))
    log = (stack.config.log_dir / "jupyter.log").open("w")
    proc = subprocess.Popen(
        argv, env=lab.jupyter_env(stack.config), stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, f"jupyter lab exited {proc.returncode}: see {log.name}"
        try:
            if requests.get(f"{base}api/status", params={"token": token}, timeout=2).ok:
                break
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, f"jupyter lab not up after 60 s: see {log.name}"
        time.sleep(0.3)
    yield {"url": base, "token": token, "root": root, "log": Path(log.name)}
    for kernel in requests.get(f"{base}api/kernels", params={"token": token}, timeout=5).json():
        requests.delete(f"{base}api/kernels/{kernel['id']}", params={"token": token}, timeout=10)
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()
