"""Put the day of VrewCraft into a stack's Prometheus, once, before its live data.

``course_lib.stack.up`` calls this; nothing here needs calling by hand. The day
(``course_lib.history``) is written as OpenMetrics and turned into TSDB blocks
with ``promtool tsdb create-blocks-from openmetrics --max-block-duration=24h``
(one pass per 18 h-aligned block window instead of one per 2 h: about 4× faster).

Where the day goes: **the 24 h that end where live data begins**, so history and
live samples never share a timestamp range.

* A fresh state directory (no TSDB yet): the day ends now (on the 15 s grid),
  and its blocks are written straight into the data directory *before*
  Prometheus first starts. Prometheus 2.42 loads the blocks it finds at start,
  so there is no wait and no gap: the first live scrape follows the last
  historical one.
* A TSDB that already holds data (a state directory from before this feature,
  or a day that aged out of the 30 d retention): the day goes into the newest
  24 h with no sample at all that ends before Prometheus' in-memory head
  (found with ``count_over_time(up[1h])``). The blocks are built in a scratch
  directory and moved in while Prometheus runs; Prometheus 2.42 picks new
  block directories up on its own rescan, about once a minute counted from its
  start (``/-/reload`` does not trigger it), so ``up`` waits until the day is
  queryable.

Why the head matters: at a restart Prometheus replays its write-ahead log only
for samples newer than the newest block. A backfilled block that reaches into
the head's time range would make the next restart silently drop the live
samples before that block's end. Both placements above end at or before the
oldest head sample, so a crash or restart of Prometheus loses nothing.

The placement is recorded in ``<state dir>/history.json`` (``window(cfg)``,
``Stack.history_window()``): absolute times differ per state directory, offsets
into the day don't. A second ``up`` finds the record and adds nothing;
``make clean`` removes the state directory and with it the day.
"""

from __future__ import annotations

import errno
import json
import math
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from course_lib import history, supervisor
from course_lib.config import StackConfig
from course_lib.supervisor import StackError

__all__ = [
    "HistoryError",
    "HistoryWindow",
    "RETENTION_DAYS",
    "needs_history",
    "place_after_start",
    "place_before_start",
    "window",
]

RETENTION_DAYS = 30  # the stack's --storage.tsdb.retention.time
BLOCK_HOURS = 24  # promtool's --max-block-duration: 4x faster than the default 2 h
BLOCK_ALIGN = 18 * 3600  # where promtool cuts blocks at that setting
RECORD = "history.json"
SCRATCH = "history-tmp"
#: Room the OpenMetrics file (~255 MB) and the blocks (~3 MB) need, with margin.
SPACE_NEEDED = 400 * 1024 * 1024
PICKUP_TIMEOUT = 150.0
OFF_HINT = "Set COURSE_HISTORY=0 to start the stack without the day of history."

Progress = Callable[[str], None]


class HistoryError(StackError):
    """The day of history could not be written; the message says why and what to do."""


@dataclass(frozen=True)
class HistoryWindow:
    """Where a stack's day of history lies: Unix seconds of its first sample and its end.

    >>> day = HistoryWindow(start=1_700_000_000 - 86_400, end=1_700_000_000,
    ...                     instance="127.0.0.1:3001")
    >>> day.at(19 * 3600 + 50 * 60) - day.start               # 19:50 into the day
    71400
    """

    start: int
    end: int  # exclusive: the last sample is at end - 15
    instance: str
    series: int = 0
    samples: int = 0
    seconds: float = 0.0
    prometheus: str = ""
    version: str = ""  # history.VERSION of the day written
    blocks: tuple[str, ...] = ()  # the block directories written (names change on compaction)
    complete: bool = True  # False while the blocks are being moved in

    def at(self, offset: float) -> float:
        """Return the Unix time ``offset`` seconds into the day."""
        return self.start + offset

    def at_event(self, name: str, edge: str = "start") -> float:
        """Return the Unix time of a scripted event's start (or ``edge="end"``)."""
        e = history.event(name)
        return self.at(e.start if edge == "start" else e.end)

    def offset(self, when: float | datetime) -> float:
        """Return how many seconds into the day ``when`` (Unix seconds or a datetime) is."""
        ts = when.timestamp() if hasattr(when, "timestamp") else float(when)
        return ts - self.start

    def clock(self, when: float | datetime) -> str:
        """Return the time of day ("19:45") of ``when`` on the day's own clock."""
        return history.clock(self.offset(when))

    def datetime(self, offset: float) -> datetime:
        """Return the UTC datetime ``offset`` seconds into the day."""
        return datetime.fromtimestamp(self.at(offset), tz=UTC)

    def aged_out(self, now: float | None = None) -> bool:
        """Tell whether retention has started deleting the day."""
        now = time.time() if now is None else now
        return self.start < now - RETENTION_DAYS * 86_400


