"""The course's local monitoring stack: real Prometheus, Alertmanager, Pushgateway and friends.

From a notebook:

>>> from course_lib.stack import ensure_running
>>> stack = ensure_running()                    # doctest: +ELLIPSIS
first scrape done: every target reports up == 1
stack ready in ...s: http://127.0.0.1:...
>>> stack.query('up{job="prometheus"}')[["job", "value"]]
          job  value
0  prometheus    1.0

From a shell: ``python -m course_lib up | down | status | logs | doctor``.

Each component is one process with one port (or none), described by a
``Component`` entry in ``COMPONENTS``; adding a component is adding an entry.
When ``COURSE_PROMETHEUS_URL`` is set (e.g. to a docker compose stack) nothing is
started and the URLs from the environment are used.
"""

from __future__ import annotations

import functools
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from course_lib import backfill, history, recorded_history, supervisor
from course_lib.config import DEFAULT_PORTS, HOST, StackConfig, port_env_var
from course_lib.supervisor import (
    ConfigError,
    NotReadyError,
    PortInUseError,
    StackError,
)

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


# --- components -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Component:
    """One process of the stack: how to find, configure, start and health-check it."""

    name: str
    argv: Callable[[StackConfig, str], list[str]]  # (config, resolved binary) -> command line
    binaries: tuple[str, ...] = ()  # alternatives on PATH; () = runs on Python
    health_path: str | None = "/-/ready"  # HTTP readiness path; None = TCP connect
    has_port: bool = True
    job: str | None = None  # scrape job that must report up == 1
    prepare: Callable[[StackConfig, str], Path | None] | None = None  # render + validate config
    enabled: Callable[[StackConfig], bool] = lambda cfg: True
    reloadable: bool = False  # SIGHUP reloads a changed config
    after: tuple[str, ...] = ()  # components that must be healthy first

    def port(self, cfg: StackConfig) -> int:
        if not self.has_port:
            raise StackError(f"{self.name} listens on no port")
        return cfg.port(self.name)

    def pid_file(self, cfg: StackConfig) -> Path:
        return cfg.pid_dir / f"{self.name}.pid"

    def log_file(self, cfg: StackConfig) -> Path:
        return cfg.log_dir / f"{self.name}.log"

    def health_url(self, cfg: StackConfig) -> str | None:
        if not self.has_port or self.health_path is None:
            return None
        return f"http://{cfg.address(self.name)}{self.health_path}"


def _render(source_dir: Path, target_dir: Path, cfg: StackConfig) -> None:
    """Copy a monitoring/ config folder, moving every default address to this stack's port."""
    for src in sorted(source_dir.rglob("*")):
        if src.is_dir():
            continue
        text = src.read_text()
        for name, default in DEFAULT_PORTS.items():
            text = text.replace(f"{HOST}:{default}", f"{HOST}:{cfg.port(name)}")
        dest = target_dir / src.relative_to(source_dir)
        dest.parent.mkdir(parents=True, exist_ok=True)
        _write_if_changed(dest, text)


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _validate(argv: list[str], what: str, path: Path) -> None:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        # Name the source files under monitoring/, not the staging copy that was checked.
        staging = Path(argv[-1]).parent
        detail = (out.stdout + out.stderr).strip().replace(str(staging), str(path.parent))
        raise ConfigError(
            f"{what} rejected {path}:\n{detail}\n"
            f"Fix the file it names (the source is under monitoring/) and retry."
        )


def _install(staging: Path, target: Path, config_name: str) -> None:
    """Move a checked rendering into place; touch the config file when anything changed.

    Files that disappeared from the source disappear from the target. The touch lets
    ``_reload_if_changed`` see that a rule file or template changed, not only the config.
    """
    changed = False
    wanted = {p.relative_to(staging) for p in staging.rglob("*") if p.is_file()}
    for rel in sorted(wanted):
        dest = target / rel
        text = (staging / rel).read_text()
        if not dest.exists() or dest.read_text() != text:
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(text)
            changed = True
    for old in [p for p in target.rglob("*") if p.is_file()]:
        if old.relative_to(target) not in wanted:
            old.unlink()
            changed = True
    shutil.rmtree(staging, ignore_errors=True)
    if changed:
        (target / config_name).touch()


