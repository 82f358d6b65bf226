"""Alerting from a notebook: rule unit tests, routing checks, a workshop copy of the rules,
and the pieces of a live incident (alert states, notifications, silences).

The real tools do the work: ``promtool test rules`` runs the rule tests, ``amtool config
routes test`` answers "which receiver gets this alert", Prometheus evaluates the rules
and Alertmanager sends real email and Slack webhooks to the stack's sinks.

>>> result = run_rule_tests(RULE_TESTS_DIR / "vrewcraft_test.yml")     # doctest: +SKIP
>>> result.ok                                                         # doctest: +SKIP
True
>>> receivers({"severity": "critical", "alertname": "HighErrorRate"})  # doctest: +SKIP
['oncall-critical']
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import requests
import yaml

from course_lib import prom, sinks, supervisor
from course_lib.config import repo_root
from course_lib.supervisor import ConfigError, NotReadyError, StackError

MONITORING = repo_root() / "monitoring"
RULES_FILE = MONITORING / "prometheus" / "rules" / "vrewcraft.yml"
RULE_TESTS_DIR = MONITORING / "prometheus" / "tests"
SEED_DIR = MONITORING / "prometheus" / "seed"
ALERTMANAGER_CONFIG = MONITORING / "alertmanager" / "alertmanager.yml"

#: The seed tutorial's six alerts, the ones a workshop copy is made of by default.
SEED_ALERTS = (
    "HighAPILatency",
    "HighThumbnailLatency",
    "HighErrorRate",
    "HighMemoryUsage",
    "FFmpegErrorSpike",
    "LowCacheHitRatio",
)

#: Name of the rule group holding the workshop copy, and the label that marks its alerts.
WORKSHOP_GROUP = "vrewcraft-workshop"
WORKSHOP_LABEL = ("rules", "workshop")

TIMEOUT = 10.0

__all__ = [
    "RuleTestResult",
    "alertmanager_alerts",
    "create_silence",
    "expire_silence",
    "load_workshop_rules",
    "notifications",
    "post_alerts",
    "prometheus_alerts",
    "receivers",
    "replay",
    "rule_groups",
    "run_rule_tests",
    "unload_workshop_rules",
    "wait_for_alert",
    "wait_for_notification",
    "workshop_rules",
]


# --- promtool and amtool --------------------------------------------------------------------


@dataclass(frozen=True)
class RuleTestResult:
    """What ``promtool test rules`` said: passed or not, and its output."""

    ok: bool
    output: str

    def __str__(self) -> str:
        return self.output


def _tool(name: str) -> str:
    path = supervisor.find_binary([name])
    if path is None:
        raise supervisor.MissingBinaryError(
            f"{name} not found. Install it with:\n    " + supervisor.install_command([name])
        )
    return path


def run_rule_tests(test_file: Path | str, rule_files: Iterable[Path | str] | None = None):
    """Run ``promtool test rules`` on one test file, optionally against other rule files.

    With ``rule_files`` the test file's own ``rule_files`` are replaced, so the same
    cases can be run against another version of the rules (e.g. the seed's).

    >>> run_rule_tests(SEED_DIR / "seed_test.yml", [SEED_DIR / "alerts.yml"]).ok  # doctest: +SKIP
    False
    """
    test_file = Path(test_file).resolve()
    if not test_file.exists():
        raise FileNotFoundError(f"no rule test file {test_file}")
    with tempfile.TemporaryDirectory(prefix="course-ruletest-") as tmp:
        target = test_file
        if rule_files is not None:
            tests = yaml.safe_load(test_file.read_text())
            tests["rule_files"] = [str(Path(f).resolve()) for f in rule_files]
            target = Path(tmp) / test_file.name
            target.write_text(yaml.safe_dump(tests, sort_keys=False))
        proc = subprocess.run(
            [_tool("promtool"), "test", "rules", target.name],
            cwd=target.parent,
            capture_output=True,
            text=True,
            timeout=120,
        )
    return RuleTestResult(proc.returncode == 0, (proc.stdout + proc.stderr).strip())


def receivers(labels: Mapping[str, str], config: Path | str = ALERTMANAGER_CONFIG) -> list[str]:
    """Return the receivers Alertmanager's routing tree picks for an alert with ``labels``.

    >>> receivers({"severity": "info"})                           # doctest: +SKIP
    ['info-digest']
    """
    argv = [_tool("amtool"), "config", "routes", "test", f"--config.file={config}"]
    argv += [f"{k}={v}" for k, v in labels.items()]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise ConfigError(f"amtool rejected {config}:\n{(proc.stdout + proc.stderr).strip()}")
    return proc.stdout.strip().split(",")


def receivers_with_routes(
    routes: list[dict], extra_receivers: list[dict], cases: Iterable[Mapping[str, str]]
) -> list[list[str]]:
    """Swap the course config's child routes for ``routes``; return each case's receivers.

    The edited copy (with ``extra_receivers`` added) must pass ``amtool check-config``;
    otherwise ConfigError carries amtool's message.
    """
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    config["route"]["routes"] = routes
    config["receivers"] = config["receivers"] + list(extra_receivers)
    config.pop("templates", None)  # not needed to route, and relative to the real file
    with tempfile.TemporaryDirectory(prefix="course-routes-") as tmp:
        path = Path(tmp) / "alertmanager.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        proc = subprocess.run(
            [_tool("amtool"), "check-config", str(path)], capture_output=True, text=True
        )
        if proc.returncode != 0:
            detail = (proc.stdout + proc.stderr).replace(tmp + "/", "").strip()
            raise ConfigError(f"amtool check-config rejects it:\n{detail}")
        return [receivers(labels, path) for labels in cases]


# --- the workshop copy of the rules ---------------------------------------------------------

_RANGE = re.compile(r"\[(\d+(?:ms|[smhdwy]))+\]")


def workshop_rules(
    source: Path | str = RULES_FILE,
    for_: str = "10s",
    window: str = "15s",
    alerts: Iterable[str] = SEED_ALERTS,
) -> dict[str, Any]:
    """Return a rules file holding a fast copy of the alerts in ``source``.

    Thresholds, expressions and labels stay; ``for`` becomes ``for_`` and every range
    window becomes ``window``, so an incident fires in seconds instead of minutes. Each
    copy carries ``rules="workshop"`` so it never collides with the real alert.
    Only ``alerts`` are copied (recording rules never: the real ones keep running).

    >>> copy = workshop_rules(alerts=["HighErrorRate"])
    >>> rule = copy["groups"][0]["rules"][0]
    >>> rule["for"], "[15s]" in rule["expr"], "> 0.05" in rule["expr"]
    ('10s', True, True)
    """
    wanted = set(alerts)
    rules = []
    for group in yaml.safe_load(Path(source).read_text())["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") not in wanted:
                continue
            copy = dict(rule)
            copy["expr"] = _RANGE.sub(f"[{window}]", rule["expr"])
            copy["for"] = for_
            copy["labels"] = {**rule.get("labels", {}), WORKSHOP_LABEL[0]: WORKSHOP_LABEL[1]}
            rules.append(copy)
    missing = wanted - {r["alert"] for r in rules}
    if missing:
        raise KeyError(f"no alert {', '.join(sorted(missing))} in {source}")
    return {"groups": [{"name": WORKSHOP_GROUP, "rules": rules}]}


def _workshop_file(stack: Any) -> Path:
    if stack.config.external:
        raise StackError(
            "The workshop rules are loaded into the local stack's Prometheus; with "
            "COURSE_PROMETHEUS_URL set, copy them into that Prometheus' rule files yourself."
        )
    return stack.config.config_dir / "workshop" / "vrewcraft.yml"


def load_workshop_rules(stack: Any, timeout: float = 30.0, **options: Any) -> list[str]:
    """Load the workshop copy into the stack's Prometheus; return the alert names loaded.

    ``options`` go to ``workshop_rules``. The file is checked with promtool first;
    Prometheus reloads and this waits until its rules API lists the group.
    """
    path = _workshop_file(stack)
    rules = workshop_rules(**options)
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_suffix(".staged")
    staged.write_text(yaml.safe_dump(rules, sort_keys=False))
    proc = subprocess.run(
        [_tool("promtool"), "check", "rules", str(staged)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        staged.unlink()
        raise ConfigError(f"promtool check rules rejected the workshop copy:\n{proc.stdout}")
    staged.replace(path)
    names = [r["alert"] for r in rules["groups"][0]["rules"]]
    _reload_until(stack, lambda groups: _loaded(groups) == names, timeout)
    return names


def unload_workshop_rules(stack: Any, timeout: float = 30.0) -> None:
    """Remove the workshop copy from the stack's Prometheus (a no-op when none is loaded)."""
    _workshop_file(stack).unlink(missing_ok=True)
    _reload_until(stack, lambda groups: not _loaded(groups), timeout)


def _loaded(groups: list[dict]) -> list[str]:
    return [r["name"] for g in groups if g["name"] == WORKSHOP_GROUP for r in g["rules"]]


def _reload_until(stack: Any, done: Callable[[list[dict]], bool], timeout: float) -> None:
    stack.reload("prometheus")
    if not supervisor.poll(lambda: done(rule_groups(stack)), timeout, interval=0.2):
        raise NotReadyError(
            f"Prometheus did not pick up the workshop rules within {timeout:.0f}s; "
            "see `python -m course_lib logs prometheus`."
        )


def rule_groups(stack: Any) -> list[dict]:
    """Return the rule groups Prometheus runs (``/api/v1/rules``), with each rule's state."""
    return prom.api(stack.prometheus_url, "rules")["groups"]


def replay(
    stack: Any,
    start: float,
    end: float,
    step: float = 60.0,
    source: Path | str = RULES_FILE,
) -> pd.DataFrame:
    """Evaluate every alert of ``source`` over a past time range: would it have fired?

    Each ``expr`` is run as a range query every ``step`` seconds, as if Prometheus had
    evaluated the rule then (recording rules it uses are replaced by their expressions).
    An alert fires once its condition has held for its whole ``for``: ``first_fired`` is
    the first such moment (NaT when it never did), ``fired_at`` lists every time it
    fired, ``firings`` counts them, and ``minutes_true`` counts the minutes at which the
    condition held.

    >>> day = stack.history_window()                                    # doctest: +SKIP
    >>> replay(stack, day.start, day.end)[["alert", "fired"]]           # doctest: +SKIP
    """
    groups = yaml.safe_load(Path(source).read_text())["groups"]
    # Recording rules only have samples from the moments Prometheus evaluated them, so
    # a past range (e.g. a backfilled day) has none: use their expressions instead.
    records = {r["record"]: r["expr"] for g in groups for r in g["rules"] if "record" in r}
    rows = []
    for group in groups:
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            expr = rule["expr"]
            for name, recorded in records.items():
                expr = re.sub(rf"(?<![\w:]){re.escape(name)}(?![\w:])", f"({recorded})", expr)
            df = prom.query_range(stack.prometheus_url, expr, start, end, f"{step:g}s")
            times = sorted({t.timestamp() for t in df["timestamp"]}) if not df.empty else []
            fired_at = _firings(times, step, prom.duration_seconds(str(rule.get("for", "0s"))))
            rows.append(
                {
                    "alert": rule["alert"],
                    "severity": rule["labels"]["severity"],
                    "for": rule.get("for", "0s"),
                    "fired": bool(fired_at),
                    "firings": len(fired_at),
                    "first_fired": (
                        pd.to_datetime(fired_at[0], unit="s", utc=True) if fired_at else None
                    ),
                    "fired_at": [pd.to_datetime(t, unit="s", utc=True) for t in fired_at],
                    "minutes_true": len(times) * step / 60,
                }
            )
    return pd.DataFrame(rows)


def _firings(times: list[float], step: float, hold: float) -> list[float]:
    """Return when an alert fires, given the evaluation times at which its condition held.

    >>> _firings([0, 60, 120, 180, 300, 360], step=60, hold=120)   # held 0..180, 300..360
    [120]
    """
    fired_at: list[float] = []
    since, previous = 0.0, None
    for t in times:
        if previous is None or t - previous > step * 1.5:
            since = t  # the condition starts holding (again)
        previous = t
        if t - since >= hold and (not fired_at or fired_at[-1] < since):
            fired_at.append(t)
    return fired_at


# --- Prometheus' and Alertmanager's view of alerts ------------------------------------------


def _get(url: str, **params: Any) -> Any:
    """GET an Alertmanager API URL; return its JSON (Prometheus' API goes through prom)."""
    resp = requests.get(url, params=params or None, timeout=TIMEOUT)
    resp.raise_for_status()
    return resp.json()


def prometheus_alerts(stack: Any) -> pd.DataFrame:
    """Return Prometheus' active alerts (pending and firing): name, state, since, value, labels.

    >>> prometheus_alerts(stack)[["alertname", "state"]]          # doctest: +SKIP
    """
    rows = [
        {
            "alertname": a["labels"]["alertname"],
            "state": a["state"],
            "active_at": pd.Timestamp(a["activeAt"]),
            "value": float(a["value"]),
            "labels": a["labels"],
        }
        for a in prom.api(stack.prometheus_url, "alerts")["alerts"]
    ]
    return pd.DataFrame(rows, columns=["alertname", "state", "active_at", "value", "labels"])


def _matches(labels: Mapping[str, str], wanted: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in wanted.items())


def wait_for_alert(
    stack: Any,
    alertname: str,
    state: str | None,
    labels: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> float:
    """Wait until Prometheus shows ``alertname`` in ``state`` (None: gone); return the time.

    >>> wait_for_alert(stack, "HighErrorRate", "firing", timeout=60)   # doctest: +SKIP
    """
    wanted = {"alertname": alertname, **(labels or {})}

    def reached() -> bool:
        alerts = prom.api(stack.prometheus_url, "alerts")["alerts"]
        states = {a["state"] for a in alerts if _matches(a["labels"], wanted)}
        return state in states if state is not None else not states

    if not supervisor.poll(reached, timeout, interval=0.25):
        shown = prometheus_alerts(stack)
        raise NotReadyError(
            f"{alertname} did not become {state or 'inactive'} within {timeout:.0f}s. "
            f"Prometheus' alerts now:\n{shown[['alertname', 'state']].to_string()}"
        )
    return time.time()


def alertmanager_alerts(stack: Any, **filters: Any) -> list[dict]:
    """Return Alertmanager's alerts (``/api/v2/alerts``), each with its status and receivers."""
    return _get(f"{stack.alertmanager_url}/api/v2/alerts", **filters)


def post_alerts(stack: Any, alerts: Iterable[Mapping[str, Any]]) -> None:
    """Send alerts straight to Alertmanager, the way Prometheus does (``/api/v2/alerts``).

    Each alert is ``{"labels": {...}, "annotations": {...}}``, optionally ``endsAt``.
    """
    body = [
        {"annotations": {}, **dict(a), "labels": {k: str(v) for k, v in a["labels"].items()}}
        for a in alerts
    ]
    resp = requests.post(f"{stack.alertmanager_url}/api/v2/alerts", json=body, timeout=TIMEOUT)
    if resp.status_code != 200:
        raise StackError(f"Alertmanager refused the alerts: {resp.status_code} {resp.text}")


def create_silence(
    stack: Any,
    matchers: Mapping[str, str],
    minutes: float = 30,
    comment: str = "silenced from a notebook",
    created_by: str = "course",
) -> str:
    """Silence alerts whose labels equal ``matchers`` for ``minutes``; return the silence id."""
    now = datetime.now(UTC)
    body = {
        "matchers": [
            {"name": k, "value": v, "isRegex": False, "isEqual": True} for k, v in matchers.items()
        ],
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(minutes=minutes)).isoformat(),
        "createdBy": created_by,
        "comment": comment,
    }
    resp = requests.post(f"{stack.alertmanager_url}/api/v2/silences", json=body, timeout=TIMEOUT)
    if resp.status_code != 200:
        raise StackError(f"Alertmanager refused the silence: {resp.status_code} {resp.text}")
    return resp.json()["silenceID"]


def expire_silence(stack: Any, silence_id: str) -> None:
    """End a silence now."""
    url = f"{stack.alertmanager_url}/api/v2/silence/{silence_id}"
    requests.delete(url, timeout=TIMEOUT).raise_for_status()


# --- notifications, as received by the sinks ------------------------------------------------

# The subject line of vrewcraft.tmpl: "[VrewCraft] FIRING:2 HighErrorRate on vrewcraft (critical)"
_SUBJECT = re.compile(
    r"\[VrewCraft\] (?P<status>FIRING|RESOLVED)(?::(?P<count>\d+))? (?P<alertname>\S+)"
    r"(?: on (?P<service>\S+))?(?: \((?P<severity>\w+)\))?"
)

NOTIFICATION_COLUMNS = [
    "received_at",
    "channel",
    "to",
    "status",
    "alertname",
    "service",
    "severity",
    "alerts",
    "subject",
    "text",
]


def notifications(stack: Any, since: float = 0.0) -> pd.DataFrame:
    """Return every email and Slack message the sinks received after ``since`` (Unix time).

    One row per notification: channel (email or slack), to (address or Slack channel),
    status, alertname and service (parsed from the subject), alerts (how many firing),
    subject and text.
    """
    rows = []
    for mail in sinks.read_emails(stack.config.sink_dir):
        rows.append(
            _row(
                mail["received_at"],
                "email",
                ",".join(mail["rcpt_tos"]),
                mail["subject"],
                mail["body"],
            )
        )
    for hook in sinks.read_webhooks(stack.config.sink_dir):
        payload = hook.get("json") or {}
        for attachment in payload.get("attachments") or [{}]:
            rows.append(
                _row(
                    hook["received_at"],
                    "slack",
                    payload.get("channel", hook.get("path", "")),
                    attachment.get("title", ""),
                    attachment.get("text", ""),
                )
            )
    df = pd.DataFrame([r for r in rows if r["received_at"] > since], columns=NOTIFICATION_COLUMNS)
    return df.sort_values("received_at").reset_index(drop=True)


def _row(received_at: float, channel: str, to: str, subject: str, text: str) -> dict[str, Any]:
    match = _SUBJECT.search(subject)
    parsed = match.groupdict() if match else {}
    return {
        "received_at": received_at,
        "channel": channel,
        "to": to,
        "status": (parsed.get("status") or "").lower(),
        "alertname": parsed.get("alertname"),
        "service": parsed.get("service"),
        "severity": parsed.get("severity"),
        "alerts": int(parsed["count"]) if parsed.get("count") else None,
        "subject": subject,
        "text": text,
    }


def wait_for_notification(
    stack: Any,
    since: float,
    timeout: float = 60.0,
    **wanted: Any,
) -> pd.Series:
    """Wait for the first notification after ``since`` whose columns equal ``wanted``.

    >>> wait_for_notification(stack, t0, alertname="HighErrorRate", status="firing",
    ...                       channel="email")                    # doctest: +SKIP
    """
    found: list[pd.Series] = []

    def arrived() -> bool:
        df = notifications(stack, since)
        for key, value in wanted.items():
            df = df[df[key] == value]
        if not df.empty:
            found.append(df.iloc[0])
        return bool(found)

    if not supervisor.poll(arrived, timeout, interval=0.25):
        seen = notifications(stack, since)[["channel", "status", "alertname", "subject"]]
        raise NotReadyError(
            f"no notification with {wanted} arrived within {timeout:.0f}s. "
            f"Received since then:\n{seen.to_string() if not seen.empty else '(nothing)'}\n"
            "Check `python -m course_lib logs alertmanager`."
        )
    return found[0]


def demo_service() -> str:
    """Return a fresh service label value, so demo alerts never join an existing group."""
    return f"demo-{uuid.uuid4().hex[:6]}"
