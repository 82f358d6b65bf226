"""Run the VrewCraft service with uvicorn.

Example::

    python -m course_lib.service --host 127.0.0.1 --port 3001 --data-dir .course/service

``REDIS_URL`` selects the Redis thumbnail cache. SIGTERM or Ctrl-C shut down cleanly
(running trim jobs are cancelled and their partial outputs removed).
"""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path

from .settings import Settings


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.service", description="Run the VrewCraft video backend."
    )
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default: %(default)s)")
    parser.add_argument("--port", type=int, default=3001, help="listen port (default: %(default)s)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="uploads, database and samples (default: $VREWCRAFT_DATA_DIR or "
        "a directory under the system temp dir)",
    )
    parser.add_argument(
        "--max-upload-mb",
        type=float,
        default=None,
        help="largest accepted upload in MiB (default: 20)",
    )
    parser.add_argument(
        "--no-http-metrics",
        action="store_true",
        help="serve without the HTTP metrics middleware (benchmark baseline)",
    )
    parser.add_argument(
        "--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"]
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Build the app from the command line and serve it until SIGTERM/SIGINT."""
    import uvicorn
    from prometheus_client import CollectorRegistry

    from .app import make_app

    args = parse_args(argv)
    overrides: dict[str, object] = {}
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir.resolve()
    if args.max_upload_mb is not None:
        overrides["max_upload_bytes"] = int(args.max_upload_mb * 1024 * 1024)
    if args.no_http_metrics:
        overrides["instrument_http"] = False
    settings = Settings.from_env(None, **overrides)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal with the
    # handler that was installed before it started. Make that handler a clean exit (0),
    # so a supervisor sees "stopped as asked", not "killed by signal 15".
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_cleanly)
    app = make_app(registry=CollectorRegistry(), settings=settings)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
        ws="websockets-sansio",
    )
    uvicorn.Server(config).run()


def _exit_cleanly(signum: int, _frame: object) -> None:
    """Exit with status 0 on a shutdown signal."""
    raise SystemExit(0)


if __name__ == "__main__":
    main()
