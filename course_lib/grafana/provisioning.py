"""Read Grafana's provisioning files: which data sources exist, and their scrape interval.

>>> sorted(datasource_uids())
['vrewcraft-prometheus']
>>> scrape_interval("vrewcraft-prometheus")
2.0
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from course_lib.config import repo_root

__all__ = ["PROVISIONING_DIR", "datasource_uids", "datasources", "scrape_interval"]

PROVISIONING_DIR = repo_root() / "monitoring" / "grafana" / "provisioning"
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def datasources(provisioning_dir: Path = PROVISIONING_DIR) -> list[dict[str, Any]]:
    """Return every data source declared in ``provisioning_dir/datasources/*.yml``."""
    found: list[dict[str, Any]] = []
    for path in sorted((provisioning_dir / "datasources").glob("*.y*ml")):
        found.extend(yaml.safe_load(path.read_text()).get("datasources") or [])
    return found


def datasource_uids(provisioning_dir: Path = PROVISIONING_DIR) -> set[str]:
    """Return the uids of the provisioned data sources."""
    return {source["uid"] for source in datasources(provisioning_dir) if source.get("uid")}


def scrape_interval(uid: str, provisioning_dir: Path = PROVISIONING_DIR) -> float:
    """Return the data source's ``timeInterval`` in seconds (Grafana's default 15s if unset)."""
    for source in datasources(provisioning_dir):
        if source.get("uid") == uid:
            text = str((source.get("jsonData") or {}).get("timeInterval") or "15s")
            for suffix in ("ms", "s", "m", "h"):
                if text.endswith(suffix) and text[: -len(suffix)].replace(".", "").isdigit():
                    return float(text[: -len(suffix)]) * _UNITS[suffix]
            raise ValueError(f"data source {uid!r} has timeInterval {text!r}: write e.g. '2s'.")
    raise KeyError(f"no provisioned data source with uid {uid!r} in {provisioning_dir}.")
