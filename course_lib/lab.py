"""JupyterLab for the course: how ``make lab`` starts it, and the stack UIs it proxies.

``python -m course_lib lab`` starts the stack, then JupyterLab on ``notebooks/``
on its own port (``COURSE_JUPYTER_PORT``, default 8888 + ``COURSE_PORT_OFFSET``),
with Jupyter's config, data and runtime directories inside the stack's state
directory, so a learner's other Jupyter settings never change the course.

jupyter-server-proxy reads the ``*_proxy`` functions below through the
``jupyter_serverproxy_servers`` entry points (pyproject.toml), so Prometheus,
Alertmanager, the Pushgateway and the service's API docs open from the
launcher and under the Jupyter server's URL, e.g. ``http://127.0.0.1:8888/prometheus/``
(on a JupyterHub: ``/user/NAME/prometheus/``). The stack runs on its own; the
proxy only forwards to it.

>>> lab_argv(8888, "secret", Path("notebooks"))[:3]
['jupyter', 'lab', '--ip=127.0.0.1']
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from course_lib.config import HOST, StackConfig, _int_setting, repo_root

__all__ = [
    "DEFAULT_JUPYTER_PORT",
    "PROXIED",
    "alertmanager_proxy",
    "jupyter_env",
    "jupyter_port",
    "lab_argv",
    "prometheus_behind_prefix",
    "prometheus_proxy",
    "pushgateway_proxy",
    "service_docs_behind_prefix",
    "service_docs_proxy",
    "ui_url",
]

DEFAULT_JUPYTER_PORT = 8888

#: Name under the Jupyter server URL -> (stack component, path the launcher opens, title).
PROXIED: dict[str, tuple[str, str, str]] = {
    "prometheus": ("prometheus", "prometheus/classic/graph", "Prometheus"),
    "alertmanager": ("alertmanager", "alertmanager/", "Alertmanager"),
    "pushgateway": ("pushgateway", "pushgateway/", "Pushgateway"),
    "vrewcraft-api": ("service", "vrewcraft-api/docs", "VrewCraft API docs"),
}

#: JupyterLab settings every course lab starts with: no news popup, no update check, and
#: every cell of a notebook rendered (so the browser's find and the browser test see them all).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension:notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
}


def jupyter_port(env: Mapping[str, str] | None = None) -> int:
    """Return the port JupyterLab listens on (COURSE_JUPYTER_PORT, else 8888 + offset)."""
    env = os.environ if env is None else env
    offset = _int_setting(env, "COURSE_PORT_OFFSET", "0")
    return _int_setting(env, "COURSE_JUPYTER_PORT", str(DEFAULT_JUPYTER_PORT + offset))


def jupyter_env(cfg: StackConfig, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return ``base`` (default os.environ) with every JUPYTER_* dir inside the state dir."""
    env = dict(os.environ if base is None else base)
    root = cfg.state_dir / "jupyter"
    dirs = {
        "JUPYTER_CONFIG_DIR": root / "config",
        "JUPYTER_DATA_DIR": root / "data",
        "JUPYTER_RUNTIME_DIR": root / "runtime",
        "JUPYTERLAB_SETTINGS_DIR": root / "lab-settings",
        "JUPYTERLAB_WORKSPACES_DIR": root / "lab-workspaces",
    }
    for var, path in dirs.items():
        path.mkdir(parents=True, exist_ok=True)
        env[var] = str(path)
    # The kernel reaches the same stack as the proxy: pass the stack's settings on.
    env.setdefault("COURSE_STATE_DIR", str(cfg.state_dir))
    # Figures keep an HTML/JS copy, so they survive export and reopening untrusted.
    env.setdefault("PLOTLY_RENDERER", "plotly_mimetype+notebook")
    # User settings, as if the learner had set them once in Settings.
    for plugin, values in LAB_SETTINGS.items():
        package, name = plugin.split(":")
        settings_file = dirs["JUPYTERLAB_SETTINGS_DIR"] / package / f"{name}.jupyterlab-settings"
        settings_file.parent.mkdir(parents=True, exist_ok=True)
        settings_file.write_text(json.dumps(values, indent=2))
    return env


