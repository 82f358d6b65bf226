"""Test isolation for the whole suite: the tests in tests/ and the doctests in course_lib/.

The environment is set before any test runs, so notebook kernels started by
papermill inherit it and reach the same isolated stack, never a learner's
`make lab` stack on the default ports. A doctest that uses the name ``stack``
gets that stack, and the ``stack`` marker (the fast tier leaves it out).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from _pytest.doctest import DoctestItem

REPO = Path(__file__).resolve().parent
TEST_PORT_OFFSET = os.environ.get("COURSE_TEST_PORT_OFFSET", "10000")


def pytest_configure(config):
    os.environ["COURSE_STATE_DIR"] = str(REPO / ".course-test")
    os.environ["COURSE_PORT_OFFSET"] = TEST_PORT_OFFSET
    # Figures carry an offline HTML/JS copy too, so executed notebooks export with them.
    os.environ["PLOTLY_RENDERER"] = "plotly_mimetype+notebook"
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


# A doctest gets a marker when its examples use one of these names (see `make test-fast`).
DOCTEST_MARKERS = {
    "stack": r"\bstack\b",
    "ffmpeg": r"\b(make_app|rendered_samples|extract_thumbnail)\(",  # samples are rendered
    "process": r"\bAlertRule\(",  # promtool checks the rule
}


def pytest_collection_modifyitems(items):
    for item in items:
        if isinstance(item, DoctestItem) and item.dtest is not None:
            source = "\n".join(example.source for example in item.dtest.examples)
            for marker, pattern in DOCTEST_MARKERS.items():
                if re.search(pattern, source):
                    item.add_marker(getattr(pytest.mark, marker))
        elif "stack" in getattr(item, "fixturenames", ()):
            # A test that forgot its marker must not slip into the fast tier.
            item.add_marker(pytest.mark.stack)


@pytest.fixture(scope="session")
def stack():
    """Start (or reuse) the isolated test stack once per session; stop it at the end."""
    from course_lib import stack as stack_mod

    running = stack_mod.ensure_running(progress=lambda msg: print(f"[test stack] {msg}"))
    yield running
    stack_mod.down(running.config)


@pytest.fixture(autouse=True)
def _stack_for_doctests(request, doctest_namespace):
    """Give a doctest that uses the name ``stack`` the isolated test stack."""
    if isinstance(request.node, DoctestItem) and request.node.get_closest_marker("stack"):
        doctest_namespace["stack"] = request.getfixturevalue("stack")