def _staging(cfg: StackConfig, name: str) -> Path:
    staging = cfg.config_dir / f".{name}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    return staging


def _prepare_prometheus(cfg: StackConfig, _binary: str) -> Path:
    # Render and check a staging copy; only a configuration promtool accepts replaces the
    # running one, so a broken rule file leaves Prometheus (and its next restart) on the
    # last good rules.
    staging = _staging(cfg, "prometheus")
    _render(cfg.monitoring_dir / "prometheus", staging, cfg)
    config_file = staging / "prometheus.yml"
    # Drop scrape jobs of components this stack does not run, so `up` stays honest.
    config = yaml.safe_load(config_file.read_text())
    disabled_jobs = {c.job for c in COMPONENTS if c.job and not c.enabled(cfg)}
    config["scrape_configs"] = [
        s for s in config.get("scrape_configs", []) if s["job_name"] not in disabled_jobs
    ]
    _write_if_changed(
        config_file,
        "# Generated from monitoring/prometheus by course_lib.stack; "
        "edit the source.\n" + yaml.safe_dump(config, sort_keys=False),
    )
    promtool = supervisor.find_binary(["promtool"])
    if promtool is None:
        raise supervisor.MissingBinaryError(
            "promtool not found (it ships with Prometheus). Install it with:\n    "
            + supervisor.install_command(["promtool"])
        )
    try:
        _validate(
            [promtool, "check", "config", str(config_file)],
            "promtool check config",
            cfg.monitoring_dir / "prometheus" / "prometheus.yml",
        )
    except ConfigError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    target = cfg.config_dir / "prometheus"
    _install(staging, target, "prometheus.yml")
    return target / "prometheus.yml"


def _prepare_alertmanager(cfg: StackConfig, _binary: str) -> Path:
    staging = _staging(cfg, "alertmanager")
    _render(cfg.monitoring_dir / "alertmanager", staging, cfg)
    amtool = supervisor.find_binary(["amtool"])
    if amtool is None:
        raise supervisor.MissingBinaryError(
            "amtool not found (it ships with Alertmanager). Install it with:\n    "
            + supervisor.install_command(["amtool"])
        )
    try:
        _validate(
            [amtool, "check-config", str(staging / "alertmanager.yml")],
            "amtool check-config",
            cfg.monitoring_dir / "alertmanager" / "alertmanager.yml",
        )
    except ConfigError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    target = cfg.config_dir / "alertmanager"
    _install(staging, target, "alertmanager.yml")
    return target / "alertmanager.yml"


def _prometheus_argv(cfg: StackConfig, binary: str) -> list[str]:
    return [
        binary,
        f"--config.file={cfg.config_dir / 'prometheus' / 'prometheus.yml'}",
        f"--storage.tsdb.path={cfg.data_dir / 'prometheus'}",
        f"--storage.tsdb.retention.time={backfill.RETENTION_DAYS}d",
        f"--web.listen-address={cfg.address('prometheus')}",
        # The default 1m delays the first notification after a start or reload by a minute.
        "--rules.alert.resend-delay=1s",
        # Alerts link back to their graph with this URL (default: the machine's hostname).
        f"--web.external-url={cfg.url('prometheus')}",
    ]


