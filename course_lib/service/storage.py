"""Metadata in SQLite behind a small, real connection pool.

The pool is what ``vrewcraft_db_pool_connections{state}`` reports: connections are
opened lazily up to ``size``; ``active`` ones are checked out, ``idle`` ones wait in
the pool, and ``total = idle + active``. Queries run in a worker thread
(``asyncio.to_thread``) so a slow disk never blocks the event loop.

>>> import tempfile
>>> store = VideoStore(Path(tempfile.mkdtemp()) / "db.sqlite3", pool_size=2)
>>> store.pool.stats()  # the connection that created the schema, back in the pool
{'idle': 1, 'active': 0, 'total': 1}
>>> store.close()
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS videos (
    id          TEXT PRIMARY KEY,
    filename    TEXT NOT NULL,
    path        TEXT NOT NULL,      -- relative to the data directory
    source      TEXT NOT NULL,      -- sample, upload or trim
    size_bytes  INTEGER NOT NULL,
    duration    REAL NOT NULL,
    width       INTEGER NOT NULL,
    height      INTEGER NOT NULL,
    codec       TEXT NOT NULL,
    created_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id              TEXT PRIMARY KEY,
    video_id        TEXT NOT NULL,
    edit_type       TEXT NOT NULL,
    start           REAL NOT NULL,
    "end"           REAL NOT NULL,
    status          TEXT NOT NULL,  -- queued, running, succeeded, failed
    progress        REAL NOT NULL,
    error           TEXT,
    output_video_id TEXT,
    created_at      REAL NOT NULL,
    finished_at     REAL
);
"""


class PoolClosed(RuntimeError):
    """Raised when a connection is requested from a closed pool."""


