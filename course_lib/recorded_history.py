"""The recording rules' output over the day of history, as if the rules had run all day.

Recording rules only record from the moment Prometheus loads them; the day of
history (``course_lib.backfill``) predates them. ``promtool tsdb
create-blocks-from rules`` evaluates each rule over the day against the running
Prometheus (one range query per rule and 2 h block, at ``EVAL_INTERVAL``) and
writes the results as TSDB blocks, which are moved into the data directory.
Prometheus picks new blocks up on its own rescan, about once a minute, so
``place`` returns without waiting; ``wait_until_loaded`` waits when a notebook
needs them.

The blocks end before the live head begins (the day's end), so a restart of
Prometheus never drops live samples because of them. Done once per rule and
state directory; ``<state dir>/recorded-history.json`` remembers which rules have
their day (a rule added later gets its own backfill at the next ``up``).

``course_lib.stack.up`` calls ``place(cfg, progress)``, which prints e.g.
"recorded history: 6 recording rules over the day in 8.2s (74 blocks, eval every 60s)".
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from course_lib import backfill, supervisor
from course_lib.config import StackConfig
from course_lib.supervisor import StackError

__all__ = ["EVAL_INTERVAL", "RECORD", "RULES_FILE", "place", "placed", "wait_until_loaded"]

#: The rules file whose output is backfilled (rendered copy under the config dir).
RULES_FILE = Path("prometheus") / "rules" / "recording.yml"
#: Resolution of the recorded history: one point a minute is what a 24 h panel reads.
EVAL_INTERVAL = 60
RECORD = "recorded-history.json"
SCRATCH = "recorded-history-tmp"
#: A recorded series the check reads back once the blocks are loaded.
PROBE = "job_route:vrewcraft_http_requests:rate5m"

Progress = Callable[[str], None]


class RecordedHistoryError(StackError):
    """The recording rules could not be backfilled; the message says why."""


def placed(cfg: StackConfig) -> dict | None:
    """Return what ``place`` recorded for this state directory, or None."""
    try:
        return json.loads((cfg.state_dir / RECORD).read_text())
    except (OSError, ValueError):
        return None


def place(cfg: StackConfig, progress: Progress = lambda _: None) -> dict | None:
    """Backfill the recording rules over the day of history (once); return the record.

    Returns None when the stack has no day of history or no recording rules.
    """
    day = backfill.window(cfg)
    rules_path = cfg.config_dir / RULES_FILE
    if day is None or not rules_path.exists():
        return None
    done = placed(cfg)
    groups = yaml.safe_load(rules_path.read_text()).get("groups", [])
    recorded_before = set(done["rules"]) if done else set()
    # A rule added since the last backfill gets its day too; the others keep theirs.
    for group in groups:
        group["rules"] = [
            r
            for r in group.get("rules", [])
            if "record" in r and r["record"] not in recorded_before
        ]
    groups = [g for g in groups if g["rules"]]
    if not groups:
        return done
    names = [r["record"] for g in groups for r in g["rules"]]
    promtool = supervisor.find_binary(["promtool"])
    if promtool is None:
        raise supervisor.MissingBinaryError(
            "promtool not found. Install it with:\n    " + supervisor.install_command(["promtool"])
        )
    scratch = cfg.state_dir / SCRATCH
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    rules = scratch / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    # Leave the last minutes out: a rule at the day's very end could read live samples.
    start, end = day.start + 5 * 60, day.end - 5 * 60
    argv = [
        promtool,
        "tsdb",
        "create-blocks-from",
        "rules",
        f"--start={start}",
        f"--end={end}",
        f"--url={cfg.url('prometheus')}",
        f"--eval-interval={EVAL_INTERVAL}s",
        f"--output-dir={scratch}",
        "--quiet",
        str(rules),
    ]
    t0 = time.monotonic()
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=scratch)
    if out.returncode != 0:
        shutil.rmtree(scratch, ignore_errors=True)
        raise RecordedHistoryError(
            f"promtool could not backfill the recording rules (exit {out.returncode}):\n"
            f"{(out.stdout + out.stderr).strip()[-2000:]}\nCommand: {' '.join(argv)}\n"
            "Live data and the day of history were not touched."
        )
    tsdb = cfg.data_dir / "prometheus"
    blocks = sorted(p.name for p in scratch.iterdir() if (p / "meta.json").exists())
    if not blocks:
        shutil.rmtree(scratch, ignore_errors=True)
        raise RecordedHistoryError(
            f"promtool wrote no blocks for {', '.join(names)} over the day of history: does "
            f"the day hold the series they read? Command: {' '.join(argv)}"
        )
    for name in blocks:
        (scratch / name).rename(tsdb / name)  # same filesystem: atomic
    shutil.rmtree(scratch, ignore_errors=True)
    record = {
        "start": start,
        "end": end,
        "eval_interval": EVAL_INTERVAL,
        "rules": sorted(recorded_before | set(names)),
        "blocks": len(blocks) + (done["blocks"] if done else 0),
        "seconds": round(time.monotonic() - t0, 2),
        "moved_at": time.time(),
    }
    (cfg.state_dir / RECORD).write_text(json.dumps(record, indent=2) + "\n")
    progress(
        f"recorded history: {len(names)} recording rules over the day in {record['seconds']:.1f}s "
        f"({len(blocks)} blocks, eval every {EVAL_INTERVAL}s); Prometheus loads them within "
        "a minute"
    )
    return record


def wait_until_loaded(cfg: StackConfig, timeout: float = 90.0) -> dict:
    """Wait until Prometheus serves the recorded history (its block rescan: about a minute)."""
    from course_lib import prom

    record = placed(cfg)
    if record is None:
        raise RecordedHistoryError(
            "this stack has no recorded history: it has no day of history, or was started "
            "before recording rules existed. `make clean` then `make lab` writes both."
        )
    names = "|".join(record.get("rules", [PROBE]))
    at = record["end"]
    probe = f'count by (__name__) (last_over_time({{__name__=~"{names}"}}[24h] @ {at}))'
    wanted = len(record.get("rules", [PROBE]))
    url = cfg.url("prometheus")
    deadline = time.monotonic() + timeout
    while len(prom.query(url, probe)) < wanted:
        if time.monotonic() >= deadline:
            raise RecordedHistoryError(
                f"Prometheus has not loaded the recorded history within {timeout:.0f}s "
                f"(blocks moved in at {time.ctime(record['moved_at'])}); see "
                "`python -m course_lib logs prometheus`."
            )
        time.sleep(1.0)
    return record