def lab_argv(port: int, token: str | None, root_dir: Path) -> list[str]:
    """Return the ``jupyter lab`` command line: 127.0.0.1 only, own port, optional fixed token."""
    argv = [
        "jupyter",
        "lab",
        f"--ip={HOST}",
        f"--port={port}",
        "--port-retries=0",  # a busy port is an error, not a silent move to another one
        "--no-browser",
        f"--ServerApp.root_dir={root_dir}",
    ]
    if token is not None:
        argv.append(f"--IdentityProvider.token={token}")
    if os.geteuid() == 0:
        argv.append("--allow-root")  # containers and CI boxes run as root on purpose
    return argv


def run_lab(cfg: StackConfig, token: str | None = None) -> int:
    """Start the stack, then run JupyterLab in the foreground; return its exit code."""
    from course_lib import stack

    stack.up(cfg, progress=print)
    port = jupyter_port()
    argv = lab_argv(port, token, repo_root() / "notebooks")
    argv[0] = str(Path(sys.executable).with_name("jupyter"))
    env = jupyter_env(cfg)
    print(f"JupyterLab on http://{HOST}:{port}/ — stack UIs under /prometheus/, /alertmanager/, …")
    os.execvpe(argv[0], argv, env)
    return 1  # not reached: exec replaces this process


def ui_url(component: str, path: str = "", base_url: str = "/") -> str:
    """Return a stack UI's path under the Jupyter server, for links in notebooks.

    >>> ui_url("prometheus", "classic/targets")
    '/prometheus/classic/targets'
    """
    names = {comp: name for name, (comp, _, _) in PROXIED.items()}
    if component not in names:
        raise KeyError(f"no proxied UI for {component!r}; choose one of {sorted(names)}")
    return f"/{base_url.strip('/')}/{names[component]}/{path.lstrip('/')}".replace("//", "/")


def _served_prefix(request: Any, path: str) -> str:
    """Return the part of the browser's URL before the proxied path, e.g. ``/prometheus``."""
    full = request.path
    return full[: len(full) - len(path)].rstrip("/") if full.endswith(path) else ""


def prometheus_behind_prefix(body: bytes, headers: Any, prefix: str) -> bytes:
    """Make the classic UI's absolute links, API calls and redirects start with ``prefix``.

    Prometheus writes its own paths as ``/classic/...`` and ``PATH_PREFIX = ""``;
    rewriting them in the proxy keeps the UI working both directly on
    127.0.0.1 and under the Jupyter server (where ``--web.external-url`` would
    break the direct one).

    >>> prometheus_behind_prefix(b'<html><a href="/classic/graph">', {}, "/prometheus")
    b'<html><a href="/prometheus/classic/graph">'
    """
    location = headers.get("Location")
    if location and location.startswith("/") and not location.startswith(prefix + "/"):
        headers["Location"] = prefix + location
    if not prefix or b"<html" not in body[:4096].lower():
        return body
    quoted = prefix.encode()
    body = body.replace(b'"/classic/', b'"' + quoted + b"/classic/")
    return body.replace(b'var PATH_PREFIX = "";', b'var PATH_PREFIX = "' + quoted + b'";')


def _proxy(name: str, **extra: Any) -> dict[str, Any]:
    component, path_info, title = PROXIED[name]
    cfg = StackConfig.from_env()
    icon = Path(__file__).parent / "icons" / f"{name}.svg"
    return {
        "port": cfg.port(component),
        "launcher_entry": {
            "enabled": True,
            "title": title,
            "path_info": path_info,
            "category": "VrewCraft course",
            **({"icon_path": str(icon)} if icon.exists() else {}),
        },
        "new_browser_tab": True,
        **extra,
    }


def prometheus_proxy() -> dict[str, Any]:
    """jupyter-server-proxy entry for Prometheus (its classic UI's links rewritten)."""

    def rewrite(response: Any, request: Any, path: str) -> None:
        prefix = _served_prefix(request, path)
        response.body = prometheus_behind_prefix(response.body, response.headers, prefix)

    return _proxy("prometheus", rewrite_response=rewrite)


def alertmanager_proxy() -> dict[str, Any]:
    """jupyter-server-proxy entry for Alertmanager (its UI uses relative paths)."""
    return _proxy("alertmanager")


def pushgateway_proxy() -> dict[str, Any]:
    """jupyter-server-proxy entry for the Pushgateway (its UI uses relative paths)."""
    return _proxy("pushgateway")


