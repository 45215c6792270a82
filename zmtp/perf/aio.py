"""``zmtp.perf``'s asyncio side: the event loop of a run (asyncio's default
or uvloop), ``AsyncSide`` (zmtp.asyncio or pyzmq's zmq.asyncio sockets of
one Context), the timed coroutines of the ``async_*`` scenarios (ping-pong,
echo, blast, sink) and ``by_deadline``, which turns a run that stops
(a lost message, a peer gone) into a ``TimeoutError`` saying where it was.

The loops await every ``send`` and ``recv``, as users do: a send whose
message the socket takes at once completes without a loop turn, so the
sender runs until SNDHWM is reached and the pipe stays full.

Layering: imports ``zmtp.perf.config`` only (and zmtp.asyncio or
zmq.asyncio by name, at run time); imported by the peers and the
scenarios; never imports them.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from contextlib import contextmanager
from typing import Any, Awaitable, Callable, Iterator, List, Tuple, TypeVar

from zmtp.perf.config import Impl

T = TypeVar("T")


# ---------------------------------------------------------------- the loop of a run


def new_loop(loop: str) -> asyncio.AbstractEventLoop:
    """A new event loop: asyncio's default (``asyncio.new_event_loop()``) or uvloop's."""
    if loop == "uvloop":
        return importlib.import_module("uvloop").new_event_loop()  # type: ignore[no-any-return]
    if loop != "asyncio":
        raise ValueError(f"unknown event loop {loop!r}")
    return asyncio.new_event_loop()


class LoopRunner:
    """One event loop, current in this thread while it lives: ``run(coro)``
    runs a coroutine to its end; ``close()`` ends the loop.  The sockets
    stay open between two ``run`` calls (a sender waits for its peer's
    figures outside the loop, as the blocking drivers do)."""

    def __init__(self, loop: str) -> None:
        self.loop = new_loop(loop)
        asyncio.set_event_loop(self.loop)

    def run(self, coro: Awaitable[T]) -> T:
        return self.loop.run_until_complete(coro)

    def kind(self) -> str:
        """The loop's class, ``module.Name`` (``asyncio.unix_events._UnixSelectorEventLoop``, ``uvloop.Loop``)."""
        cls = type(self.loop)
        return f"{cls.__module__}.{cls.__qualname__}"

    def close(self) -> None:
        try:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            self.loop.close()


# ---------------------------------------------------------------- sockets


class AsyncSide:
    """zmtp.asyncio or zmq.asyncio sockets of one Context for `impl`; make
    it inside a coroutine of the run's loop (the sockets belong to it)."""

    def __init__(self, impl: Impl) -> None:
        if impl.lib not in ("zmtp", "pyzmq"):
            raise ValueError(f"{impl.name} has no asyncio API")
        name = "zmq" if impl.lib == "pyzmq" else "zmtp"
        self.zmq = importlib.import_module(name)
        self.ctx = importlib.import_module(f"{name}.asyncio").Context()
        self.socks: List[Any] = []

    def socket(self, kind: str, linger: int = 0) -> Any:
        """A `kind` ("req", "rep", "push", "pull", "dealer", "router") socket."""
        sock = self.ctx.socket(getattr(self.zmq, kind.upper()))
        sock.linger = linger
        self.socks.append(sock)
        return sock

    def bind(self, kind: str, endpoint: str, linger: int = 0) -> Tuple[Any, str]:
        """A bound `kind` socket and the endpoint it got."""
        sock = self.socket(kind, linger)
        sock.bind(endpoint)
        return sock, sock.last_endpoint.decode()

    def connect(self, kind: str, endpoint: str, linger: int = 0) -> Any:
        """A `kind` socket connected to `endpoint`."""
        sock = self.socket(kind, linger)
        sock.connect(endpoint)
        return sock

    def close(self) -> None:
        """Close the sockets (each with its linger) and end the Context."""
        for sock in self.socks:
            if not sock.closed:
                sock.close()
        self.ctx.term()


async def _open(impl: Impl) -> AsyncSide:
    return AsyncSide(impl)


async def _close(side: AsyncSide) -> None:
    side.close()


@contextmanager
def async_run(loop: str, impl: Impl) -> Iterator[Tuple[LoopRunner, AsyncSide]]:
    """A new event loop `loop` for this thread and an AsyncSide made on it;
    at the end, the sockets are closed on the loop and the loop is ended."""
    runner = LoopRunner(loop)
    try:
        side = runner.run(_open(impl))
        try:
            yield runner, side
        finally:
            runner.run(_close(side))
    finally:
        runner.close()


# ---------------------------------------------------------------- deadlines


class Tally:
    """Where a timed coroutine was when an exception (a deadline's
    cancellation) stopped it; written on the way out only, never per message."""

    def __init__(self, who: str) -> None:
        self.who = who
        self.where = "before its first message"

    def stopped(self, what: str, done: int, total: int) -> None:
        self.where = f"{what}: {done} of {total} done"


async def by_deadline(coro: Awaitable[T], deadline: float, tally: Tally) -> T:
    """`coro`'s value, or TimeoutError naming where it stood when the
    time.monotonic() `deadline` passed (it is cancelled then)."""
    try:
        return await asyncio.wait_for(coro, max(0.0, deadline - time.monotonic()))
    except asyncio.TimeoutError:
        raise TimeoutError(f"{tally.who}: deadline passed ({tally.where})") from None


# ---------------------------------------------------------------- the timed coroutines


async def async_ping_pong(sock: Any, payload: bytes, count: int, tally: Tally,
                          what: str = "round trips") -> List[int]:
    """`count` round trips (await send, await recv); each one's duration in ns."""
    send, recv, clock = sock.send, sock.recv, time.perf_counter_ns
    times = [0] * count
    i = 0
    try:
        for i in range(count):
            t0 = clock()
            await send(payload)
            await recv()
            times[i] = clock() - t0
    except BaseException:
        tally.stopped(what, i, count)
        raise
    return times


async def async_echo(sock: Any, count: int, tally: Tally) -> None:
    """Send back each of `count` messages."""
    send, recv = sock.send, sock.recv
    i = 0
    try:
        for i in range(count):
            await send(await recv())
    except BaseException:
        tally.stopped("messages echoed", i, count)
        raise


async def async_blast(sock: Any, payload: bytes, count: int, tally: Tally) -> None:
    """Send `count` messages, one awaited send() each."""
    send = sock.send
    i = 0
    try:
        for i in range(count):
            await send(payload)
    except BaseException:
        tally.stopped("messages sent", i, count)
        raise


async def async_drain(recv: Callable[[], Awaitable[Any]], count: int, tally: Tally) -> None:
    """Receive `count` messages, untimed (the warm-up)."""
    i = 0
    try:
        for i in range(count):
            await recv()
    except BaseException:
        tally.stopped("warm-up messages received", i, count)
        raise


async def async_sink(recv: Callable[[], Awaitable[Any]], count: int, tally: Tally) -> Tuple[int, int]:
    """Receive `count` messages: (ns at the first, ns at the last)."""
    clock = time.perf_counter_ns
    i = 0
    try:
        await recv()
        first = clock()
        for i in range(1, count):
            await recv()
    except BaseException:
        tally.stopped("timed messages received", i, count)
        raise
    return first, clock()
