"""Interview cards: the catalog, the exports (Anki, CSV, Markdown), the CLI, the quiz."""

from __future__ import annotations

import csv
import re
import sqlite3
import zipfile

import pytest

from course_lib import cards, quiz
from course_lib.__main__ import main
from course_lib.exercises import ExerciseFailed, get, solution
from course_lib.exercises.catalog_06 import LETTERS

HANGUL = re.compile(r"[\uac00-\ud7a3]")


def test_catalog_has_the_seed_ten_and_fifteen_more_in_every_domain():
    assert sum(c.from_seed for c in cards.CARDS) == 10
    assert len(cards.CARDS) - 10 >= 15
    assert len({c.id for c in cards.CARDS}) == len(cards.CARDS)
    assert {c.domain for c in cards.CARDS} == set(cards.DOMAINS)
    assert sum(cards.DOMAINS.values()) == pytest.approx(1.0)
    for c in cards.CARDS:
        for name in ("question", "answer", "wrong", "why_wrong", "claim"):
            assert getattr(c, name).strip(), f"{c.id}: empty {name}"
        assert HANGUL.search(c.korean), f"{c.id}: no Korean term"
        assert c.wrong not in c.answer, f"{c.id}: the wrong answer is part of the answer"


def test_unknown_card_names_the_known_ones():
    with pytest.raises(KeyError, match="counter_vs_gauge"):
        cards.card("counter_vs_guage")


def test_cli_writes_an_anki_deck_holding_every_card(tmp_path, capsys):
    out = tmp_path / "out.apkg"
    assert main(["cards", "--anki", str(out)]) == 0
    assert f"wrote {len(cards.CARDS)} cards" in capsys.readouterr().out
    with zipfile.ZipFile(out) as apkg:
        (tmp_path / "collection.anki2").write_bytes(apkg.read("collection.anki2"))
    db = sqlite3.connect(tmp_path / "collection.anki2")
    try:
        notes = [row[0].split("\x1f") for row in db.execute("select flds from notes")]
        card_rows = db.execute("select count(*) from cards").fetchone()[0]
    finally:
        db.close()
    assert sorted(fields[-1] for fields in notes) == sorted(c.id for c in cards.CARDS)
    by_id = {fields[-1]: fields for fields in notes}
    for c in cards.CARDS:
        assert by_id[c.id][0] == c.question and by_id[c.id][3] == c.korean
    assert card_rows == len(cards.CARDS)


def test_cli_writes_csv_and_markdown(tmp_path):
    assert (
        main(["cards", "--csv", str(tmp_path / "c.csv"), "--markdown", str(tmp_path / "c.md")]) == 0
    )
    with open(tmp_path / "c.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == [c.id for c in cards.CARDS]
    assert rows[0]["korean"] == cards.CARDS[0].korean
    text = (tmp_path / "c.md").read_text(encoding="utf-8")
    assert all(c.question in text and c.why_wrong in text for c in cards.CARDS)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["cards"], "say where to write"),
        (["cards", "--anki", "/no/such/folder/x.apkg"], "doesn't exist"),
        (["cards", "--csv", "cards.txt"], "should end in .csv"),
    ],
)
def test_cli_explains_bad_arguments(argv, message, capsys):
    assert main(argv) == 1
    assert message in capsys.readouterr().err


def test_quiz_draw_is_seeded_and_follows_the_domain_weights():
    questions = quiz.draw(n=10, seed=6)
    assert [q.exercise for q in questions] == [q.exercise for q in quiz.draw(n=10, seed=6)]
    assert [q.exercise for q in questions] != [q.exercise for q in quiz.draw(n=10, seed=7)]
    counts = {d: sum(q.domain == d for q in questions) for d in cards.DOMAINS}
    assert counts == {d: round(10 * w) for d, w in cards.DOMAINS.items()}
    for q in questions:
        get(q.exercise)  # every question is graded by a registered exercise
    with pytest.raises(ValueError, match="1 to"):
        quiz.draw(n=0)


def test_multiple_choice_rejects_the_common_wrong_answer_with_its_reason():
    for c in cards.CARDS:
        exercise = get(f"06.quiz.{c.id}")
        options = quiz._pool()[[q.card for q in quiz._pool()].index(c.id)].options
        right = solution(f"06.quiz.{c.id}")
        assert exercise.check(right).ok and exercise.check(right.upper()).ok
        trap = LETTERS[options.index(c.wrong)]
        with pytest.raises(ExerciseFailed, match=re.escape(c.why_wrong[:30])):
            exercise.check(trap)
        with pytest.raises(ExerciseFailed, match="one letter"):
            exercise.check("d")


def test_grade_scores_by_domain_and_lists_cards_to_review():
    questions = [q for q in quiz.draw(n=10, seed=6) if q.options]
    answers = quiz.solutions(questions)
    first, second = questions[0], questions[1]
    answers[first.exercise] = LETTERS[first.options.index(cards.card(first.card).wrong)]
    answers[second.exercise] = None  # unanswered counts as a miss
    score = quiz.grade(questions, answers, None)
    assert score.total == len(questions) - 2 and score.review == [first.card, second.card]
    assert score.by_domain["asked"].sum() == len(questions)
    assert score.by_domain["right"].sum() == score.total


@pytest.mark.stack
@pytest.mark.parametrize(
    ("exercise", "wrong", "hint"),
    [
        (
            "06.p99_all_routes",
            "avg(histogram_quantile(0.99, sum by (le, route) "
            "(rate(vrewcraft_http_request_duration_seconds_bucket[5m]))))",
            "not a quantile",
        ),
        ("06.missing_batch", 'up{job="nightly-report"} == 0', "absent"),
    ],
)
def test_drills_reject_common_wrong_answers(stack, exercise, wrong, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        get(exercise).check(wrong, stack)


@pytest.mark.stack
@pytest.mark.parametrize(
    ("exercise", "other_spelling"),
    [
        (
            "06.p99_all_routes",
            "histogram_quantile(0.99, "
            "sum(rate(vrewcraft_http_request_duration_seconds_bucket[5m])) by (le))",
        ),
        ("06.missing_batch", 'absent(up{job="nightly-report", instance=~".*"})'),
        (
            "06.burn_rate",
            'sum(rate(vrewcraft_http_requests_total{status_code=~"5.."}[5m])) * 1000 '
            "/ sum(rate(vrewcraft_http_requests_total[5m]))",
        ),
    ],
)
def test_drills_accept_answers_written_another_way(stack, exercise, other_spelling):
    assert get(exercise).check(other_spelling, stack).ok


@pytest.mark.stack
def test_burn_rate_drill_rejects_the_bare_error_ratio(stack):
    bare = (
        'sum(rate(vrewcraft_http_requests_total{status_code=~"5.."}[5m])) '
        "/ sum(rate(vrewcraft_http_requests_total[5m]))"
    )
    with pytest.raises(ExerciseFailed):
        get("06.burn_rate").check(bare, stack)