def service_docs_behind_prefix(body: bytes, prefix: str) -> bytes:
    """Point FastAPI's Swagger page at the OpenAPI document under ``prefix``.

    >>> service_docs_behind_prefix(b"<html> url: '/openapi.json',", "/vrewcraft-api")
    b"<html> url: '/vrewcraft-api/openapi.json',"
    """
    if not prefix or b"<html" not in body[:4096].lower():
        return body
    for path in (b"'/openapi.json'", b"'/docs/oauth2-redirect'"):
        body = body.replace(path, b"'" + prefix.encode() + path[1:])
    return body


def service_docs_proxy() -> dict[str, Any]:
    """jupyter-server-proxy entry for the VrewCraft service and its ``/docs`` page."""

    def rewrite(response: Any, request: Any, path: str) -> None:
        response.body = service_docs_behind_prefix(response.body, _served_prefix(request, path))

    return _proxy("vrewcraft-api", rewrite_response=rewrite)


# --- doctor: what a laptop needs for the notebooks and JupyterLab (no browser involved) ----------


def _notebook_imports(notebook_dir: Path) -> dict[str, set[str]]:
    """Map each top-level module the notebooks import to the notebooks that import it."""
    import ast

    found: dict[str, set[str]] = {}
    for path in sorted(notebook_dir.glob("[0-9][0-9]_*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] != "code":
                continue
            code = "".join(cell["source"])
            # IPython magics and shell escapes aren't Python: blank them out before parsing.
            source = "\n".join(
                "" if line.lstrip().startswith(("%", "!")) else line for line in code.splitlines()
            )
            try:
                tree = ast.parse(source)
            except SyntaxError:
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], set()).add(path.name)
    return found


def doctor(cfg: StackConfig, notebook_dir: Path | None = None) -> list[tuple[str, str]]:
    """Check what the notebooks and JupyterLab need; return (level, text) like stack.doctor.

    Covers every module any notebook imports, the python3 kernel, the proxy
    entries of the stack UIs, JupyterLab's port, and the progress file.
    """
    import importlib.util
    from importlib.metadata import entry_points

    from course_lib import progress, supervisor

    notebook_dir = notebook_dir or repo_root() / "notebooks"
    findings: list[tuple[str, str]] = []
    modules = _notebook_imports(notebook_dir)
    for extra in ("jupyterlab", "jupyter_server_proxy", "ipykernel", "papermill"):
        modules.setdefault(extra, {"make lab / make solutions"})
    missing = {m: users for m, users in modules.items() if importlib.util.find_spec(m) is None}
    for module, users in sorted(missing.items()):
        findings.append(
            (
                "error",
                f"python module {module} (used by {', '.join(sorted(users))}) is not installed: "
                "run `make setup`",
            )
        )
    if not missing:
        findings.append(("ok", f"{len(modules)} python modules the notebooks import are installed"))
    # ipykernel installs its kernel spec into the venv: no Jupyter import needed to look.
    kernel = Path(sys.prefix) / "share" / "jupyter" / "kernels" / "python3" / "kernel.json"
    if kernel.exists():
        findings.append(("ok", f"kernel python3: {kernel.parent}"))
    else:
        findings.append(
            ("error", f"no python3 Jupyter kernel ({kernel} missing): run `make setup`")
        )
    proxied = {ep.name for ep in entry_points(group="jupyter_serverproxy_servers")}
    absent = sorted(set(PROXIED) - proxied)
    if absent:
        findings.append(
            ("error", f"stack UIs missing from JupyterLab: {', '.join(absent)} (`make setup`)")
        )
    else:
        findings.append(("ok", f"JupyterLab proxies {', '.join(sorted(PROXIED))}"))
    port = jupyter_port()
    if supervisor.port_is_free(port):
        findings.append(("ok", f"jupyterlab: port {port} is free"))
    else:
        findings.append(
            (
                "warn",
                f"jupyterlab: port {port} is in use (a lab already running?); "
                "set COURSE_JUPYTER_PORT to another port",
            )
        )
    try:
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        probe = cfg.state_dir / ".doctor-write-test"
        probe.write_text("ok")
        probe.unlink()
        findings.append(("ok", f"state directory {cfg.state_dir} is writable"))
    except OSError as exc:
        findings.append(("error", f"state directory {cfg.state_dir} is not writable: {exc}"))
    done = {a.exercise for a in progress.attempts(cfg.state_dir / progress.FILE_NAME) if a.ok}
    findings.append(("ok", f"progress: {len(done)} exercises done so far"))
    return findings