def _record_path(cfg: StackConfig) -> Path:
    return cfg.state_dir / RECORD


def _tsdb(cfg: StackConfig) -> Path:
    return cfg.data_dir / "prometheus"


def window(cfg: StackConfig) -> HistoryWindow | None:
    """Return the recorded placement of the day in this stack, or None if it has none."""
    path = _record_path(cfg)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        return HistoryWindow(**{**data, "blocks": tuple(data.get("blocks", ()))})
    except (ValueError, TypeError) as exc:
        raise HistoryError(
            f"{path} is damaged ({exc}). Delete it and run `make up` again to write a "
            "fresh day (or `make clean` to start over)."
        ) from None


def needs_history(cfg: StackConfig) -> bool:
    """Tell whether ``up`` must (re)write the day: enabled, local, and none (or aged out)."""
    if not cfg.history or cfg.external:
        return False
    day = window(cfg)
    return day is None or day.aged_out()


def _tsdb_is_fresh(cfg: StackConfig) -> bool:
    """Tell whether the TSDB holds nothing yet (no block, no write-ahead log segment)."""
    tsdb = _tsdb(cfg)
    if not tsdb.exists():
        return True
    blocks = [p for p in tsdb.iterdir() if p.is_dir() and (p / "meta.json").exists()]
    wal = tsdb / "wal"
    segments = (
        [p for p in wal.iterdir() if p.is_file() and p.stat().st_size > 0] if wal.exists() else []
    )
    return not blocks and not segments


def _check_tsdb_format(cfg: StackConfig) -> None:
    """Refuse a data directory whose blocks another Prometheus version wrote."""
    tsdb = _tsdb(cfg)
    if not tsdb.exists():
        return
    for meta in sorted(tsdb.glob("*/meta.json")):
        try:
            version = json.loads(meta.read_text()).get("version")
        except ValueError:
            version = "unreadable"
        if version != 1:
            raise HistoryError(
                f"{tsdb} holds a block ({meta.parent.name}) in format {version!r}, written by "
                "another Prometheus version than this one (block format 1). Its live data is "
                "left as it is. Point COURSE_STATE_DIR at a new directory, or `make clean` to "
                f"discard it. {OFF_HINT}"
            )


def _promtool() -> str:
    path = supervisor.find_binary(["promtool"])
    if path is None:
        raise supervisor.MissingBinaryError(
            "promtool not found; it writes the day of history into Prometheus (and ships "
            "with it). Install it with:\n    " + supervisor.install_command(["promtool"])
        )
    return path


def _disk_full(where: Path) -> HistoryError:
    free = shutil.disk_usage(where).free if where.exists() else 0
    return HistoryError(
        f"not enough disk space to write the day of history in {where}: it needs about "
        f"{SPACE_NEEDED // 2**20} MB for a moment, {free // 2**20} MB are free. Free some "
        f"space (or point COURSE_STATE_DIR at a roomier disk) and run `make up` again. "
        f"Live data was not touched. {OFF_HINT}"
    )


