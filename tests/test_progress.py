"""Learner progress: check() records attempts; a broken progress file never breaks a check."""

from __future__ import annotations

import json
import os

import pytest

from course_lib import progress
from course_lib.__main__ import main
from course_lib.exercises import BLANK, ExerciseFailed, ExerciseNotAnswered, check, solution

IDS = ["01.metric_types", "01.up_query", "02.ffmpeg_job"]


@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_STATE_DIR", str(tmp_path))
    return tmp_path


def test_check_records_passes_and_failures_but_not_blanks(state_dir):
    right = solution("01.metric_types")
    with pytest.raises(ExerciseNotAnswered):
        check("01.metric_types", BLANK)
    assert progress.attempts() == []  # nothing tried yet
    with pytest.raises(ExerciseFailed):
        check("01.metric_types", {**right, "vrewcraft_ffmpeg_jobs_active": "counter"})
    assert check("01.metric_types", right).ok
    seen = progress.attempts()
    assert [(a.exercise, a.ok) for a in seen] == [("01.metric_types", False)] + [
        ("01.metric_types", True)
    ]
    assert seen[0].at <= seen[1].at and (state_dir / "progress.jsonl").exists()


def test_table_counts_done_tried_and_not_started_per_notebook(state_dir):
    progress.record("01.metric_types", False)
    progress.record("01.metric_types", True)  # passed later: done, not tried
    progress.record("01.up_query", False)
    df = progress.table(exercise_ids=IDS)
    assert df.loc["01", ["exercises", "done", "tried", "not started"]].tolist() == [2, 1, 1, 0]
    assert df.loc["01", "status"] == "tried"
    assert df.loc["01", "file"] == "01_prometheus_basics.ipynb"
    assert df.loc["02", "status"] == "not started" and df.loc["02", "not started"] == 1
    progress.record("01.up_query", True)
    assert progress.table(exercise_ids=IDS).loc["01", "status"] == "done"


def test_every_registered_exercise_appears_in_the_table(state_dir):
    from course_lib.exercises import REGISTRY

    df = progress.table()
    assert df["exercises"].sum() == len(REGISTRY)
    assert (df["status"] == "not started").all()


@pytest.mark.parametrize(
    "garbage",
    [
        b"{not json\n",
        b"\xff\xfe\x00binary\n",
        b'{"exercise": "01.up_query"}\n',  # a field missing
        b'{"exercise": "01.up_query", "ok": true, "at": "yesterday"}\n',
        b"[1, 2]\n",
        b'{"exercise": "01.up_query", "ok": tr',  # torn last line
    ],
)
def test_corrupt_lines_are_skipped_and_checks_still_record(state_dir, garbage):
    log = state_dir / "progress.jsonl"
    good = json.dumps({"exercise": "01.metric_types", "ok": True, "at": 1.0}).encode()
    log.write_bytes(good + b"\n" + garbage)
    assert [a.exercise for a in progress.attempts()] == ["01.metric_types"]
    assert check("01.metric_types", solution("01.metric_types")).ok
    assert [a.ok for a in progress.attempts()] == [True, True]  # the new line survived


def test_an_unwritable_progress_file_warns_but_the_check_passes(state_dir):
    (state_dir / "progress.jsonl").mkdir()  # a directory where the file should be
    with pytest.warns(UserWarning, match="progress not saved"):
        assert check("01.metric_types", solution("01.metric_types")).ok
    assert progress.attempts() == []
    assert progress.table(exercise_ids=IDS).loc["01", "status"] == "not started"


def test_a_missing_state_dir_is_created(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_STATE_DIR", str(tmp_path / "new" / "state"))
    assert check("01.metric_types", solution("01.metric_types")).ok
    assert [a.ok for a in progress.attempts()] == [True]


def test_cli_prints_the_table_and_resets(state_dir, capsys):
    progress.record("01.metric_types", True)
    assert main(["progress"]) == 0
    out = capsys.readouterr().out
    assert "01_prometheus_basics.ipynb" in out and "tried" in out.splitlines()[0]
    row = next(line for line in out.splitlines() if line.startswith("01"))
    assert "tried" in row  # one of four done
    assert main(["progress", "--reset"]) == 0
    assert "progress reset" in capsys.readouterr().out
    assert not (state_dir / "progress.jsonl").exists()
    assert main(["progress", "--reset"]) == 0
    assert "no progress recorded yet" in capsys.readouterr().out


def test_many_appends_keep_whole_lines(state_dir):
    log = state_dir / "progress.jsonl"
    for _ in range(50):
        progress.record("01.up_query", True, path=log)
    lines = log.read_text().splitlines()
    assert len(lines) == 50 and all(json.loads(line)["ok"] for line in lines)
    assert os.path.getsize(log) == sum(len(line) + 1 for line in lines)
