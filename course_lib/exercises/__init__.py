"""Exercises with automatic checks: the learner fills in BLANK, ``check()`` says ✅ or why not.

Notebook usage (the parameters cell sets ``SOLUTIONS = False``; the test
suite runs with ``SOLUTIONS = True`` so every reference answer is checked)::

    from course_lib.exercises import BLANK, check, solution
    answer = BLANK                          # ✍️ your PromQL here
    if SOLUTIONS: answer = solution("01.up_query")
    check("01.up_query", answer, stack)     # ✅ 01.up_query: right — 1 series, …

Adding an exercise is one ``register(...)`` call in the notebook's catalog
module (``catalog_01.py``, ``catalog_02.py``, …)::

    register(PromQL("01.first_query", 'up{job="prometheus"}',
                    nudge="The metric is called up; filter it by job."))

Kinds: PromQL (answer evaluated next to the reference on the live Prometheus),
Number (a value read off the stack), MetricDefinition (a prometheus_client
metric object), AlertRule (YAML checked by promtool), Predicate (anything else).
"""

# Importing the catalogs registers their exercises (plain data, no I/O).
from . import (  # noqa: F401
    catalog_01,
    catalog_02,
    catalog_03,
    catalog_04,
    catalog_05,
    catalog_06,
    catalog_07,
)
from .core import (
    BLANK,
    REGISTRY,
    CheckResult,
    Exercise,
    ExerciseError,
    ExerciseFailed,
    ExerciseNotAnswered,
    ExerciseSetupError,
    check,
    get,
    register,
    solution,
)
from .kinds import AlertRule, MetricDefinition, Number, Predicate, PromQL

__all__ = [
    "BLANK",
    "REGISTRY",
    "AlertRule",
    "CheckResult",
    "Exercise",
    "ExerciseError",
    "ExerciseFailed",
    "ExerciseNotAnswered",
    "ExerciseSetupError",
    "MetricDefinition",
    "Number",
    "Predicate",
    "PromQL",
    "check",
    "get",
    "register",
    "solution",
]
