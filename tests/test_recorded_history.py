"""The recording rules backfilled over the day of history: placed once, loaded, clear errors."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from course_lib import backfill, recorded_history
from course_lib.config import StackConfig, repo_root


@pytest.fixture
def bare_cfg(tmp_path):
    """A state directory with a day of history on record and nothing listening."""
    cfg = StackConfig(
        state_dir=tmp_path / "state",
        ports={"prometheus": 1, "service": 2},
        monitoring_dir=repo_root() / "monitoring",
    )
    cfg.state_dir.mkdir(parents=True)
    (cfg.data_dir / "prometheus").mkdir(parents=True)
    return cfg


def test_no_day_of_history_means_nothing_to_backfill(bare_cfg):
    assert recorded_history.place(bare_cfg) is None
    with pytest.raises(recorded_history.RecordedHistoryError, match="make clean"):
        recorded_history.wait_until_loaded(bare_cfg, timeout=0)


@pytest.mark.process
def test_a_failing_promtool_says_so_and_touches_nothing(bare_cfg):
    day = backfill.HistoryWindow(start=1_700_000_000, end=1_700_086_400, instance="x:1")
    (bare_cfg.state_dir / backfill.RECORD).write_text(json.dumps(asdict(day)))
    rules = bare_cfg.config_dir / recorded_history.RULES_FILE
    rules.parent.mkdir(parents=True)
    rules.write_text(
        (repo_root() / "monitoring" / "prometheus" / "rules" / "recording.yml").read_text()
    )
    with pytest.raises(recorded_history.RecordedHistoryError, match="promtool could not"):
        recorded_history.place(bare_cfg)  # Prometheus "at port 1" does not answer
    assert recorded_history.placed(bare_cfg) is None
    assert list((bare_cfg.data_dir / "prometheus").iterdir()) == []


@pytest.mark.stack
def test_the_test_stack_serves_the_recorded_day(stack):
    record = recorded_history.wait_until_loaded(stack.config)
    day = stack.history_window()
    assert day.start <= record["start"] < record["end"] <= day.end
    assert recorded_history.place(stack.config) == record  # once per state directory
    # One point a minute across the day, for every recorded series.
    count = stack.query(f"count_over_time({recorded_history.PROBE}[1h] @ {day.at(12 * 3600)})")
    assert not count.empty and set(count["value"]) == {60.0}, count
