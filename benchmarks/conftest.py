"""Benchmarks (pytest-benchmark), kept out of the unit test run.

Run:  python -m pytest benchmarks --benchmark-only -p no:cacheprovider -o python_files=bench_*.py

pyproject's ``testpaths`` is ["tests"] and its ``python_files`` the default
``test_*.py``, so ``python -m pytest`` never collects ``bench_*.py``; here
they are collected even without ``-o python_files=bench_*.py``.

Fixtures: ``worker(backend)`` runs callables in one long-lived thread whose
zmtp backend is ``backend`` (a thread's backend is fixed once it is opened,
so every benchmark gets a fresh thread); ``procs`` starts helper processes
and ends them after the test.
"""

from __future__ import annotations

import fnmatch
import queue
import subprocess
import threading
from typing import Any, Callable, List

import pytest


def pytest_collect_file(file_path, parent):
    if file_path.suffix != ".py" or not file_path.name.startswith("bench_"):
        return None
    if any(fnmatch.fnmatch(file_path.name, pat) for pat in parent.config.getini("python_files")):
        return None  # already collected as a test module (-o python_files=bench_*.py)
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
        box: dict = {}
        done = threading.Event()
        self._jobs.put((fn, box, done))
        done.wait()
        if "error" in box:
            raise box["error"]
        return box.get("value")

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
