"""Settings of one VrewCraft service instance.

>>> s = Settings(data_dir=Path("/tmp/vrewcraft"))
>>> s.max_upload_bytes // (1024 * 1024), s.redis_url is None
(20, True)
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any


def _default_data_dir() -> Path:
    """Return the data directory used when none is given."""
    return Path(tempfile.gettempdir()) / "vrewcraft"


@dataclass(frozen=True)
class Settings:
    """Everything that can differ between two VrewCraft instances.

    >>> Settings.from_env({"REDIS_URL": "redis://127.0.0.1:6380/0"}).redis_url
    'redis://127.0.0.1:6380/0'
    """

    #: Holds uploads/, processed/, samples/, tmp/ and vrewcraft.sqlite3.
    data_dir: Path = field(default_factory=_default_data_dir)
    #: Redis URL for the thumbnail cache; None means the in-process LRU.
    redis_url: str | None = None
    #: Largest accepted upload (file bytes). Bigger bodies are refused with 413 mid-stream.
    max_upload_bytes: int = 20 * 1024 * 1024
    #: Entries in the in-process LRU (a 160 px JPEG is ~4 KiB, so 512 entries ~ 2 MiB).
    cache_entries: int = 512
    #: Seconds a thumbnail lives in Redis.
    cache_ttl_seconds: int = 3600
    #: SQLite connections the pool may open.
    db_pool_size: int = 4
    #: Sample clips generated on first start, and their length in seconds.
    sample_count: int = 4
    sample_seconds: float = 6.0
    #: Width of generated thumbnails in pixels (height keeps the aspect ratio).
    thumbnail_width: int = 160
    #: Threads decoding thumbnails in-process (PyAV) at once: one per core of the course's
    #: 2-core laptop. More would only queue on the CPU behind each other and the API.
    thumbnail_threads: int = 2
    #: Trim jobs allowed to run at once; more wait in state "queued".
    max_concurrent_trims: int = 2
    #: False serves the same app without the HTTP metrics middleware (benchmark baseline).
    instrument_http: bool = True
    ffmpeg: str = "ffmpeg"
    ffprobe: str = "ffprobe"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``env`` (default ``os.environ``): REDIS_URL, VREWCRAFT_DATA_DIR."""
        env = os.environ if env is None else env
        base = cls()
        if env.get("VREWCRAFT_DATA_DIR"):
            base = replace(base, data_dir=Path(env["VREWCRAFT_DATA_DIR"]))
        if env.get("REDIS_URL"):
            base = replace(base, redis_url=env["REDIS_URL"])
        return replace(base, **overrides)

    @property
    def uploads_dir(self) -> Path:
        """Return where accepted uploads are stored."""
        return self.data_dir / "uploads"

    @property
    def processed_dir(self) -> Path:
        """Return where trim outputs are stored."""
        return self.data_dir / "processed"

    @property
    def samples_dir(self) -> Path:
        """Return where generated sample clips are stored."""
        return self.data_dir / "samples"

    @property
    def tmp_dir(self) -> Path:
        """Return where files are written before being moved into place."""
        return self.data_dir / "tmp"

    @property
    def db_path(self) -> Path:
        """Return the SQLite database file."""
        return self.data_dir / "vrewcraft.sqlite3"