COMPONENTS: list[Component] = [
    Component(
        name="smtp-sink",
        argv=lambda cfg, py: [
            py,
            "-m",
            "course_lib.sinks",
            "smtp",
            "--host",
            HOST,
            "--port",
            str(cfg.port("smtp-sink")),
            "--out",
            str(cfg.sink_dir),
        ],
        health_path=None,
    ),
    Component(
        name="webhook-sink",
        argv=lambda cfg, py: [
            py,
            "-m",
            "course_lib.sinks",
            "webhook",
            "--host",
            HOST,
            "--port",
            str(cfg.port("webhook-sink")),
            "--out",
            str(cfg.sink_dir),
        ],
        health_path="/healthz",
    ),
    Component(
        name="alertmanager",
        binaries=("prometheus-alertmanager", "alertmanager"),
        argv=lambda cfg, bin: [
            bin,
            f"--config.file={cfg.config_dir / 'alertmanager' / 'alertmanager.yml'}",
            f"--storage.path={cfg.data_dir / 'alertmanager'}",
            f"--web.listen-address={cfg.address('alertmanager')}",
            "--cluster.listen-address=",  # a single instance: no gossip port
            # Notifications link to silences with this URL (default: the machine's hostname).
            f"--web.external-url={cfg.url('alertmanager')}",
        ],
        job="alertmanager",
        prepare=_prepare_alertmanager,
        reloadable=True,
    ),
    Component(
        name="pushgateway",
        binaries=("prometheus-pushgateway", "pushgateway"),
        argv=lambda cfg, bin: [bin, f"--web.listen-address={cfg.address('pushgateway')}"],
        job="pushgateway",
    ),
    Component(
        name="service",
        argv=lambda cfg, py: [
            py,
            "-m",
            "course_lib.service",
            "--host",
            HOST,
            "--port",
            str(cfg.port("service")),
            "--data-dir",
            str(cfg.data_dir / "service"),
        ],
        health_path="/healthz",
        job="vrewcraft-backend",
        enabled=lambda cfg: cfg.service,
    ),
    Component(
        name="prometheus",
        binaries=("prometheus",),
        argv=_prometheus_argv,
        job="prometheus",
        prepare=_prepare_prometheus,
        reloadable=True,
    ),
    Component(
        name="traffic",
        argv=lambda cfg, py: [
            py,
            "-m",
            "course_lib.traffic",
            "--target",
            cfg.url("service"),
            "--rate",
            str(cfg.traffic_rate),
            "--duration",
            "0",
            "--quiet",
        ],
        has_port=False,
        health_path=None,
        enabled=lambda cfg: cfg.service and cfg.traffic,
        after=("service",),
    ),
]


def component(name: str) -> Component:
    """Return the component called ``name``."""
    for comp in COMPONENTS:
        if comp.name == name:
            return comp
    raise KeyError(
        f"No stack component {name!r}; choose one of " + ", ".join(c.name for c in COMPONENTS)
    )


def _resolve_binary(comp: Component) -> str:
    # Python components run on this interpreter, so they always find course_lib.
    return sys.executable if not comp.binaries else (supervisor.find_binary(comp.binaries) or "")


# --- the Stack handle -------------------------------------------------------------------------


