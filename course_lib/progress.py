"""Learner progress: every ``check()`` is recorded, and a table shows what is done.

Each check appends one JSON line (exercise id, passed or not, when) to
``progress.jsonl`` in the stack's state directory. Appending never rewrites
old lines, a line that can't be read is skipped, and a file that can't be
written only costs a warning: progress never breaks a check.

>>> import tempfile, pathlib
>>> log = pathlib.Path(tempfile.mkdtemp()) / "progress.jsonl"
>>> record("01.up_query", False, path=log); record("01.up_query", True, path=log)
>>> table(path=log).loc["01", "status"]
'tried'
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from course_lib.config import StackConfig, repo_root

__all__ = ["Attempt", "attempts", "default_path", "format_table", "record", "reset", "table"]

FILE_NAME = "progress.jsonl"


@dataclass(frozen=True)
class Attempt:
    """One check of one exercise: which, whether it passed, when (Unix seconds)."""

    exercise: str
    ok: bool
    at: float


def default_path() -> Path:
    """Return the progress file of the stack configured by the environment."""
    return StackConfig.from_env().state_dir / FILE_NAME


def record(exercise: str, ok: bool, path: Path | None = None) -> None:
    """Append one attempt; on any file problem warn and carry on (a check must not fail)."""
    line = json.dumps({"exercise": exercise, "ok": bool(ok), "at": round(time.time(), 3)})
    try:
        path = path or default_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        # One write of one line in append mode: concurrent kernels don't interleave lines.
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            # After a torn last line (a kernel killed mid-write), start on a fresh line.
            torn = size > 0 and os.pread(fd, 1, size - 1) != b"\n"
            os.write(fd, (("\n" if torn else "") + line + "\n").encode())
        finally:
            os.close(fd)
    except (OSError, ValueError) as exc:
        warnings.warn(f"progress not saved ({exc}); the check itself is unaffected", stacklevel=3)


def attempts(path: Path | None = None) -> list[Attempt]:
    """Return every readable attempt in the file, oldest first; skip lines that aren't one."""
    path = path or default_path()
    try:
        raw = path.read_bytes()
    except OSError:
        return []
    found = []
    for line in raw.decode("utf-8", errors="replace").splitlines():
        try:
            item = json.loads(line)
            found.append(Attempt(str(item["exercise"]), bool(item["ok"]), float(item["at"])))
        except (ValueError, KeyError, TypeError):
            continue  # a torn or hand-edited line: skip it, keep the rest
    return found


def reset(path: Path | None = None) -> bool:
    """Forget all progress; return True if there was a file to remove."""
    path = path or default_path()
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def _notebooks() -> dict[str, str]:
    """Map a notebook number ("01") to its file name, for every notebook the course ships."""
    return {p.name[:2]: p.name for p in sorted((repo_root() / "notebooks").glob("[0-9][0-9]_*"))}


def table(path: Path | None = None, exercise_ids: Iterable[str] | None = None) -> pd.DataFrame:
    """Return one row per notebook: exercises done, tried (never passed), not started, status.

    ``status`` is ``done`` (every exercise passed), ``tried`` (some attempt) or
    ``not started``.
    """
    if exercise_ids is None:
        from course_lib.exercises import REGISTRY

        exercise_ids = REGISTRY
    passed: set[str] = set()
    tried: set[str] = set()
    last: dict[str, float] = {}
    for attempt in attempts(path):
        (passed if attempt.ok else tried).add(attempt.exercise)
        last[attempt.exercise] = max(last.get(attempt.exercise, 0.0), attempt.at)
    by_notebook: dict[str, list[str]] = {}
    for exercise_id in sorted(exercise_ids):
        by_notebook.setdefault(exercise_id.split(".", 1)[0], []).append(exercise_id)
    names = _notebooks()
    rows = []
    for number, ids in sorted(by_notebook.items()):
        done = [i for i in ids if i in passed]
        attempted = [i for i in ids if i in tried and i not in passed]
        status = "done" if len(done) == len(ids) else "tried" if done or attempted else ""
        when = max((last[i] for i in ids if i in last), default=None)
        rows.append(
            {
                "notebook": number,
                "file": names.get(number, "?"),
                "exercises": len(ids),
                "done": len(done),
                "tried": len(attempted),
                "not started": len(ids) - len(done) - len(attempted),
                "status": status or "not started",
                "last check": pd.to_datetime(when, unit="s", utc=True) if when else pd.NaT,
            }
        )
    return pd.DataFrame(rows).set_index("notebook")


def format_table(df: pd.DataFrame) -> str:
    """Return the progress table as plain text for the terminal."""
    stamps = df["last check"].map(lambda t: "" if pd.isna(t) else f"{t:%Y-%m-%d %H:%M}")
    return df.assign(**{"last check": stamps}).to_string()
