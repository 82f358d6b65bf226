"""Where the local stack lives: state directory, ports and external URLs, read from the environment.

Two stacks can run side by side: a learner's ``make lab`` stack (default ports,
``.course/``) and the test suite's isolated one (``COURSE_PORT_OFFSET=10000``,
``.course-test/``). Every setting is an environment variable so that a notebook
kernel started by papermill inherits the test stack's settings.

>>> cfg = StackConfig.from_env({"COURSE_PORT_OFFSET": "10000", "COURSE_STATE_DIR": "/tmp/x"})
>>> cfg.port("prometheus"), cfg.url("prometheus")
(19090, 'http://127.0.0.1:19090')
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"

#: Default port of every component of the lab stack. The test stack adds COURSE_PORT_OFFSET.
DEFAULT_PORTS: dict[str, int] = {
    "prometheus": 9090,
    "pushgateway": 9091,
    "alertmanager": 9093,
    "service": 3001,
    "smtp-sink": 2525,
    "webhook-sink": 5001,
    # Extra processes of the production-patterns notebook (course_lib.scale), started
    # only when that notebook asks for them.
    "replica-1": 3011,
    "replica-2": 3012,
    "replica-3": 3013,
    "scratch-target": 9190,
    "prometheus-scratch": 9191,
    "prometheus-global": 9192,
    "prometheus-ha-a": 9193,
    "prometheus-ha-b": 9194,
    "victoria-metrics": 8428,
}

#: Environment variables that point at an already running stack (e.g. docker compose).
EXTERNAL_URL_VARS: dict[str, str] = {
    "prometheus": "COURSE_PROMETHEUS_URL",
    "alertmanager": "COURSE_ALERTMANAGER_URL",
    "pushgateway": "COURSE_PUSHGATEWAY_URL",
    "service": "COURSE_SERVICE_URL",
}


def repo_root() -> Path:
    """Return the course checkout this package was installed from (editable install)."""
    return Path(__file__).resolve().parent.parent


def port_env_var(component: str) -> str:
    """Return the variable that overrides one component's port, e.g. COURSE_PROMETHEUS_PORT."""
    return "COURSE_" + component.upper().replace("-", "_") + "_PORT"


@dataclass(frozen=True)
class StackConfig:
    """Settings of one stack instance (ports, state directory, external URLs).

    >>> StackConfig.from_env({}).port("service")
    3001
    """

    state_dir: Path
    ports: Mapping[str, int]
    external_urls: Mapping[str, str] = field(default_factory=dict)
    service: bool = True
    traffic: bool = True
    traffic_rate: float = 5.0
    history: bool = True  # backfill the day of VrewCraft on first start (COURSE_HISTORY=0: off)
    monitoring_dir: Path = field(default_factory=lambda: repo_root() / "monitoring")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StackConfig:
        """Read the settings from ``env`` (default: ``os.environ``)."""
        env = os.environ if env is None else env
        offset = _int_setting(env, "COURSE_PORT_OFFSET", "0")
        ports = {}
        for name, default in DEFAULT_PORTS.items():
            ports[name] = _int_setting(env, port_env_var(name), str(default + offset))
        state_dir = Path(env.get("COURSE_STATE_DIR") or repo_root() / ".course").resolve()
        external = {
            name: env[var].rstrip("/") for name, var in EXTERNAL_URL_VARS.items() if env.get(var)
        }
        try:
            traffic_rate = float(env.get("COURSE_TRAFFIC_RATE", "5"))
        except ValueError:
            raise ValueError(
                f"COURSE_TRAFFIC_RATE={env['COURSE_TRAFFIC_RATE']!r} is not a "
                "number of requests per second, e.g. 5."
            ) from None
        monitoring = env.get("COURSE_MONITORING_DIR")
        return cls(
            state_dir=state_dir,
            ports=ports,
            external_urls=external,
            service=_flag(env, "COURSE_SERVICE"),
            traffic=_flag(env, "COURSE_TRAFFIC"),
            traffic_rate=traffic_rate,
            history=_flag(env, "COURSE_HISTORY"),
            **({"monitoring_dir": Path(monitoring).resolve()} if monitoring else {}),
        )

    @property
    def external(self) -> bool:
        """True when COURSE_PROMETHEUS_URL points at a stack someone else runs."""
        return "prometheus" in self.external_urls

    def port(self, component: str) -> int:
        """Return the port ``component`` listens on."""
        return self.ports[component]

    def address(self, component: str) -> str:
        """Return ``host:port`` of ``component``."""
        return f"{HOST}:{self.port(component)}"

    def url(self, component: str) -> str:
        """Return the base URL of ``component`` (external URL when one is configured)."""
        if component in self.external_urls:
            return self.external_urls[component]
        return f"http://{self.address(component)}"

    # Layout of the state directory: everything the stack writes lives below it.
    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def pid_dir(self) -> Path:
        return self.state_dir / "pids"

    @property
    def config_dir(self) -> Path:
        return self.state_dir / "config"

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "data"

    @property
    def sink_dir(self) -> Path:
        return self.state_dir / "sinks"


def _flag(env: Mapping[str, str], var: str) -> bool:
    return env.get(var, "1").strip().lower() not in ("0", "false", "no", "off")


def _int_setting(env: Mapping[str, str], var: str, default: str) -> int:
    raw = env.get(var, default)
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(
            f"{var}={raw!r} is not a whole number; set it to a port such as {default}, or unset it."
        ) from None
    if not 0 <= value <= 65535:
        raise ValueError(f"{var}={value} is outside 0-65535; choose a free TCP port.")
    return value
