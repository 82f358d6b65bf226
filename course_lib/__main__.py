"""Command line: ``python -m course_lib COMMAND``.

Commands: up, down, status, logs, doctor, progress, lab, cards.
"""

from __future__ import annotations

import argparse
import sys

from course_lib import stack
from course_lib.config import StackConfig
from course_lib.supervisor import StackError


def main(argv: list[str] | None = None) -> int:
    """Run one stack command; print a clear message and exit 1 on a stack error."""
    parser = argparse.ArgumentParser(prog="course", description="Manage the course's local stack.")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the stack (reuses a healthy one) and wait until ready")
    up.add_argument("--no-traffic", action="store_true", help="leave the traffic generator off")
    up.add_argument("--timeout", type=float, default=60.0)
    sub.add_parser("down", help="stop every process of the stack")
    sub.add_parser("status", help="show each component's pid, address and health")
    logs = sub.add_parser("logs", help="show the end of the components' logs")
    logs.add_argument("component", nargs="?")
    logs.add_argument("-n", "--lines", type=int, default=40)
    sub.add_parser("doctor", help="diagnose binaries, ports and stale pid files")
    prog = sub.add_parser("progress", help="show which exercises are done, tried, not started")
    prog.add_argument("--reset", action="store_true", help="forget all progress and start over")
    lab = sub.add_parser("lab", help="start the stack, then JupyterLab on notebooks/ (make lab)")
    lab.add_argument("--token", help="fixed login token (default: a random one, printed)")
    deck = sub.add_parser("cards", help="export the interview cards (Anki deck, CSV, Markdown)")
    deck.add_argument("--anki", metavar="OUT.apkg", help="write an Anki deck")
    deck.add_argument("--csv", metavar="OUT.csv", help="write a CSV file")
    deck.add_argument("--markdown", metavar="OUT.md", help="write a Markdown file")
    args = parser.parse_args(argv)

    if args.command == "cards":
        return _cards(args)
    try:
        cfg = StackConfig.from_env()
        if args.command == "up":
            if args.no_traffic:
                cfg = StackConfig(**{**cfg.__dict__, "traffic": False})
            ready = stack.up(cfg, timeout=args.timeout, progress=print)
            print(stack.format_status(stack.status(cfg)))
            print(f"Prometheus:   {ready.prometheus_url}/classic/graph")
            print(f"Alertmanager: {ready.alertmanager_url}")
        elif args.command == "down":
            stack.down(cfg, progress=print)
        elif args.command == "status":
            rows = stack.status(cfg)
            print(stack.format_status(rows))
            return 0 if all(r.state in ("healthy", "stopped", "disabled") for r in rows) else 1
        elif args.command == "logs":
            print(stack.logs(cfg, args.component, args.lines))
        elif args.command == "progress":
            from course_lib import progress

            if args.reset:
                removed = progress.reset()
                print("progress reset." if removed else "no progress recorded yet.")
            else:
                print(progress.format_table(progress.table()))
        elif args.command == "lab":
            from course_lib import lab as lab_mod

            return lab_mod.run_lab(cfg, token=args.token)
        elif args.command == "doctor":
            from course_lib import lab as lab_mod

            findings = stack.doctor(cfg) + lab_mod.doctor(cfg)
            for level, text in findings:
                print(f"[{level:>5}] {text}")
            return 1 if any(level == "error" for level, _ in findings) else 0
    except (StackError, ValueError, KeyError) as exc:
        print(f"course {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


def _cards(args: argparse.Namespace) -> int:
    """Export the interview cards to the files asked for; exit 1 with a clear message otherwise."""
    from course_lib import cards

    try:
        written = cards.export(anki=args.anki, csv_path=args.csv, markdown=args.markdown)
    except ValueError as exc:
        print(f"course cards: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {len(cards.CARDS)} cards to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
