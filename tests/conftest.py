"""Fixtures of the tests in tests/; the isolated stack and its environment are in ../conftest.py."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium driven by Playwright (it can't download its own browser here).

    Module scope: Playwright's sync API keeps an asyncio loop running in this thread while
    it is open, and later tests that call asyncio.run() would fail.
    """
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
