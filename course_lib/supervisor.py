"""Run local processes with pid files, logs, readiness polling and clear errors.

This module knows nothing about Prometheus; ``course_lib.stack`` describes the
course's components and uses these pieces to start, inspect and stop them.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import psutil

HOST = "127.0.0.1"


class StackError(RuntimeError):
    """Something in the local stack needs the learner's attention; the message says what to do."""


class MissingBinaryError(StackError):
    """A system binary the course runs is not installed."""


class PortInUseError(StackError):
    """Another program already listens on a port a component needs."""


class ConfigError(StackError):
    """promtool or amtool rejected a configuration file."""


class NotReadyError(StackError):
    """A component did not become ready in time, or exited while starting."""


# --- binaries -------------------------------------------------------------------------------

#: The list of system binaries, shared with scripts/install-system-deps.sh.
SYSTEM_PACKAGES_FILE = Path(__file__).with_name("system-packages.txt")


@dataclass(frozen=True)
class SystemBinary:
    """One line of system-packages.txt: a binary and the packages that provide it."""

    names: tuple[str, ...]  # alternative names on PATH, the usual one first
    debian: str
    homebrew: str
    needed_by: str  # "course" (make lab / make test) or "bench"


def system_binaries(path: Path = SYSTEM_PACKAGES_FILE) -> list[SystemBinary]:
    """Read the binary -> package table.

    >>> [b.debian for b in system_binaries() if "alertmanager" in b.names]
    ['prometheus-alertmanager']
    """
    rows = []
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            names, debian, homebrew, needed_by = line.split()
            rows.append(SystemBinary(tuple(names.split("|")), debian, homebrew, needed_by))
    return rows


def _packages(binary: str) -> tuple[str, str]:
    """Return (Debian package, Homebrew formula) of ``binary``; its own name when not listed."""
    for row in system_binaries():
        if binary in row.names:
            return row.debian, row.homebrew
    return binary, binary


def find_binary(candidates: Sequence[str]) -> str | None:
    """Return the path of the first candidate name found on PATH."""
    for name in candidates:
        path = shutil.which(name)
        if path:
            return path
    return None


def install_command(binaries: Sequence[str], system: str | None = None) -> str:
    """Return the shell command that installs ``binaries`` on this OS."""
    system = system or platform.system()
    if system == "Darwin":
        formulas = sorted({_packages(b)[1] for b in binaries})
        return "brew install " + " ".join(formulas)
    packages = sorted({_packages(b)[0] for b in binaries})
    sudo = "" if hasattr(os, "geteuid") and os.geteuid() == 0 else "sudo "
    return f"{sudo}apt-get update && {sudo}apt-get install -y --no-install-recommends " + " ".join(
        packages
    )


def require_binaries(needed: dict[str, Sequence[str]]) -> dict[str, str]:
    """Resolve every ``component -> candidate names``; raise one error naming all missing."""
    found, missing = {}, []
    for component, candidates in needed.items():
        path = find_binary(candidates)
        if path:
            found[component] = path
        else:
            missing.append((component, candidates))
    if missing:
        names = ", ".join(" or ".join(c) + f" (for {comp})" for comp, c in missing)
        cmd = install_command([c[0] for _, c in missing])
        raise MissingBinaryError(
            f"Missing binaries: {names}. Install them with:\n    {cmd}\n"
            "or run `make lab` / `make test`, which install them for you when they can."
        )
    return found


def binary_version(path: str) -> str:
    """Return the first line a binary prints for --version (Go tools print it on stderr)."""
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


# --- ports ----------------------------------------------------------------------------------


def port_is_free(port: int, host: str = HOST) -> bool:
    """Return True when nothing listens on host:port (binds the way Go and uvicorn do)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = HOST) -> int:
    """Return a port nothing listens on, for a process a test or benchmark starts.

    Picked below the ephemeral range, so no outgoing connection takes it meanwhile.

    >>> port_is_free(free_port())
    True
    """
    for port in random.Random().sample(range(21000, 29000), 200):
        if port_is_free(port, host):
            return port
    raise PortInUseError(f"no free port between 21000 and 29000 on {host}")


def port_holder(port: int) -> psutil.Process | None:
    """Return the process listening on ``port``, when this user may see it."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, PermissionError):
        return None
    for conn in connections:
        if (
            conn.status == psutil.CONN_LISTEN
            and conn.laddr
            and conn.laddr.port == port
            and conn.pid
        ):
            try:
                return psutil.Process(conn.pid)
            except psutil.NoSuchProcess:
                return None
    return None


