"""A scored interview quiz: questions drawn from the cards in the PCA exam's domain proportions.

Multiple-choice questions come from every card (``06.quiz.<card id>``), short PromQL
questions from the notebook's drills; all are graded by the exercise system. The
draw is seeded, so a seed gives the same quiz on every machine.

>>> q = draw(n=10, seed=6)
>>> len(q), sorted({x.domain for x in q}) == sorted(cards.DOMAINS)
(10, True)
>>> score = grade(q, solutions(q), stack)                         # doctest: +SKIP
>>> score.total, score.review                                      # doctest: +SKIP
(10, [])
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from course_lib import cards
from course_lib.exercises import ExerciseError, get, solution
from course_lib.exercises.catalog_06 import LETTERS, choices

__all__ = ["Question", "Score", "draw", "grade", "solutions"]

# Short PromQL questions: (exercise id, card to review on a miss, domain, prompt).
PROMQL_QUESTIONS = (
    ("06.p99_all_routes", "histogram_vs_summary", cards.PROMQL,
     "At 20:00, the p99 latency of all HTTP requests together, from the duration histogram."),
    ("06.missing_batch", "absent", cards.ALERT,
     'An expression that returns 1 because the job "nightly-report" has no up series.'),
    ("06.burn_rate", "burn_rate", cards.PROMQL,
     "At 14:20, the 5m error-budget burn rate of a 99.9 % availability SLO."),
)  # fmt: skip


@dataclass(frozen=True)
class Question:
    """One quiz question: the exercise that grades it, its card, domain and what to show."""

    exercise: str
    card: str
    domain: str
    prompt: str
    options: tuple[str, ...] = ()

    def text(self) -> str:
        """Return the question as shown to the learner."""
        if not self.options:
            return f"[{self.domain}] {self.prompt}  (answer with PromQL)"
        lines = [f"{letter}) {opt}" for letter, opt in zip(LETTERS, self.options, strict=True)]
        return f"[{self.domain}] {self.prompt}\n  " + "\n  ".join(lines)


def _pool() -> list[Question]:
    pool = [
        Question(f"06.quiz.{c.id}", c.id, c.domain, c.question, choices(c)) for c in cards.CARDS
    ]
    pool += [Question(ex, card, dom, prompt) for ex, card, dom, prompt in PROMQL_QUESTIONS]
    return pool


def _quota(n: int) -> dict[str, int]:
    """Split ``n`` questions over the domains by weight (largest remainders)."""
    exact = {d: n * w for d, w in cards.DOMAINS.items()}
    quota = {d: int(v) for d, v in exact.items()}
    for d in sorted(exact, key=lambda d: exact[d] - quota[d], reverse=True)[
        : n - sum(quota.values())
    ]:
        quota[d] += 1
    return quota


def draw(n: int = 10, seed: int = 6) -> list[Question]:
    """Draw ``n`` questions in the exam's domain proportions, in a seeded random order."""
    if not 1 <= n <= len(_pool()):
        raise ValueError(f"a quiz has 1 to {len(_pool())} questions, not {n}")
    rng = np.random.default_rng(seed)
    pool = _pool()
    picked: list[Question] = []
    for domain, k in _quota(n).items():
        candidates = [q for q in pool if q.domain == domain]
        idx = rng.choice(len(candidates), size=min(k, len(candidates)), replace=False)
        picked += [candidates[i] for i in idx]
    return [picked[i] for i in rng.permutation(len(picked))]


def solutions(questions: list[Question], stack: Any = None) -> dict[str, Any]:
    """Return the reference answer of every question, by exercise id."""
    return {q.exercise: solution(q.exercise, stack) for q in questions}


@dataclass(frozen=True)
class Score:
    """A graded quiz: points, the per-domain table, and the cards to review."""

    total: int
    out_of: int
    by_domain: pd.DataFrame
    review: list[str]
    feedback: dict[str, str]

    def __str__(self) -> str:
        review = ", ".join(self.review) or "none"
        return f"{self.total}/{self.out_of} right; cards to review: {review}"


def grade(questions: list[Question], answers: Mapping[str, Any], stack: Any) -> Score:
    """Grade ``answers`` (exercise id -> answer) with the exercise system; list cards to review."""
    rows, review, feedback = [], [], {}
    for q in questions:
        try:
            result = get(q.exercise).check(answers.get(q.exercise), stack)
            ok, feedback[q.exercise] = True, str(result)
        except ExerciseError as exc:
            ok, feedback[q.exercise] = False, str(exc)
            review.append(q.card)
        rows.append({"domain": q.domain, "right": int(ok)})
    df = pd.DataFrame(rows, columns=["domain", "right"])
    by_domain = df.groupby("domain")["right"].agg(right="sum", asked="count").reset_index()
    return Score(int(df["right"].sum()), len(questions), by_domain, review, feedback)
