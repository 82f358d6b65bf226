"""Exercises of notebook 06_interview_prep: three PromQL drills and one quiz question per card.

The PromQL drills run on the day of history. Every interview card also gets a
multiple-choice question (``06.quiz.<card id>``): its right answer, its common
wrong answer and another card's wrong answer, in an order fixed by the card id.
"""

from __future__ import annotations

import hashlib
from typing import Any

from course_lib import cards

from .catalog_03 import DayPromQL
from .core import register
from .kinds import Predicate

H = 3600
HTTP = cards.HTTP
BUCKETS = cards.HTTP_BUCKETS
ERROR_RATIO = f'sum(rate({HTTP}{{status_code=~"5.."}}[5m])) / sum(rate({HTTP}[5m]))'

register(
    DayPromQL(
        "06.p99_all_routes",
        f"histogram_quantile(0.99, sum by (le) (rate({BUCKETS}[5m])))",
        offset=20 * H,
        nudge="rate() the _bucket series over 5m, sum by (le), then histogram_quantile(0.99, …).",
    )
)

register(
    DayPromQL(
        "06.missing_batch",
        'absent(up{job="nightly-report"})',
        offset=12 * H,
        mistakes=(
            (
                lambda q: "==" in q,
                'a job that never ran has no up series at all, so up{job="nightly-report"} '
                "== 0 returns nothing: use absent(…).",
            ),
        ),
        nudge='The job "nightly-report" never reported: which function returns 1 when a '
        "selector matches nothing?",
    )
)

register(
    DayPromQL(
        "06.burn_rate",
        f"({ERROR_RATIO}) / 0.001",
        offset=14 * H + 20 * 60,
        nudge="The 5m error ratio (5xx requests per second over all requests per second) "
        "divided by the error budget of a 99.9 % SLO, 0.001.",
    )
)


# --- one multiple-choice question per card ----------------------------------------------------

LETTERS = "abc"


def _first_sentence(text: str) -> str:
    return text.split(". ")[0].rstrip(".") + "."


def choices(card: cards.Card) -> tuple[str, ...]:
    """Return a card's three options: its answer, its wrong answer, another card's wrong answer."""
    ids = [c.id for c in cards.CARDS]
    other = cards.CARDS[(ids.index(card.id) + 7) % len(ids)]
    options = [_first_sentence(card.answer), card.wrong, other.wrong]
    shift = int(hashlib.sha256(card.id.encode()).hexdigest(), 16) % 3
    return tuple(options[shift:] + options[:shift])


def right_letter(card: cards.Card) -> str:
    """Return the letter of a card's right option."""
    return LETTERS[choices(card).index(_first_sentence(card.answer))]


def _mc_test(card: cards.Card):
    def test(answer: Any, _stack: Any) -> bool | str:
        if not isinstance(answer, str) or answer.strip().lower() not in LETTERS:
            return f"answer with one letter: {', '.join(LETTERS)}."
        picked = choices(card)[LETTERS.index(answer.strip().lower())]
        if picked == card.wrong:
            return f"that is the common wrong answer: {card.why_wrong}"
        if picked != _first_sentence(card.answer):
            return "that answers another question; reread the card."
        return True

    return test


for _card in cards.CARDS:
    register(
        Predicate(
            f"06.quiz.{_card.id}",
            solution=right_letter(_card),
            test=_mc_test(_card),
            expects='one letter, e.g. answer = "a"',
            nudge=_card.question,
        )
    )
