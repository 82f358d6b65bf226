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
