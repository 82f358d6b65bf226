"""Notification sinks: a local SMTP server and a Slack-shaped webhook that record every message.

Alertmanager sends real email and real Slack webhooks to these, so a notebook can
read exactly what an on-call engineer would have received:

>>> import smtplib
>>> from course_lib.sinks import read_emails
>>> with smtplib.SMTP("127.0.0.1", stack.config.port("smtp-sink")) as smtp:
...     _ = smtp.sendmail("am@vrewcraft.local", ["oncall@vrewcraft.local"],
...                       "Subject: [VrewCraft] HighErrorRate\\n\\nfiring")
>>> read_emails(stack.config.sink_dir)[-1]["subject"]
'[VrewCraft] HighErrorRate'

Run one with ``python -m course_lib.sinks smtp --port 2525 --out DIR`` or
``python -m course_lib.sinks webhook --port 5001 --out DIR``.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import signal
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

EMAILS_FILE = "emails.jsonl"
WEBHOOKS_FILE = "webhooks.jsonl"
_append_lock = threading.Lock()


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON record as a line; readers never see half a line."""
    line = json.dumps(record, ensure_ascii=False) + "\n"
    with _append_lock, path.open("a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            records.append(json.loads(line))
    return records


def read_emails(sink_dir: Path | str) -> list[dict[str, Any]]:
    """Return every email the SMTP sink received, oldest first.

    >>> read_emails("/nonexistent")
    []
    """
    return _read_jsonl(Path(sink_dir) / EMAILS_FILE)


def read_webhooks(sink_dir: Path | str) -> list[dict[str, Any]]:
    """Return every webhook POST the webhook sink received, oldest first.

    >>> read_webhooks("/nonexistent")
    []
    """
    return _read_jsonl(Path(sink_dir) / WEBHOOKS_FILE)


class _EmailRecorder:
    """aiosmtpd handler that stores each message as a JSON line."""

    def __init__(self, out: Path):
        self.out = out

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd's hook name
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body_part = message.get_body(preferencelist=("plain", "html"))
        append_record(
            self.out,
            {
                "received_at": time.time(),
                "mail_from": envelope.mail_from,
                "rcpt_tos": list(envelope.rcpt_tos),
                "subject": str(message.get("Subject", "")),
                "headers": {k: str(v) for k, v in message.items()},
                "body": body_part.get_content() if body_part is not None else "",
            },
        )
        return "250 Message accepted for delivery"


def serve_smtp(host: str, port: int, out_dir: Path, stop: threading.Event) -> None:
    """Run the SMTP sink until ``stop`` is set."""
    from aiosmtpd.controller import Controller

    out_dir.mkdir(parents=True, exist_ok=True)
    controller = Controller(_EmailRecorder(out_dir / EMAILS_FILE), hostname=host, port=port)
    controller.start()
    print(f"smtp sink listening on {host}:{port}, recording to {out_dir / EMAILS_FILE}", flush=True)
    try:
        stop.wait()
    finally:
        controller.stop()


class _WebhookHandler(BaseHTTPRequestHandler):
    out: Path  # set on the subclass made by serve_webhook

    def do_GET(self):  # http.server's hook name
        if self.path == "/healthz":
            self._reply(HTTPStatus.OK, {"status": "ok"})
        else:
            self._reply(
                HTTPStatus.NOT_FOUND, {"error": f"no such path {self.path}; POST to any path"}
            )

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            payload = json.loads(raw or b"null")
        except json.JSONDecodeError as exc:
            self._reply(HTTPStatus.BAD_REQUEST, {"error": f"body is not JSON: {exc}"})
            return
        append_record(
            self.out,
            {
                "received_at": time.time(),
                "path": self.path,
                "headers": dict(self.headers.items()),
                "json": payload,
            },
        )
        # Slack answers a webhook with the plain text "ok".
        body = b"ok"
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _reply(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # signature fixed by http.server
        print(f"webhook sink: {format % args}", flush=True)


def serve_webhook(host: str, port: int, out_dir: Path, stop: threading.Event) -> None:
    """Run the webhook sink until ``stop`` is set."""
    out_dir.mkdir(parents=True, exist_ok=True)
    handler = type("WebhookHandler", (_WebhookHandler,), {"out": out_dir / WEBHOOKS_FILE})
    server = ThreadingHTTPServer((host, port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    print(
        f"webhook sink listening on {host}:{port}, recording to {out_dir / WEBHOOKS_FILE}",
        flush=True,
    )
    try:
        stop.wait()
    finally:
        server.shutdown()
        server.server_close()


def main(argv: list[str] | None = None) -> None:
    """Run one sink in the foreground until SIGTERM or Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m course_lib.sinks", description=__doc__)
    parser.add_argument("kind", choices=["smtp", "webhook"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True, help="directory for the JSONL records")
    args = parser.parse_args(argv)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    serve = serve_smtp if args.kind == "smtp" else serve_webhook
    serve(args.host, args.port, args.out, stop)


if __name__ == "__main__":
    main()
