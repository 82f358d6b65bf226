"""Time the Python half of `make setup`: a new venv with cold caches, then with warm ones.

Prints seconds for each case (not a test; takes a few minutes, mostly the cold case):

* uv, cold: empty uv and pip caches, so every wheel is downloaded;
* uv, warm: the same caches again (what a newcomer's second checkout, or CI on a kept
  machine, waits); the goal is <= 30 s;
* pip, warm: the pip-only fallback with a warm pip cache, for comparison.

Each case builds a throwaway venv under a temporary directory with `make <venv>/.installed`
(the venv step of `make setup`, without the system packages). The machine's load skews
the numbers: `uptime` before and after is printed with them. Run: `.venv/bin/python
bench/setup.py`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def make_venv(venv: Path, caches: Path, use_uv: bool) -> float:
    """Build ``venv`` with the Makefile's venv step; return the seconds it took."""
    env = {
        **os.environ,
        "UV_CACHE_DIR": str(caches / "uv"),
        "PIP_CACHE_DIR": str(caches / "pip"),
    }
    env.pop("COURSE_NO_UV", None)
    if not use_uv:
        env["COURSE_NO_UV"] = "1"
    began = time.monotonic()
    subprocess.run(
        ["make", "--no-print-directory", f"VENV={venv}", f"{venv}/.installed"],
        cwd=REPO,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    seconds = time.monotonic() - began
    check = [str(venv / "bin" / "python"), "-c", "import course_lib.prom, papermill, jupyterlab"]
    subprocess.run(check, check=True, cwd=tempfile.gettempdir())
    return seconds


def main() -> int:
    print("load before:", os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="course-setup-bench-") as tmp:
        root = Path(tmp)
        caches = root / "caches"
        results = {
            "uv, cold caches": make_venv(root / "venv-cold", caches, use_uv=True),
            "uv, warm caches": make_venv(root / "venv-warm", caches, use_uv=True),
        }
        make_venv(root / "venv-pip-warmup", caches, use_uv=False)  # fills the pip cache
        results["pip, warm cache"] = make_venv(root / "venv-pip", caches, use_uv=False)
    for case, seconds in results.items():
        print(f"{case:<16} {seconds:6.1f} s")
    print("load after:", os.getloadavg())
    goal = results["uv, warm caches"] <= 30
    print(f"goal (uv, warm <= 30 s): {'met' if goal else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
