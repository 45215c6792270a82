"""The guide's weather update example (examples/wuserver.py, wuclient.py),
run as a user would: in processes, under each backend (ZMTP_BACKEND), over
tcp and ipc."""

from __future__ import annotations

import os
import pathlib
import re
import socket
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(backend: str, script: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(EXAMPLES / script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, ZMTP_BACKEND=backend),
    )


def finish(proc: subprocess.Popen, timeout: float = 60) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise AssertionError(f"{proc.args} timed out:\n{out}")
    assert proc.returncode == 0, f"{proc.args} exited {proc.returncode}:\n{out}"
    return out


@pytest.fixture(params=["io_uring", "epoll"])
def example_backend(request) -> str:
    from zmtp import _zmtp

    usable, reason = _zmtp._probe_backend(request.param)
    if not usable:  # the kernel refuses io_uring here
        pytest.skip(f"{request.param} unavailable: {reason}")
    return request.param


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_weather_update(example_backend, tmp_path, transport):
    backend = example_backend
    endpoint = f"tcp://127.0.0.1:{free_port()}" if transport == "tcp" else f"ipc://{tmp_path}/wu"
    # The subscribers first (they connect, and retry until the server binds):
    # each prints its first line just before connecting.
    clients = {z: start(backend, "wuclient.py", endpoint, z, "20") for z in ("10001", "10007")}
    for client in clients.values():
        assert client.stdout.readline().startswith("Collecting updates")
    server = start(backend, "wuserver.py", endpoint, "100000", "10")
    for zipcode, client in clients.items():
        out = finish(client)
        m = re.search(rf"Average temperature for zipcode '{zipcode}' was (-?[0-9.]+) F \(20 updates\)", out)
        assert m, out
        assert -80 <= float(m.group(1)) < 135
    assert "Published 100000 updates" in finish(server)