@dataclass
class Stack:
    """The URLs of a running stack, and queries against its Prometheus.

    >>> stack.query('up{job="prometheus"}')["value"].tolist()
    [1.0]
    """

    config: StackConfig
    started: list[str] = field(default_factory=list)

    @property
    def prometheus_url(self) -> str:
        return self.config.url("prometheus")

    @property
    def alertmanager_url(self) -> str:
        return self.config.url("alertmanager")

    @property
    def pushgateway_url(self) -> str:
        return self.config.url("pushgateway")

    @property
    def service_url(self) -> str:
        return self.config.url("service")

    def query(self, promql: str, time: float | None = None):
        """Evaluate an instant query; return a DataFrame (labels, timestamp, value)."""
        from course_lib import prom

        return prom.query(self.prometheus_url, promql, time=time)

    def query_range(self, promql: str, start, end, step: str | float = "5s"):
        """Evaluate a range query; return a long DataFrame (labels, timestamp, value)."""
        from course_lib import prom

        return prom.query_range(self.prometheus_url, promql, start, end, step)

    def wait_for(
        self,
        promql: str,
        predicate: Callable = lambda df: not df.empty,
        timeout: float = 30.0,
        interval: float = 0.5,
    ):
        """Poll ``promql`` until ``predicate(df)`` holds; return that DataFrame.

        >>> stack.wait_for('up{job="pushgateway"} == 1')["value"].tolist()
        [1.0]
        """
        from course_lib import prom

        return prom.wait_for(self.prometheus_url, promql, predicate, timeout, interval)

    def history_window(self):
        """Return where this stack's day of history lies (a ``backfill.HistoryWindow``).

        >>> day = stack.history_window()                                # doctest: +SKIP
        >>> stack.query("up", time=day.at_event("thumbnail_incident"))  # doctest: +SKIP
        """
        day = backfill.window(self.config)
        if day is None:
            raise StackError(
                "this stack has no day of history "
                + (
                    "(it is external: COURSE_PROMETHEUS_URL)"
                    if self.config.external
                    else "(COURSE_HISTORY=0, or no free 24 h in its TSDB); "
                    "`make clean && make up` gives a fresh stack with one"
                )
                + "."
            )
        if day.version != history.VERSION:
            raise StackError(
                f"this stack's day of history ({day.version or 'unversioned'}) was written by an "
                f"older version of the course than the one notebooks expect ({history.VERSION}). "
                "`make clean && make up` writes the current day (it discards this stack's data)."
            )
        return day

    def reload(self, name: str = "prometheus") -> None:
        """Re-render ``name``'s configuration from monitoring/ and make it reload (SIGHUP)."""
        if self.config.external:
            raise StackError(f"{name} is external ({self.prometheus_url}); reload it yourself.")
        comp = component(name)
        if comp.prepare is not None:
            comp.prepare(self.config, _resolve_binary(comp))
        record = supervisor.read_pid(comp.pid_file(self.config))
        proc = record.process() if record else None
        if proc is None:
            raise StackError(f"{name} is not running; start the stack with `make up`.")
        proc.send_signal(signal.SIGHUP)


# --- up / down / status -----------------------------------------------------------------------


def _enabled(cfg: StackConfig, names: Iterable[str] | None = None) -> list[Component]:
    wanted = set(names) if names is not None else None
    return [c for c in COMPONENTS if c.enabled(cfg) and (wanted is None or c.name in wanted)]


def _healthy(comp: Component, cfg: StackConfig) -> bool:
    url = comp.health_url(cfg)
    if url:
        return supervisor.http_ok(url)
    if comp.has_port:
        return supervisor.tcp_ok(comp.port(cfg))
    return True  # no port: alive is healthy