class SQLitePool:
    """A bounded pool of sqlite3 connections shared by worker threads.

    >>> pool = SQLitePool(":memory:", size=1)
    >>> with pool.connection() as conn:
    ...     conn.execute("select 1").fetchone()[0], pool.stats()["active"]
    (1, 1)
    >>> pool.stats()
    {'idle': 1, 'active': 0, 'total': 1}
    """

    def __init__(self, path: str | Path, size: int = 4, timeout: float = 10.0) -> None:
        self.path = str(path)
        self.size = size
        self.timeout = timeout
        self._idle: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue()
        self._lock = threading.Lock()
        self._total = 0
        self._active = 0
        self._closed = False

    def _open(self) -> sqlite3.Connection:
        """Open one connection configured for concurrent readers and one writer."""
        conn = sqlite3.connect(self.path, timeout=self.timeout, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        # WAL lets readers proceed while a writer commits; busy_timeout waits for locks.
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """Check a connection out for the duration of the block; commit or roll back."""
        conn = self._acquire()
        try:
            with conn:  # commits on success, rolls back on exception
                yield conn
        finally:
            self._release(conn)

    def _acquire(self) -> sqlite3.Connection:
        """Return an idle connection, open a new one, or wait for one to come back."""
        with self._lock:
            if self._closed:
                raise PoolClosed("the database pool is closed")
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                conn = None
                if self._total < self.size:
                    self._total += 1
                    opening = True
                else:
                    opening = False
            if conn is not None:
                self._active += 1
                return conn
        if opening:
            try:
                conn = self._open()
            except BaseException:
                with self._lock:
                    self._total -= 1
                raise
        else:
            try:
                conn = self._idle.get(timeout=self.timeout)
            except queue.Empty as exc:
                raise TimeoutError("no database connection free within the timeout") from exc
        with self._lock:
            self._active += 1
        return conn

    def _release(self, conn: sqlite3.Connection) -> None:
        """Put a connection back, or close it if the pool was closed meanwhile."""
        with self._lock:
            self._active -= 1
            if self._closed:
                self._total -= 1
                conn.close()
                return
        self._idle.put(conn)

    def stats(self) -> dict[str, int]:
        """Return the idle/active/total connection counts."""
        with self._lock:
            return {
                "idle": self._total - self._active,
                "active": self._active,
                "total": self._total,
            }

    def close(self) -> None:
        """Close idle connections now and checked-out ones when they come back."""
        with self._lock:
            self._closed = True
            while True:
                try:
                    conn = self._idle.get_nowait()
                except queue.Empty:
                    break
                conn.close()
                self._total -= 1


@dataclass
class Video:
    """One stored video (a row of ``videos``)."""

    id: str
    filename: str
    path: str
    source: str
    size_bytes: int
    duration: float
    width: int
    height: int
    codec: str
    created_at: float

    def public(self) -> dict[str, Any]:
        """Return the JSON shape served by the API (no file system path)."""
        data = asdict(self)
        del data["path"]
        return data


@dataclass
class Job:
    """One edit job (a row of ``jobs``)."""

    id: str
    video_id: str
    edit_type: str
    start: float
    end: float
    status: str
    progress: float
    error: str | None
    output_video_id: str | None
    created_at: float
    finished_at: float | None

    def public(self) -> dict[str, Any]:
        """Return the JSON shape served by the API."""
        return asdict(self)


class VideoStore:
    """Videos and jobs in SQLite; async methods run the query in a worker thread."""

    def __init__(self, path: Path, pool_size: int = 4, cached_videos: int = 1024) -> None:
        self.pool = SQLitePool(path, size=pool_size)
        with self.pool.connection() as conn:
            conn.executescript(SCHEMA)
        # Video rows never change once written, so lookups (one per thumbnail request)
        # are served from memory after the first; saves a thread hop per request.
        self._videos: dict[str, Video] = {}
        self._cached_videos = cached_videos

    def close(self) -> None:
        """Close the pool."""
        self.pool.close()

    async def _run(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        """Run one statement in a worker thread and return its rows."""

        def work() -> list[sqlite3.Row]:
            with self.pool.connection() as conn:
                return conn.execute(sql, params).fetchall()

        return await asyncio.to_thread(work)

    async def add_video(self, video: Video) -> None:
        """Insert a video row."""
        data = asdict(video)
        cols = ", ".join(data)
        marks = ", ".join("?" for _ in data)
        await self._run(f"INSERT INTO videos ({cols}) VALUES ({marks})", tuple(data.values()))

    async def get_video(self, video_id: str) -> Video | None:
        """Return one video, or None."""
        cached = self._videos.get(video_id)
        if cached is not None:
            return cached
        rows = await self._run("SELECT * FROM videos WHERE id = ?", (video_id,))
        if not rows:
            return None
        video = Video(**dict(rows[0]))
        if len(self._videos) < self._cached_videos:
            self._videos[video_id] = video
        return video

    async def list_videos(self, limit: int = 50, offset: int = 0) -> tuple[list[Video], int]:
        """Return one page of videos (oldest first) and the total count."""
        rows = await self._run(
            "SELECT * FROM videos ORDER BY created_at, id LIMIT ? OFFSET ?", (limit, offset)
        )
        count = (await self._run("SELECT COUNT(*) FROM videos"))[0][0]
        return [Video(**dict(r)) for r in rows], count

    async def save_job(self, job: Job) -> None:
        """Insert or replace a job row."""
        data = asdict(job)
        cols = ", ".join(f'"{c}"' for c in data)
        marks = ", ".join("?" for _ in data)
        await self._run(
            f"INSERT OR REPLACE INTO jobs ({cols}) VALUES ({marks})", tuple(data.values())
        )

    async def fail_unfinished(
        self, statuses: tuple[str, ...], reason: str, finished_at: float
    ) -> int:
        """Mark jobs in ``statuses`` failed with ``reason`` (``{status}`` filled in); count them."""
        marks = ", ".join("?" for _ in statuses)

        def work() -> int:
            with self.pool.connection() as conn:
                rows = conn.execute(
                    f"SELECT id, status FROM jobs WHERE status IN ({marks})", statuses
                ).fetchall()
                conn.executemany(
                    "UPDATE jobs SET status = 'failed', error = ?, finished_at = ? WHERE id = ?",
                    [(reason.format(status=r["status"]), finished_at, r["id"]) for r in rows],
                )
                return len(rows)

        return await asyncio.to_thread(work)

    async def get_job(self, job_id: str) -> Job | None:
        """Return one job, or None."""
        rows = await self._run("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return Job(**dict(rows[0])) if rows else None


def now() -> float:
    """Return the wall-clock time for created_at columns (timestamps, not durations)."""
    return time.time()
