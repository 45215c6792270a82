"""Shared fixtures for the socket tests.

* ``backend``: parametrized ["io_uring", "epoll"].  A test that asks for it
  has its body run in a fresh thread that first calls
  ``zmtp._zmtp._set_backend(name)``, so every zmtp call that waits from that
  thread (and from threads it starts) opens a backend of that kind.  A
  thread's backend is cached once opened, hence the fresh thread.
* ``ctx`` / ``zctx``: a zmtp and a pyzmq Context whose sockets default to
  RCVTIMEO/SNDTIMEO of TIMEOUT_MS (a bug fails instead of hanging); both are
  destroyed with linger=0.
* ``spawn``: run a callable in a fresh helper thread; its exception (if not
  collected with ``.result()``) fails the test at teardown.
* an autouse guard dumps every thread's traceback (and exits) when a test
  hangs for more than HANG_S seconds.
"""

from __future__ import annotations

import faulthandler
import os
import sys
import threading
import time
import traceback
from typing import Any, Callable, List, Optional

import pytest

import zmtp
from zmtp import _zmtp

try:
    import zmq
except ImportError:  # pragma: no cover - pyzmq is a test dependency
    zmq = None

# The test modules import their shared helpers (tests/helpers.py) by name,
# whatever pytest's import mode (cibuildwheel runs --import-mode=importlib).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from helpers import TIMEOUT_MS  # noqa: E402

HANG_S = 60
BACKENDS = ["io_uring", "epoll"]

_DEFAULT_BACKEND = zmtp.backend_info().get("forced", "")


def _probe(name: str) -> Optional[str]:
    """None when `name` can be opened here, else the reason it cannot."""
    try:
        _zmtp._set_backend(name)
    except Exception as exc:  # the kernel refuses io_uring (seccomp, sysctl)
        return str(exc)
    finally:
        try:
            _zmtp._set_backend(_DEFAULT_BACKEND)
        except Exception:
            pass
    return None


_UNAVAILABLE = {name: _probe(name) for name in BACKENDS}


def run_in_backend_thread(name: str, fn: Callable[[], Any], timeout: float = 2 * HANG_S) -> Any:
    """Run fn() in a fresh thread whose zmtp backend is `name`; return its
    value or raise its exception here."""
    out: dict = {}

    def target() -> None:
        try:
            _zmtp._set_backend(name)
            out["value"] = fn()
        except BaseException as exc:  # propagate everything, also skip/xfail
            out["error"] = exc

    t = threading.Thread(target=target, name=f"zmtp-{name}", daemon=True)
    t.start()
    try:
        t.join(timeout)
    finally:
        try:
            _zmtp._set_backend(_DEFAULT_BACKEND)
        except Exception:
            pass
    if t.is_alive():
        raise TimeoutError(f"test body still running after {timeout} s in backend thread {name}")
    if "error" in out:
        raise out["error"]
    return out.get("value")


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    """The backend name; the test body runs in a thread using it."""
    name = request.param
    if _UNAVAILABLE[name] is not None:
        pytest.skip(f"{name} unavailable: {_UNAVAILABLE[name]}")
    return name


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    """Run the body of a test that uses `backend` in a backend thread."""
    if "backend" not in pyfuncitem.fixturenames:
        return None
    funcargs = pyfuncitem.funcargs
    testargs = {arg: funcargs[arg] for arg in pyfuncitem._fixtureinfo.argnames}
    run_in_backend_thread(funcargs["backend"], lambda: pyfuncitem.obj(**testargs))
    return True


@pytest.fixture(autouse=True)
def _hang_guard():
    """A test that hangs dumps every thread's stack and ends the run; a test
    that leaves a non-daemon thread running fails, naming the thread and
    where it is stuck (at exit the worker would wait for it forever)."""
    before = set(threading.enumerate())
    faulthandler.dump_traceback_later(HANG_S, exit=True, file=sys.__stderr__)
    yield
    faulthandler.cancel_dump_traceback_later()  # the wait below is bounded
    leaked = _leaked_threads(before, deadline_s=HANG_S / 2)
    if leaked:
        pytest.fail("the test left non-daemon threads running:\n" + leaked, pytrace=False)