def up(cfg: StackConfig | None = None, timeout: float = 60.0, progress: Progress = _quiet) -> Stack:
    """Start every enabled component (reusing healthy ones) and wait until all targets are up."""
    cfg = cfg or StackConfig.from_env()
    if cfg.external:
        return _use_external(cfg, min(timeout, 10.0), progress)
    t0 = time.monotonic()
    comps = _enabled(cfg)
    binaries = supervisor.require_binaries({c.name: c.binaries for c in comps if c.binaries})
    for d in (cfg.log_dir, cfg.pid_dir, cfg.config_dir, cfg.data_dir, cfg.sink_dir):
        d.mkdir(parents=True, exist_ok=True)

    to_start: list[Component] = []
    for comp in comps:
        record = supervisor.read_pid(comp.pid_file(cfg))
        proc = record.process() if record else None
        if proc is not None:
            continue  # running: reused below once it answers its health check
        stale = record is not None or comp.pid_file(cfg).exists()
        if stale:
            progress(
                f"{comp.name}: removing stale pid file (pid {record.pid if record else '?'} "
                "is gone)"
            )
            comp.pid_file(cfg).unlink(missing_ok=True)
        if comp.has_port:
            port = comp.port(cfg)
            # A process that just died may hold its port for a moment.
            if not supervisor.poll(
                functools.partial(supervisor.port_is_free, port),
                timeout=2.0 if stale else 0.0,
            ):
                raise supervisor.port_in_use_error(comp.name, port, port_env_var(comp.name))
        to_start.append(comp)

    for comp in comps:
        if comp.prepare is None:
            continue
        config_file = comp.prepare(cfg, binaries.get(comp.name, sys.executable))
        if comp not in to_start and comp.reloadable:
            _reload_if_changed(comp, cfg, config_file)

    # The day of history goes in before Prometheus' first start: blocks present at start
    # are loaded at once (a TSDB that already holds data gets it after the start, below).
    if any(c.name == "prometheus" for c in to_start):
        backfill.place_before_start(cfg, progress)

    procs: dict[str, subprocess.Popen] = {}
    waited: set[str] = set()
    for comp in to_start:
        for dep in comp.after:
            if dep not in waited and any(c.name == dep for c in comps):
                _wait_healthy(component(dep), cfg, procs.get(dep), timeout, progress)
                waited.add(dep)
        argv = comp.argv(cfg, binaries.get(comp.name, sys.executable))
        procs[comp.name] = supervisor.start_process(argv, comp.log_file(cfg), cwd=cfg.state_dir)
        supervisor.write_pid(comp.pid_file(cfg), procs[comp.name])
        progress(
            f"{comp.name}: started pid {procs[comp.name].pid}"
            + (f" on {cfg.address(comp.name)}" if comp.has_port else "")
        )

    for comp in comps:
        if comp.name not in waited:
            _wait_healthy(comp, cfg, procs.get(comp.name), timeout, progress)

    # A scrape only counts if it happened after both Prometheus and the target started:
    # samples left in the TSDB by an earlier run must not pass for a fresh scrape.
    jobs = {c.job: _start_time(c, cfg) for c in comps if c.job}
    if jobs:
        prometheus_start = _start_time(component("prometheus"), cfg)
        jobs = {job: max(start, prometheus_start) for job, start in jobs.items()}
        _wait_for_targets(cfg, jobs, timeout, progress)
    if backfill.needs_history(cfg) and any(c.name == "prometheus" for c in comps):
        backfill.place_after_start(cfg, progress)
    # The recording rules' output over that day, as if they had run all day (once).
    if any(c.name == "prometheus" for c in comps):
        recorded_history.place(cfg, progress)
    progress(f"stack ready in {time.monotonic() - t0:.1f}s: {cfg.url('prometheus')}")
    return Stack(cfg, started=[c.name for c in to_start])


def _reload_if_changed(comp: Component, cfg: StackConfig, config_file: Path | None) -> None:
    record = supervisor.read_pid(comp.pid_file(cfg))
    proc = record.process() if record else None
    if proc is None or config_file is None:
        return
    if config_file.stat().st_mtime > proc.create_time():
        proc.send_signal(signal.SIGHUP)


def _wait_healthy(
    comp: Component,
    cfg: StackConfig,
    popen: subprocess.Popen | None,
    timeout: float,
    progress: Progress,
) -> None:
    record = supervisor.read_pid(comp.pid_file(cfg))

    def alive() -> bool:
        if popen is not None:
            return popen.poll() is None
        return record is not None and record.process() is not None

    if supervisor.poll(lambda: _healthy(comp, cfg), timeout, alive=alive) and alive():
        return
    tail = supervisor.log_tail(comp.log_file(cfg))
    if not alive():
        code = popen.poll() if popen is not None else None
        status = f"exited with code {code}" if code is not None else "is not running"
        raise NotReadyError(
            f"{comp.name} {status} while starting. Last lines of {comp.log_file(cfg)}:\n{tail}"
        )
    raise NotReadyError(
        f"{comp.name} did not become ready within {timeout:.0f}s "
        f"({comp.health_url(cfg) or 'port ' + str(comp.port(cfg))}). "
        f"Last lines of {comp.log_file(cfg)}:\n{tail}"
    )


def _start_time(comp: Component, cfg: StackConfig) -> float:
    record = supervisor.read_pid(comp.pid_file(cfg))
    return record.create_time if record else 0.0


