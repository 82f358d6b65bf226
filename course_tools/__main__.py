"""Command line: ``python -m course_tools solutions | site`` (``make solutions``, ``make site``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from course_lib import stack
from course_lib.config import StackConfig
from course_lib.supervisor import StackError
from course_tools import build


def main(argv: list[str] | None = None) -> int:
    """Run one build command; print a clear message and exit 1 when it can't."""
    parser = argparse.ArgumentParser(prog="course_tools", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sols = sub.add_parser("solutions", help="execute every notebook with solutions to build/")
    sols.add_argument("--out", help="directory for the executed notebooks (build/solutions)")
    site = sub.add_parser("site", help="build the HTML course site from build/solutions")
    site.add_argument("--out", help="directory for the site (build/site)")
    args = parser.parse_args(argv)
    try:
        if args.command == "solutions":
            stack.up(StackConfig.from_env(), progress=print)
            timings = build.write_solutions(Path(args.out) if args.out else None)
            print(f"{len(timings)} notebooks in {sum(timings.values()):.0f}s")
        else:
            index = build.build_site(out_dir=Path(args.out) if args.out else None)
            print(f"site: {index}")
    except (StackError, ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"course_tools {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