def _leaked_threads(before: set, deadline_s: float) -> str:
    """The non-daemon threads started since `before` that do not end within
    `deadline_s`, with their stacks ("" when none)."""
    deadline = time.monotonic() + deadline_s
    stuck = []
    for t in threading.enumerate():
        if t in before or t.daemon or t is threading.current_thread():
            continue
        t.join(max(0.0, deadline - time.monotonic()))
        if t.is_alive():
            stuck.append(t)
    frames = sys._current_frames()
    return "".join(
        f"{t.name} (ident {t.ident}):\n"
        + "".join(traceback.format_stack(frames[t.ident])) if t.ident in frames else f"{t.name}\n"
        for t in stuck)


def pytest_unconfigure(config):
    """A thread still running when the run ends would keep this process (an
    xdist worker) from exiting: after HANG_S seconds dump every stack and
    exit instead of hanging the whole run."""
    faulthandler.dump_traceback_later(HANG_S, exit=True, file=sys.__stderr__)


class _KeepingZmtpContext(zmtp.Context):
    """Keeps its sockets alive until destroy(), as _KeepingContext below
    does for pyzmq: a zmtp socket collected unclosed warns too
    (ResourceWarning, an error under this suite's filterwarnings)."""

    def socket(self, *args: Any, **kwargs: Any):
        s = super().socket(*args, **kwargs)
        kept = self.__dict__.setdefault("_kept", [])
        if len(kept) >= 256:  # a test that makes thousands closes them: keep only the open ones
            kept[:] = [k for k in kept if not k.closed]
        kept.append(s)
        return s


@pytest.fixture
def ctx():
    """A zmtp Context; its sockets get RCVTIMEO/SNDTIMEO = TIMEOUT_MS."""
    c = _KeepingZmtpContext()
    c.setsockopt(zmtp.RCVTIMEO, TIMEOUT_MS)
    c.setsockopt(zmtp.SNDTIMEO, TIMEOUT_MS)
    yield c
    c.destroy(linger=0)


if zmq is not None:

    class _KeepingContext(zmq.Context):
        """Keeps its sockets alive until destroy(): a pyzmq socket collected
        unclosed warns (ResourceWarning, an error under this suite's
        filterwarnings)."""

        _kept: Optional[list] = None

        def socket(self, *args: Any, **kwargs: Any):
            s = super().socket(*args, **kwargs)
            if self._kept is None:
                self._kept = []
            self._kept.append(s)
            return s


@pytest.fixture
def zctx():
    """A pyzmq Context (the reference peer), destroyed with linger=0."""
    if zmq is None:
        pytest.skip("pyzmq is not installed")
    c = _KeepingContext()
    c.setsockopt(zmq.RCVTIMEO, TIMEOUT_MS)
    c.setsockopt(zmq.SNDTIMEO, TIMEOUT_MS)
    c.setsockopt(zmq.LINGER, 0)
    yield c
    c.destroy(linger=0)


class Task:
    """A callable running in its own thread (see the ``spawn`` fixture)."""

    def __init__(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
        self._out: dict = {}
        self.collected = False

        def target() -> None:
            try:
                self._out["value"] = fn(*args, **kwargs)
            except BaseException as exc:
                self._out["error"] = exc

        self.thread = threading.Thread(target=target, name=f"helper-{getattr(fn, '__name__', '?')}", daemon=True)
        self.thread.start()

    def done(self) -> bool:
        return not self.thread.is_alive()

    def result(self, timeout: float = TIMEOUT_MS / 1000 * 2) -> Any:
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise TimeoutError(f"helper thread {self.thread.name} still running after {timeout} s")
        self.collected = True
        if "error" in self._out:
            raise self._out["error"]
        return self._out.get("value")


@pytest.fixture
def spawn():
    """spawn(fn, *args, **kwargs) -> Task, in a fresh thread (a fresh thread
    opens a fresh zmtp backend, of the kind the test's thread set)."""
    tasks: List[Task] = []

    def _spawn(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Task:
        t = Task(fn, args, kwargs)
        tasks.append(t)
        return t

    yield _spawn
    errors = []
    for t in tasks:
        t.thread.join(2 * TIMEOUT_MS / 1000)
        if t.thread.is_alive():
            errors.append(f"helper thread {t.thread.name} did not finish")
        elif not t.collected and "error" in t._out:
            errors.append(f"helper thread {t.thread.name} failed: {t._out['error']!r}")
    if errors:
        pytest.fail("; ".join(errors))