def describe_process(proc: psutil.Process | None) -> str:
    """Return 'pid 123 (cmd line)' or a hint on how to find the holder."""
    if proc is None:
        return "another program"
    try:
        cmd = " ".join(proc.cmdline()) or proc.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        cmd = "unknown command"
    return f"pid {proc.pid} ({cmd[:120]})"


def port_in_use_error(component: str, port: int, env_var: str) -> PortInUseError:
    """Build the error for a taken port: which port, who holds it, how to choose another."""
    holder = describe_process(port_holder(port))
    return PortInUseError(
        f"Port {port} for {component} is already in use by {holder}. "
        f"Stop that program, or give {component} another port, e.g. "
        f"`{env_var}={port + 100} make lab` (or COURSE_PORT_OFFSET=100 to move every port). "
        f"To see who holds it: ss -ltnp 'sport = :{port}'"
    )


# --- processes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PidRecord:
    """What a pid file remembers: enough to tell our process from a recycled pid."""

    pid: int
    create_time: float
    argv: list[str]

    def process(self) -> psutil.Process | None:
        """Return the live process this record describes, or None when it is gone."""
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.create_time) > 1.0:
                return None  # the pid was recycled by an unrelated program
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None


def write_pid(path: Path, proc: subprocess.Popen) -> PidRecord:
    """Record a freshly started process."""
    argv = list(cast(list[str], proc.args))  # start_process passes argv as a list of strings
    record = PidRecord(proc.pid, psutil.Process(proc.pid).create_time(), argv)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record.__dict__))
    return record


def read_pid(path: Path) -> PidRecord | None:
    """Read a pid file; None when absent or unreadable (treated as stale)."""
    try:
        data = json.loads(path.read_text())
        return PidRecord(int(data["pid"]), float(data["create_time"]), list(data["argv"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def start_process(
    argv: list[str], log_path: Path, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """Start ``argv`` in its own session, appending stdout and stderr to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} start: {' '.join(argv)}\n".encode())
        log.flush()
        # A new session lets `down` signal the whole process group, children included.
        return subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )


def stop_processes(records: Sequence[PidRecord], grace: float = 1.5) -> list[int]:
    """SIGTERM each process group, SIGKILL what is left after ``grace`` seconds; return pids."""
    live = [r for r in records if r.process() is not None]
    for record in live:
        _signal_group(record.pid, signal.SIGTERM)
    # A zombie has exited; once re-parented, its reaper may take seconds to collect it,
    # so wait for "gone or zombie" rather than psutil.wait_procs' "gone".
    if not poll(lambda: all(r.process() is None for r in live), timeout=grace, interval=0.02):
        for record in live:
            if record.process() is not None:
                _signal_group(record.pid, signal.SIGKILL)
        poll(lambda: all(r.process() is None for r in live), timeout=grace, interval=0.02)
    return [r.pid for r in live]


def stop_child(proc: subprocess.Popen, timeout: float = 10.0) -> int:
    """SIGTERM a child process, SIGKILL it if it outlives ``timeout``; return its exit code."""
    proc.terminate()
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def log_tail(log_path: Path, lines: int = 20) -> str:
    """Return the last ``lines`` lines of a log file (empty string when there is none)."""
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


# --- readiness --------------------------------------------------------------------------------


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """Return True when GET ``url`` answers 2xx."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return 200 <= resp.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def tcp_ok(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    """Return True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def poll(
    check: Callable[[], bool],
    timeout: float,
    interval: float = 0.05,
    alive: Callable[[], bool] = lambda: True,
) -> bool:
    """Call ``check`` until it returns True, ``alive`` turns False, or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if not alive() or time.monotonic() >= deadline:
            return False
        time.sleep(interval)