def _wait_for_targets(
    cfg: StackConfig, jobs: dict[str, float], timeout: float, progress: Progress
) -> None:
    """Poll until every scrape job has reported up == 1 in a scrape after its given start time."""
    from course_lib import prom

    pending = set(jobs)

    def scraped() -> bool:
        try:
            # timestamp() of a plain selector is the sample's own time; of an expression
            # such as `up == 1` it would be the evaluation time, which proves nothing.
            df = prom.query(cfg.url("prometheus"), "timestamp(up) and on (job, instance) up == 1")
        except prom.PromQLError:
            return False
        if "job" in df:
            pending.difference_update(
                job
                for job, ts in zip(df["job"], df["value"], strict=True)
                if ts >= jobs.get(job, float("inf"))
            )
        return not pending

    if not supervisor.poll(scraped, timeout, interval=0.2):
        raise NotReadyError(
            f"Prometheus has not scraped {', '.join(sorted(pending))} successfully within "
            f"{timeout:.0f}s. Target errors: {_target_errors(cfg)}. "
            f"See {cfg.url('prometheus')}/classic/targets and `python -m course_lib logs`."
        )
    progress("first scrape done: every target reports up == 1")


def _target_errors(cfg: StackConfig) -> str:
    from course_lib import prom

    try:
        active = prom.targets(cfg.url("prometheus"))
    except prom.PromQLError as exc:
        return f"(could not read targets: {exc})"
    errors = [
        f"{t['labels'].get('job')}: {t.get('lastError') or t.get('health')}"
        for t in active
        if t.get("health") != "up"
    ]
    return "; ".join(errors) or "none reported yet"


def _use_external(cfg: StackConfig, timeout: float, progress: Progress) -> Stack:
    url = cfg.url("prometheus")
    if not supervisor.poll(lambda: supervisor.http_ok(f"{url}/-/ready"), timeout=timeout):
        raise NotReadyError(
            f"COURSE_PROMETHEUS_URL={url} does not answer {url}/-/ready. "
            "Start that stack (e.g. `docker compose up -d`) or unset the variable "
            "to use the local one."
        )
    progress(f"using the external stack at {url}; starting nothing")
    return Stack(cfg)


def down(cfg: StackConfig | None = None, progress: Progress = _quiet) -> list[str]:
    """Stop every component this state directory started; return the names stopped."""
    cfg = cfg or StackConfig.from_env()
    records = {}
    for comp in COMPONENTS:
        record = supervisor.read_pid(comp.pid_file(cfg))
        if record is not None:
            records[comp.name] = record
    stopped = supervisor.stop_processes(list(records.values()))
    for comp in COMPONENTS:
        comp.pid_file(cfg).unlink(missing_ok=True)
    names = [name for name, r in records.items() if r.pid in stopped]
    # Extra processes a notebook started (replicas, more Prometheus servers) share this
    # state directory, so `down` stops them too.
    from course_lib import scale

    names += scale.stop(cfg=cfg)
    progress("stopped " + (", ".join(names) if names else "nothing (no component was running)"))
    return names


@dataclass(frozen=True)
class ComponentStatus:
    """One line of `status`."""

    name: str
    state: str  # healthy | starting | dead | stopped | disabled
    pid: int | None
    address: str | None
    detail: str = ""


def status(cfg: StackConfig | None = None) -> list[ComponentStatus]:
    """Report every component: pid, address and health."""
    cfg = cfg or StackConfig.from_env()
    rows = []
    for comp in COMPONENTS:
        address = cfg.address(comp.name) if comp.has_port else None
        if not comp.enabled(cfg):
            rows.append(ComponentStatus(comp.name, "disabled", None, address))
            continue
        record = supervisor.read_pid(comp.pid_file(cfg))
        if record is None:
            rows.append(ComponentStatus(comp.name, "stopped", None, address))
            continue
        if record.process() is None:
            tail = supervisor.log_tail(comp.log_file(cfg), lines=3).replace("\n", " | ")
            rows.append(
                ComponentStatus(
                    comp.name, "dead", record.pid, address, f"process exited; last log: {tail}"
                )
            )
            continue
        state = "healthy" if _healthy(comp, cfg) else "starting"
        rows.append(ComponentStatus(comp.name, state, record.pid, address))
    return rows


def format_status(rows: list[ComponentStatus]) -> str:
    """Render status rows as an aligned table."""
    lines = [f"{'component':<14}{'state':<10}{'pid':<9}{'address':<17}detail"]
    for r in rows:
        pid = str(r.pid or "-")
        lines.append(f"{r.name:<14}{r.state:<10}{pid:<9}{r.address or '-':<17}{r.detail}")
    return "\n".join(lines)


