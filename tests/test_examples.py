"""Run each guide-style example in examples/ as a user would, in processes;
then each again over inproc://, its parts in threads of one process sharing
one zmtp Context (every example's main() takes ``context=``)."""

from __future__ import annotations

import json
import os
import pathlib
import re
import socket
import subprocess
import sys
import textwrap

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"
BACKENDS = ["io_uring", "epoll"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, timeout: float = 10.0) -> None:
    """Until something accepts connections on 127.0.0.1:port."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def start(backend: str, script: str, *args: str) -> subprocess.Popen:
    env = dict(os.environ, ZMTP_BACKEND=backend)
    return subprocess.Popen(
        [sys.executable, str(EXAMPLES / script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
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


@pytest.fixture(params=BACKENDS)
def example_backend(request) -> str:
    from zmtp import _zmtp

    usable, reason = _zmtp._probe_backend(request.param)
    if not usable:  # the kernel refuses io_uring here
        pytest.skip(f"{request.param} unavailable: {reason}")
    return request.param


def test_hello_world(example_backend, tmp_path):
    backend = example_backend
    for endpoint in (f"tcp://127.0.0.1:{free_port()}", f"ipc://{tmp_path}/hw"):
        server = start(backend, "hwserver.py", endpoint, "5")
        client = start(backend, "hwclient.py", endpoint, "5")
        out = finish(client)
        assert out.count("World") == 5
        assert finish(server).count("Received request: b'Hello'") == 5


def test_async_server(example_backend):
    backend = example_backend
    out = finish(start(backend, "asyncsrv.py", "3", "6"))
    assert out.count("replies (expected 12)") == 3
    for i in range(3):
        assert f"client-{i}: 12 replies" in out


def test_pipeline(example_backend):
    backend = example_backend
    sink_port = free_port()
    vent, sink = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{sink_port}"
    sinker = start(backend, "tasksink.py", sink)
    # The guide starts the sink first; the count must reach it before results.
    wait_listening(sink_port)
    workers = [start(backend, "taskwork.py", vent, sink, "2000") for _ in range(2)]
    ventilator = start(backend, "taskvent.py", vent, sink, "40")
    assert "Total expected cost" in finish(ventilator)
    assert "Collected 40 results" in finish(sinker)
    done = [int(finish(w).split("did ")[1].split()[0]) for w in workers]
    assert sum(done) == 40


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


# ====================================================== inproc, in threads

#: Runs examples' main()s in threads of this one process, all with one
#: Context: argv[1] is the examples folder, argv[2] a JSON list of
#: [module, [args...]], started in that order.  Exits 1 if one raised, returned
#: non-zero or did not finish.
INPROC_DRIVER = textwrap.dedent("""
    import importlib, json, sys, threading, traceback
    sys.path.insert(0, sys.argv[1])
    import zmtp
    roles = json.loads(sys.argv[2])
    for module, _ in roles:
        importlib.import_module(module)  # before the threads: no import races
    print("backend", zmtp.backend_name(), flush=True)
    ctx = zmtp.Context()
    failed = []

    def run(module, args):
        try:
            rc = importlib.import_module(module).main(*args, context=ctx)
            if rc:
                failed.append(f"{module}.main returned {rc}")
        except BaseException:
            failed.append(f"{module}: {traceback.format_exc()}")

    threads = [threading.Thread(target=run, args=(m, a), name=m) for m, a in roles]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    hung = [t.name for t in threads if t.is_alive()]
    assert not ctx.closed, "an example terminated the shared Context"
    ctx.term()  # wakes a hung main() (ContextTerminated) and closes what is left
    for msg in failed:
        print("FAILED", msg, flush=True)
    if hung:
        print("HUNG", hung, flush=True)
    sys.exit(1 if failed or hung else 0)
""")


def run_inproc(backend: str, *roles) -> str:
    """Run the roles (module, args...) as threads of one process over one
    Context (the backend forced by ZMTP_BACKEND); return its output."""
    env = dict(os.environ, ZMTP_BACKEND=backend)
    proc = subprocess.Popen(
        [sys.executable, "-c", INPROC_DRIVER, str(EXAMPLES), json.dumps([[m, list(a)] for m, *a in roles])],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    out = finish(proc, timeout=90)
    assert f"backend {backend}" in out, out
    return out


@pytest.mark.parametrize("order", ["server_first", "client_first"])
def test_hello_world_inproc(example_backend, order):
    ep = f"inproc://hello-{order}"
    server, client = ("hwserver", ep, 5), ("hwclient", ep, 5)
    out = run_inproc(example_backend, *((server, client) if order == "server_first" else (client, server)))
    assert out.count("Received reply") == 5 and out.count("[ b'World' ]") == 5, out
    assert out.count("Received request: b'Hello'") == 5, out


def test_async_server_inproc(example_backend):
    out = run_inproc(example_backend, ("asyncsrv", 3, 6))
    assert out.count("replies (expected 12)") == 3, out
    for i in range(3):
        assert f"client-{i}: 12 replies" in out, out


def test_pipeline_inproc(example_backend):
    vent, sink = "inproc://taskvent", "inproc://tasksink"
    out = run_inproc(
        example_backend,
        ("tasksink", sink),
        ("taskwork", vent, sink, 2000),
        ("taskwork", vent, sink, 2000),
        ("taskvent", vent, sink, 40),
    )
    assert "Total expected cost" in out, out
    assert "Collected 40 results" in out, out
    done = [int(m) for m in re.findall(r"worker did (\d+) tasks", out)]
    assert len(done) == 2 and sum(done) == 40, out


def test_weather_update_inproc(example_backend):
    ep = "inproc://weather"
    zips = ("10001", "10007")
    # The subscribers first (each subscribes before the server's first
    # update; connect before bind is fine over inproc).
    out = run_inproc(example_backend, *[("wuclient", ep, z, 20) for z in zips], ("wuserver", ep, 20000, 10))
    assert out.count("Collecting updates") == 2, out
    for zipcode in zips:
        m = re.search(rf"Average temperature for zipcode '{zipcode}' was (-?[0-9.]+) F \(20 updates\)", out)
        assert m, out
        assert -80 <= float(m.group(1)) < 135
    assert "Published 20000 updates" in out, out
