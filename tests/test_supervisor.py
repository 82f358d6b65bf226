import os
import socket
import subprocess
import sys
import time

import pytest

from course_lib import supervisor
from course_lib.supervisor import MissingBinaryError, PidRecord


def test_missing_binary_names_it_and_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingBinaryError) as err:
        supervisor.require_binaries({"alertmanager": ("prometheus-alertmanager", "alertmanager")})
    message = str(err.value)
    assert "prometheus-alertmanager or alertmanager (for alertmanager)" in message
    assert "apt-get install -y --no-install-recommends prometheus-alertmanager" in message


def test_install_command_per_os():
    assert (
        supervisor.install_command(["prometheus-pushgateway", "ffprobe"], system="Darwin")
        == "brew install ffmpeg pushgateway"
    )
    linux = supervisor.install_command(["promtool", "prometheus"], system="Linux")
    assert linux.endswith("apt-get install -y --no-install-recommends prometheus")


def test_port_in_use_names_port_holder_and_remedy():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert not supervisor.port_is_free(port)
        message = str(supervisor.port_in_use_error("prometheus", port, "COURSE_PROMETHEUS_PORT"))
    assert f"Port {port} for prometheus is already in use by pid {os.getpid()}" in message
    assert f"COURSE_PROMETHEUS_PORT={port + 100} make lab" in message
    assert supervisor.port_is_free(port)


@pytest.mark.process
def test_stop_processes_kills_the_whole_group_quickly(tmp_path):
    # A parent that ignores SIGTERM and has a child: both must be gone afterwards.
    script = (
        "import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
        "print('child', 'started', flush=True); time.sleep(60)"
    )
    proc = supervisor.start_process([sys.executable, "-c", script], tmp_path / "p.log")
    record = supervisor.write_pid(tmp_path / "p.pid", proc)
    # The log's header line repeats the command, so look for the joined words only print makes.
    assert supervisor.poll(lambda: "child started" in (tmp_path / "p.log").read_text(), timeout=10)
    import psutil

    children = psutil.Process(proc.pid).children(recursive=True)
    assert children
    t0 = time.monotonic()
    assert supervisor.stop_processes([record], grace=0.5) == [proc.pid]
    assert time.monotonic() - t0 < 2.0
    proc.wait(timeout=5)
    assert supervisor.poll(
        lambda: not any(c.is_running() and c.status() != "zombie" for c in children), timeout=3
    )


@pytest.mark.process
def test_pid_record_detects_recycled_pid(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        record = supervisor.write_pid(tmp_path / "x.pid", proc)
        assert supervisor.read_pid(tmp_path / "x.pid") == record
        assert record.process() is not None
        impostor = PidRecord(record.pid, record.create_time - 1000, record.argv)
        assert impostor.process() is None
    finally:
        proc.kill()
        proc.wait()
    assert record.process() is None


def test_unreadable_pid_file_reads_as_none(tmp_path):
    (tmp_path / "bad.pid").write_text("not json")
    assert supervisor.read_pid(tmp_path / "bad.pid") is None
    assert supervisor.read_pid(tmp_path / "missing.pid") is None


def test_log_tail_and_poll(tmp_path):
    log = tmp_path / "a.log"
    log.write_text("\n".join(f"line {i}" for i in range(100)))
    assert supervisor.log_tail(log, 2) == "line 98\nline 99"
    assert supervisor.log_tail(tmp_path / "none.log") == ""
    assert supervisor.poll(lambda: False, timeout=0.1) is False
    assert supervisor.poll(lambda: False, timeout=10, alive=lambda: False) is False


@pytest.mark.process
def test_binary_version_reads_stderr_or_stdout():
    assert "Python" in supervisor.binary_version(sys.executable)


@pytest.mark.process
def test_stop_child_terminates_or_kills_and_returns_the_exit_code():
    polite = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    assert supervisor.stop_child(polite, timeout=5) == -15
    stubborn = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, time; "
            "signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('armed', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert stubborn.stdout.readline().strip() == "armed"  # the handler is in place
    assert supervisor.stop_child(stubborn, timeout=0.5) == -9
    stubborn.stdout.close()