def _build_blocks(cfg: StackConfig, start: int, progress: Progress) -> tuple[Path, HistoryWindow]:
    """Write the day as OpenMetrics and turn it into blocks in a scratch directory."""
    promtool = _promtool()
    scratch = cfg.state_dir / SCRATCH
    shutil.rmtree(scratch, ignore_errors=True)
    (scratch / "blocks").mkdir(parents=True)
    if shutil.disk_usage(scratch).free < SPACE_NEEDED:
        shutil.rmtree(scratch, ignore_errors=True)
        raise _disk_full(cfg.state_dir)
    instance = cfg.address("service")
    t0 = time.monotonic()
    parts = _block_windows(start)
    # One promtool per block window, each started as soon as its file is written: each
    # reads its file once (a whole-day file is parsed once per window), and promtool
    # works on the first window while Python writes the second.
    argvs, procs, n_samples = [], [], 0
    try:
        for i, points in enumerate(parts):
            path = scratch / f"day-{i}.om"
            n_samples += history.write_openmetrics(path, start, instance, points)[1]
            argvs.append(
                [
                    promtool,
                    "tsdb",
                    "create-blocks-from",
                    "openmetrics",
                    f"--max-block-duration={BLOCK_HOURS}h",  # hidden from --help
                    str(path),
                    str(scratch / "blocks"),
                ]
            )
            procs.append(
                subprocess.Popen(
                    argvs[-1], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
                )
            )
    except OSError as exc:
        for proc in procs:
            supervisor.stop_child(proc)
        shutil.rmtree(scratch, ignore_errors=True)
        if exc.errno == errno.ENOSPC:
            raise _disk_full(cfg.state_dir) from None
        raise
    n_series = sum(len(f.series) for f in history.families(instance))
    outputs = [(proc.communicate(timeout=300)[0], proc.returncode) for proc in procs]
    for path in scratch.glob("day-*.om"):
        path.unlink()
    for argv, (output, code) in zip(argvs, outputs, strict=True):
        if code == 0:
            continue
        output = output.strip()[-2000:]
        shutil.rmtree(scratch, ignore_errors=True)
        if "no space left" in output.lower():
            raise _disk_full(cfg.state_dir)
        raise HistoryError(
            f"promtool could not write the day of history (exit {code}):\n{output}\n"
            f"Command: {' '.join(argv)}\nLive data was not touched. {OFF_HINT}"
        )
    day = HistoryWindow(
        start=start,
        end=start + history.DAY,
        instance=instance,
        series=n_series,
        samples=n_samples,
        seconds=round(time.monotonic() - t0, 2),
        prometheus=supervisor.binary_version(promtool),
        version=history.VERSION,
    )
    return scratch, day


def _block_windows(start: int) -> list[range]:
    """Split the day's scrapes at promtool's block boundaries (multiples of 18 h).

    With --max-block-duration=24h promtool cuts blocks at multiples of 18 h (the
    largest of Prometheus' block ranges, 2 h × 3^n, that fits in 24 h).
    """
    cut = -(-start // BLOCK_ALIGN) * BLOCK_ALIGN  # the first boundary at or after start
    k = (cut - start) // history.STEP
    return [r for r in (range(0, k), range(k, history.POINTS)) if len(r)]


def _move_in(cfg: StackConfig, scratch: Path, day: HistoryWindow) -> list[str]:
    """Move the finished blocks into the TSDB (atomic renames) and record the placement."""
    tsdb = _tsdb(cfg)
    tsdb.mkdir(parents=True, exist_ok=True)
    blocks = sorted(p.name for p in (scratch / "blocks").iterdir() if (p / "meta.json").exists())
    # Record first, then rename: a crash in between leaves a record that says which blocks
    # still have to move (``_recover``), never blocks that no record accounts for.
    _write_record(cfg, replace(day, blocks=tuple(blocks), complete=False))
    for name in blocks:
        (scratch / "blocks" / name).rename(tsdb / name)
    _write_record(cfg, replace(day, blocks=tuple(blocks), complete=True))
    shutil.rmtree(scratch, ignore_errors=True)
    return blocks


def _write_record(cfg: StackConfig, day: HistoryWindow) -> None:
    tmp = _record_path(cfg).with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(day), indent=2) + "\n")
    tmp.replace(_record_path(cfg))  # atomic: the record is old or new, never half-written


def _recover(cfg: StackConfig, progress: Progress) -> None:
    """Finish moving the blocks of a backfill that was interrupted, or forget it."""
    day = window(cfg)
    if day is None or day.complete:
        return
    tsdb, scratch = _tsdb(cfg), cfg.state_dir / SCRATCH / "blocks"
    for name in day.blocks:
        if not (tsdb / name).exists() and (scratch / name / "meta.json").exists():
            (scratch / name).rename(tsdb / name)
    if all((tsdb / name).exists() for name in day.blocks):
        _write_record(cfg, replace(day, complete=True))
        progress("history: finished moving in the blocks of an interrupted backfill")
    else:
        _record_path(cfg).unlink()
        progress("history: an interrupted backfill lost its blocks; writing the day again")
    shutil.rmtree(cfg.state_dir / SCRATCH, ignore_errors=True)


