"""Benchmarks (pytest-benchmark), kept out of the unit test run.

Run:  python -m pytest benchmarks --benchmark-only -p no:cacheprovider -o python_files=bench_*.py

pyproject's ``testpaths`` is ["tests"] and its ``python_files`` the default
``test_*.py``, so ``python -m pytest`` never collects ``bench_*.py``; here
they are collected even without ``-o python_files=bench_*.py``.

Fixtures: ``worker(backend)`` runs callables in one long-lived thread whose
zmtp backend is ``backend`` (a thread's backend is fixed once it is opened,
so every benchmark gets a fresh thread), waiting for each (``run``) or not
(``submit``); ``procs`` starts helper processes
and ends them after the test; ``perf_session(impl)`` drives one side of a
``python -m zmtp.perf`` scenario with the tool's own peer processes.
"""

from __future__ import annotations

import fnmatch
import queue
import statistics
import subprocess
import threading
from typing import Any, Callable, List, Tuple

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """Benchmarks run in one process: pyproject's addopts ask pytest-xdist
    for workers (for the tests), and pytest-benchmark turns itself off under
    xdist."""
    if hasattr(config.option, "numprocesses"):
        config.option.numprocesses = 0


def pytest_collect_file(file_path, parent):
    if file_path.suffix != ".py" or not file_path.name.startswith("bench_"):
        return None
    if any(fnmatch.fnmatch(file_path.name, pat) for pat in parent.config.getini("python_files")):
        return None  # already collected as a test module (-o python_files=bench_*.py)
    if parent.session.isinitpath(file_path):
        return None  # named on the command line: pytest's python plugin collects it already
    return pytest.Module.from_parent(parent, path=file_path)


class Worker:
    """One thread (with a zmtp backend of its own) running submitted callables."""

    def __init__(self, backend: str) -> None:
        self._jobs: "queue.Queue" = queue.Queue()
        self._backend = backend
        self._thread = threading.Thread(target=self._main, name=f"bench-{backend}", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        if self._backend:
            from zmtp import _zmtp

            _zmtp._set_backend(self._backend)
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, box, done = job
            try:
                box["value"] = fn()
            except BaseException as exc:  # handed to the caller
                box["error"] = exc
            done.set()

    def run(self, fn: Callable[[], Any]) -> Any:
        """fn() in the worker thread; its value (or its exception, raised here)."""
        return self.submit(fn)()

    def submit(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        """Start fn() in the worker thread without waiting; call what this
        returns to wait for its value (or its exception, raised there)."""
        box: dict = {}
        done = threading.Event()
        self._jobs.put((fn, box, done))

        def result() -> Any:
            done.wait()
            if "error" in box:
                raise box["error"]
            return box.get("value")

        return result

    def stop(self) -> None:
        self._jobs.put(None)
        self._thread.join(10)


@pytest.fixture
def worker():
    made: List[Worker] = []

    def make(backend: str) -> Worker:
        w = Worker(backend)
        made.append(w)
        return w

    yield make
    for w in made:
        w.stop()


@pytest.fixture
def procs():
    started: List[subprocess.Popen] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait()
        for f in (p.stdin, p.stdout, p.stderr):
            if f is not None:
                f.close()


class PerfSession:
    """One implementation's side of a ``zmtp.perf`` scenario: its sockets are
    made and used in a worker thread (with the implementation's zmtp backend),
    its peers are ``python -m zmtp.perf _peer`` processes, the same as the
    table's, so benchmarks and ``python -m zmtp.perf`` measure alike."""

    TIMEOUT_S = 60.0

    def __init__(self, impl_name: str, make_worker: Callable[[str], Worker]) -> None:
        from zmtp import perf

        self.perf = perf
        self.impl = perf.impl_by_name(impl_name)
        why = perf.unavailable_reason(self.impl)
        if why is not None:
            pytest.skip(why)
        self.worker = make_worker(self.impl.backend)
        self.peers = perf.Peers(self.TIMEOUT_S)
        self.side = self.worker.run(lambda: perf.open_side(self.impl, self.TIMEOUT_S))

    def peer(self, kind: str, size: int, count: int, rounds: int) -> Tuple[Any, str]:
        """A peer that binds on 127.0.0.1 (echo, pull, router): (peer, its endpoint)."""
        peer = self.peers.start(self.impl, kind, "tcp://127.0.0.1:*", size, count, rounds=rounds)
        return peer, self.line(peer, "ready ").split()[1]

    def connect(self, kind: str, endpoint: str) -> Any:
        """A connected link (req, push, dealer) made in the worker thread."""
        return self.worker.run(lambda: self.side.connect(kind, endpoint))

    def run(self, fn: Callable[[], Any]) -> Any:
        """fn() in the worker thread."""
        return self.worker.run(fn)

    def line(self, peer: Any, prefix: str) -> str:
        """The peer's next line starting with `prefix` (TIMEOUT_S at most)."""
        return self.perf.expect([peer], prefix, self.perf.deadline_in(self.TIMEOUT_S))[0]

    def stream(self, benchmark: Any, sender: str, receiver: str, size: int, messages: int,
               rounds: int) -> float:
        """`rounds` timed rounds (after one warm-up) of `messages` sent here and
        counted by a `receiver` peer; the receiver's median msg/s."""
        peer, endpoint = self.peer(receiver, size, messages, rounds + 1)
        link = self.connect(sender, endpoint)
        payload = b"x" * size
        rates: List[float] = []

        def one_round() -> None:
            self.run(lambda: self.perf.blast(link, payload, messages))
            rates.append(self.perf.result_rate(self.line(peer, "result ")))

        benchmark.pedantic(one_round, rounds=rounds, iterations=1, warmup_rounds=1)
        return statistics.median(rates[1:])  # rates[0]: the warm-up round

    def close(self) -> None:
        self.worker.run(self.side.close)
        self.peers.stop()


@pytest.fixture
def perf_session(worker):
    """perf_session("zmtp-epoll" | "zmtp-io_uring" | "pyzmq" | "raw") -> PerfSession
    (skips when the implementation cannot run here); ended after the test."""
    made: List[PerfSession] = []

    def make(impl_name: str) -> PerfSession:
        session = PerfSession(impl_name, worker)
        made.append(session)
        return session

    yield make
    for session in made:
        session.close()
