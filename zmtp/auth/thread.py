"""pyzmq's ``zmq.auth.thread``: a ZAP handler answering in a thread of its own.

::

    auth = ThreadAuthenticator(ctx)
    auth.start()
    auth.allow("127.0.0.1")
    auth.configure_curve(domain="*", location=zmtp.auth.CURVE_ALLOW_ANY)
    ...
    auth.stop()

The thread polls the ZAP socket and a PAIR pipe (``TERMINATE`` ends it)
with a blocking :class:`zmtp.Poller`, and runs each request's coroutine
on an event loop of its own (so an asynchronous credentials callback
works, as in pyzmq).  Policies may be changed while it runs, as pyzmq.

Layering: imports ``zmtp`` and ``zmtp.auth.base``.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, List, Optional

import zmtp
from zmtp.auth.base import Authenticator

__all__ = ["AuthenticationThread", "ThreadAuthenticator"]


def _gone(exc: BaseException) -> bool:
    """The context was terminated or the socket closed under the thread."""
    return isinstance(exc, zmtp.ContextTerminated) or (
        isinstance(exc, zmtp.ZMQError) and exc.errno in (zmtp.ETERM, zmtp.ENOTSOCK))


class AuthenticationThread(threading.Thread):
    """The thread a :class:`ThreadAuthenticator` runs its handler in."""

    def __init__(self, authenticator: Authenticator, pipe: "zmtp.Socket") -> None:
        super().__init__(daemon=True, name="zmtp-auth")
        self.authenticator = authenticator
        self.log = authenticator.log
        self.pipe: Optional[zmtp.Socket] = pipe
        self.started = threading.Event()

    def run(self) -> None:
        """Answer ZAP requests until ``TERMINATE`` arrives on the pipe (or
        the context is terminated)."""
        loop = asyncio.new_event_loop()
        try:
            self._run(loop)
        except zmtp.ZMQError as exc:
            if not _gone(exc):
                raise
        finally:
            if self.pipe is not None:
                self.pipe.close()
                self.pipe = None
            loop.close()

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self.pipe is not None
        zap = self.authenticator.zap_socket
        poller = zmtp.Poller()
        poller.register(self.pipe, zmtp.POLLIN)
        poller.register(zap, zmtp.POLLIN)
        self.started.set()
        while True:
            events = dict(poller.poll())
            if self.pipe in events:
                if self._handle_pipe_message(self.pipe.recv_multipart()):
                    return
            if zap in events:
                loop.run_until_complete(self.authenticator.handle_zap_message(zap.recv_multipart()))

    def _handle_pipe_message(self, msg: List[bytes]) -> bool:
        """True for ``TERMINATE``; anything else is answered ``ERROR``."""
        command = msg[0]
        self.log.debug("auth received API command %r", command)
        if command == b"TERMINATE":
            return True
        self.log.error("Invalid auth command from API: %r", command)
        assert self.pipe is not None
        self.pipe.send(b"ERROR")
        return False


class ThreadAuthenticator(Authenticator):
    """An :class:`~zmtp.auth.Authenticator` answering in a background thread."""

    pipe: Any
    pipe_endpoint: str = ""
    thread: Optional[AuthenticationThread]

    def __init__(self, context: Optional["zmtp.Context"] = None, encoding: str = "utf-8", log: Any = None) -> None:
        super().__init__(context=context, encoding=encoding, log=log)
        self.pipe = None
        self.pipe_endpoint = f"inproc://{id(self)}.inproc"
        self.thread = None

    def start(self) -> None:
        """Bind the ZAP socket and start the thread (RuntimeError when it
        has not started within 10 s)."""
        super().start()
        self.pipe = self.context.socket(zmtp.PAIR, socket_class=zmtp.Socket)
        self.pipe.linger = 1
        self.pipe.bind(self.pipe_endpoint)
        thread_pipe = self.context.socket(zmtp.PAIR, socket_class=zmtp.Socket)
        thread_pipe.linger = 1
        thread_pipe.connect(self.pipe_endpoint)
        self.thread = AuthenticationThread(authenticator=self, pipe=thread_pipe)
        self.thread.start()
        if not self.thread.started.wait(timeout=10):
            raise RuntimeError("Authenticator thread failed to start")

    def stop(self) -> None:
        """Stop the thread (waiting for it) and close the ZAP socket."""
        if self.pipe is not None:
            try:
                if not self.pipe.closed:
                    self.pipe.send(b"TERMINATE")
            except zmtp.ZMQError as exc:  # the context was terminated: the thread ends by itself
                if not _gone(exc):
                    raise
            if self.is_alive():
                assert self.thread is not None
                self.thread.join()
            self.thread = None
            if not self.pipe.closed:
                self.pipe.close()
            self.pipe = None
        super().stop()

    def is_alive(self) -> bool:
        """Is the ZAP thread running?"""
        return bool(self.thread and self.thread.is_alive())

    def __del__(self) -> None:
        try:
            self.stop()
        except Exception:  # at interpreter exit, or a half-built object
            pass