def _announce(day: HistoryWindow, progress: Progress) -> None:
    progress(
        f"history: a day of VrewCraft ({day.series} series, {day.samples:,} samples) "
        f"written in {day.seconds:.1f}s, {_fmt(day.start)} .. {_fmt(day.end)}"
    )


def _fmt(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def place_before_start(cfg: StackConfig, progress: Progress, now: float | None = None) -> bool:
    """On a fresh TSDB, write the day ending now, before Prometheus' first start.

    Returns True if the day was written (or already there), False if the TSDB
    already holds data, so the day has to wait for ``place_after_start``.
    """
    _recover(cfg, progress)
    if not needs_history(cfg):
        return True
    _check_tsdb_format(cfg)
    if not _tsdb_is_fresh(cfg):
        return False
    now = time.time() if now is None else now
    end = int(now) - int(now) % history.STEP
    progress("history: writing a day of VrewCraft into Prometheus (first start only) ...")
    scratch, day = _build_blocks(cfg, end - history.DAY, progress)
    _move_in(cfg, scratch, day)
    _announce(day, progress)
    return True


def place_after_start(cfg: StackConfig, progress: Progress) -> HistoryWindow | None:
    """On a TSDB with live data, write the day into the newest free 24 h and wait for it."""
    _recover(cfg, progress)
    if not needs_history(cfg):
        return window(cfg)
    _check_tsdb_format(cfg)
    from course_lib import prom

    url = cfg.url("prometheus")
    end = _free_day_end(url)
    if end is None:
        progress(
            "history: no 24 h free of live data in this Prometheus' retention (and before "
            "its in-memory head); the day of history is skipped this time. `make clean` "
            "gives a fresh stack with it."
        )
        return None
    progress("history: writing a day of VrewCraft before the live data already stored ...")
    scratch, day = _build_blocks(cfg, end - history.DAY, progress)
    _move_in(cfg, scratch, day)
    _announce(day, progress)
    progress(
        "history: waiting for Prometheus to load the new blocks (its rescan runs every minute)"
    )
    query = f'count_over_time(up{{job="{history.JOB}",instance="{day.instance}"}}[1d])'
    t0 = time.monotonic()
    try:
        prom.wait_for(
            url,
            query,
            lambda df: not df.empty and df["value"].iloc[0] >= history.POINTS,
            timeout=PICKUP_TIMEOUT,
            interval=1.0,
            time=day.end - 1,
        )
    except supervisor.NotReadyError:
        raise HistoryError(
            f"Prometheus at {url} did not load the day's blocks within "
            f"{PICKUP_TIMEOUT:.0f}s; they are in {_tsdb(cfg)} and will load at its next "
            "start: `make down && make up`."
        ) from None
    progress(f"history: loaded by Prometheus after {time.monotonic() - t0:.0f}s")
    return day


def _free_day_end(url: str, now: float | None = None) -> int | None:
    """Return the end of the newest 24 h with no sample, before the head; None if none."""
    from course_lib import prom

    now = time.time() if now is None else now
    hour = 3600
    head_min = prom.query(url, "prometheus_tsdb_head_min_time")
    if head_min.empty:
        return None
    head_start = float(head_min["value"].iloc[0]) / 1000.0
    horizon = now - (RETENTION_DAYS - 1) * 86_400  # keep the day at least a day
    # Hours with at least one sample of any target; a gap is a run of empty hours.
    last = math.floor(min(head_start, now) / hour) * hour
    first = math.ceil(horizon / hour) * hour
    if last - first < history.DAY:
        return None
    busy = prom.query_range(url, "count_over_time(up[1h])", first + hour, last, step=hour)
    busy_ends = set(busy["timestamp"].map(lambda t: int(t.timestamp())))
    # Walk back from the head: the newest end such that the 24 h before it are empty.
    end = last
    while end - history.DAY >= first:
        hours = range(end - history.DAY + hour, end + 1, hour)
        clash = [h for h in hours if h in busy_ends]
        if not clash:
            return end - end % history.STEP
        end = min(clash) - hour
    return None