def logs(cfg: StackConfig | None = None, name: str | None = None, lines: int = 40) -> str:
    """Return the last ``lines`` log lines of one component, or of all."""
    cfg = cfg or StackConfig.from_env()
    comps = [component(name)] if name else COMPONENTS
    parts = []
    for comp in comps:
        tail = supervisor.log_tail(comp.log_file(cfg), lines)
        parts.append(f"--- {comp.name} ({comp.log_file(cfg)}) ---\n{tail or '(no log yet)'}")
    return "\n".join(parts)


def _history_finding(cfg: StackConfig) -> tuple[str, str]:
    """Say where the day of history is, or why there is none."""
    try:
        day = backfill.window(cfg)
    except backfill.HistoryError as exc:
        return ("error", str(exc))
    if day is None:
        why = "off (COURSE_HISTORY=0)" if not cfg.history else "not written yet; `up` writes it"
        return ("ok", f"day of history: {why}")
    if day.version != history.VERSION:
        return (
            "warn",
            f"day of history {day.version or '(unversioned)'} is outdated (the course expects "
            f"{history.VERSION}): `make clean && make up` writes the current one",
        )
    return (
        "ok",
        f"day of history: {day.datetime(0):%Y-%m-%d %H:%M} → "
        f"{day.datetime(history.DAY):%Y-%m-%d %H:%M} UTC, {day.samples:,} samples",
    )


def doctor(cfg: StackConfig | None = None) -> list[tuple[str, str]]:
    """Diagnose the machine: binaries and versions, ports, stale pid files. Return (level, text)."""
    cfg = cfg or StackConfig.from_env()
    findings = [
        ("ok", f"python {sys.version.split()[0]} at {sys.executable}"),
        ("ok", f"state directory {cfg.state_dir}"),
    ]
    if cfg.external:
        findings.append(("ok", f"external mode: Prometheus at {cfg.url('prometheus')}"))
    findings.append(_history_finding(cfg))
    for binary in supervisor.system_binaries():
        if binary.needed_by != "course":
            continue
        name = min(binary.names, key=len)  # alertmanager, not prometheus-alertmanager
        path = supervisor.find_binary(binary.names)
        if path:
            findings.append(("ok", f"{name}: {path} — {supervisor.binary_version(path)}"))
        else:
            install = supervisor.install_command([binary.names[0]])
            findings.append(("error", f"{name}: not found. Install: {install}"))
    for comp in _enabled(cfg):
        record = supervisor.read_pid(comp.pid_file(cfg))
        proc = record.process() if record else None
        if comp.pid_file(cfg).exists() and proc is None:
            findings.append(
                (
                    "warn",
                    f"{comp.name}: stale pid file {comp.pid_file(cfg)} "
                    "(process gone); `up` will remove it",
                )
            )
        if not comp.has_port:
            continue
        port = comp.port(cfg)
        if supervisor.port_is_free(port):
            findings.append(("ok", f"{comp.name}: port {port} is free"))
        elif proc is not None:
            findings.append(("ok", f"{comp.name}: port {port} held by this stack (pid {proc.pid})"))
        else:
            findings.append(
                (
                    "error",
                    str(supervisor.port_in_use_error(comp.name, port, port_env_var(comp.name))),
                )
            )
    return findings


def ensure_running(cfg: StackConfig | None = None, progress: Progress = print) -> Stack:
    """Return a ready Stack, starting (or reusing) the local one; safe to call on every re-run.

    >>> stack = ensure_running(progress=lambda message: None)
    >>> stack.prometheus_url              # doctest: +ELLIPSIS
    'http://127.0.0.1:...'
    """
    return up(cfg or StackConfig.from_env(), progress=progress)


__all__ = [
    "COMPONENTS",
    "Component",
    "ComponentStatus",
    "ConfigError",
    "NotReadyError",
    "PortInUseError",
    "Stack",
    "StackError",
    "doctor",
    "down",
    "ensure_running",
    "format_status",
    "logs",
    "status",
    "up",
]
