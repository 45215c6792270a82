"""``ZMQStream``: callbacks for a zmtp socket on tornado's IOLoop, with
pyzmq's API (``zmq.eventloop.zmqstream``).

How readiness reaches the loop: the socket's ``fileno()`` (its loop set,
an epoll descriptor, edge-triggered as libzmq's ZMQ_FD) is given to
``IOLoop.add_handler``.  Each time it fires, the stream reads ``EVENTS`` and
receives / sends while EVENTS shows work it wants, up to
:data:`DRAIN_LIMIT` messages; what is left is handed to the next loop
iteration with ``add_callback``, never to a future edge (which would not
come).  The same check runs whenever a callback is (re)registered or a send
queued, so input that arrived before ``on_recv`` is delivered too.

Layering: imports ``constants``, ``error``, ``socket`` (for its type),
``zmtp.eventloop`` (the missing-tornado message) and tornado; imported by
nobody in ``zmtp``.  Tornado is optional: without it
this module raises ImportError naming the extra.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import pickle
import sys
import warnings
from collections import deque
from typing import Any, Callable, Deque, List, Optional, Sequence, Tuple

try:
    from tornado.ioloop import IOLoop
    from tornado.log import gen_log
except ImportError as _exc:  # pragma: no cover - exercised in a subprocess test
    from zmtp.eventloop import TORNADO_MISSING

    raise ImportError(TORNADO_MISSING) from _exc

from zmtp.constants import DONTWAIT, EAGAIN, EVENTS, POLLIN, POLLOUT
from zmtp.error import ContextTerminated, ZMQError
from zmtp.socket import Socket

__all__ = ["ZMQStream", "DRAIN_LIMIT"]

#: messages (received and sent) handled per IOLoop callback before the rest
#: is scheduled for the next iteration: a burst does not starve the loop's
#: other handlers, and costs one callback per DRAIN_LIMIT messages, not one
#: per message.
DRAIN_LIMIT = 64

CallbackRecv = Callable[[List[Any]], Any]
CallbackSend = Callable[[List[Any], Any], Any]


class ZMQStream:
    """Register callbacks run by tornado's IOLoop when a zmtp socket
    receives or has sent (pyzmq's ``ZMQStream``).

    * ``on_recv(callback, copy=True)``: ``callback(msg)`` for every message
      received (a list of frames: bytes, or :class:`zmtp.Frame` with
      ``copy=False``); ``on_recv_stream`` passes the stream first.
    * ``send`` / ``send_multipart`` / ``send_string`` / ``send_json`` /
      ``send_pyobj``: queue a message; the loop sends it when the socket can
      send, then calls the send callback ``callback(msg, status)``.
    * ``stop_on_recv()`` / ``stop_on_send()``: ``on_<evt>(None)``.
    * ``flush()``: handle what is pending now, outside the loop.

    ``bind``, ``connect``, ``setsockopt``... are the socket's own methods.
    Callbacks may be coroutine functions (their awaitable is scheduled and
    its exception logged).
    """

    socket: Socket
    io_loop: IOLoop

    def __init__(self, socket: Socket, io_loop: Optional[IOLoop] = None) -> None:
        socket = _blocking(socket)
        self.socket = socket
        self.io_loop = io_loop or IOLoop.current()
        self._fd = socket.fileno()
        self._send_queue: Deque[Tuple[Sequence[Any], dict]] = deque()
        self._recv_callback: Optional[CallbackRecv] = None
        self._send_callback: Optional[CallbackSend] = None
        self._close_callback: Optional[Callable[[], Any]] = None
        self._recv_copy = True
        self._flushed = False
        self._scheduled = False  # a _handle_events callback is already queued on the loop
        self._state = 0
        self.io_loop.add_handler(self._fd, self._handle_events, IOLoop.READ)
        # the socket's own methods, as pyzmq short-circuits them
        self.bind = socket.bind
        self.bind_to_random_port = socket.bind_to_random_port
        self.connect = socket.connect
        self.setsockopt = socket.setsockopt
        self.getsockopt = socket.getsockopt
        self.setsockopt_string = socket.setsockopt_string
        self.getsockopt_string = socket.getsockopt_string
        self.setsockopt_unicode = socket.setsockopt_string
        self.getsockopt_unicode = socket.getsockopt_string

    # -- callbacks

    def stop_on_recv(self) -> None:
        """Disable the receive callback and automatic receiving."""
        return self.on_recv(None)

    def stop_on_send(self) -> None:
        """Disable the send callback."""
        return self.on_send(None)

    def stop_on_err(self) -> None:
        """DEPRECATED (as in pyzmq), does nothing."""
        gen_log.warning("on_err does nothing, and will be removed")

    def on_err(self, callback: Callable[..., Any]) -> None:
        """DEPRECATED (as in pyzmq), does nothing."""
        gen_log.warning("on_err does nothing, and will be removed")

    def on_recv(self, callback: Optional[CallbackRecv], copy: bool = True) -> None:
        """Call ``callback(msg)`` for each message received (a list of
        frames, as ``recv_multipart(copy=copy)`` returns).  One callback at
        a time: a call replaces the previous one; ``None`` stops receiving."""
        self._check_closed()
        assert callback is None or callable(callback)
        self._recv_callback = callback
        self._recv_copy = copy
        if callback is None:
            self._drop_io_state(POLLIN)
        else:
            self._add_io_state(POLLIN)

    def on_recv_stream(self, callback: Optional[Callable[["ZMQStream", List[Any]], Any]], copy: bool = True) -> None:
        """As :meth:`on_recv`, the callback called as ``callback(stream, msg)``."""
        if callback is None:
            self.stop_on_recv()
            return
        cb = callback
        self.on_recv(lambda msg: cb(self, msg), copy=copy)

    def on_send(self, callback: Optional[CallbackSend]) -> None:
        """Call ``callback(msg, status)`` after each queued message is sent:
        ``msg`` as given to send, ``status`` what ``send_multipart`` returned
        (None) or the ZMQError it raised.  ``None`` disables the callback."""
        self._check_closed()
        assert callback is None or callable(callback)
        self._send_callback = callback

    def on_send_stream(self, callback: Optional[Callable[["ZMQStream", List[Any], Any], Any]]) -> None:
        """As :meth:`on_send`, the callback called as ``callback(stream, msg, status)``."""
        if callback is None:
            self.stop_on_send()
            return
        cb = callback
        self.on_send(lambda msg, status: cb(self, msg, status))

    # -- sending

    def send(self, msg: Any, flags: int = 0, copy: bool = True, track: bool = False,
             callback: Optional[CallbackSend] = None, **kwargs: Any) -> None:
        """Queue a one-frame message (see :meth:`send_multipart`)."""
        return self.send_multipart([msg], flags=flags, copy=copy, track=track, callback=callback, **kwargs)

    def send_multipart(self, msg: Sequence[Any], flags: int = 0, copy: bool = True, track: bool = False,
                       callback: Optional[CallbackSend] = None, **kwargs: Any) -> None:
        """Queue a message; the loop sends it (``socket.send_multipart(msg,
        flags, copy, track)``) when the socket can send.  ``callback`` (if
        given) becomes the send callback, as in pyzmq; it gets the message
        and the send's result (with ``track=True``, or ``copy=False``, a
        MessageTracker, done at once: zmtp copies what it sends)."""
        kwargs.update(flags=flags, copy=copy, track=track)
        self._send_queue.append((msg, kwargs))
        callback = callback or self._send_callback
        self.on_send(callback if callback is not None else _ignore)
        self._add_io_state(POLLOUT)

    def send_string(self, u: str, flags: int = 0, encoding: str = "utf-8",
                    callback: Optional[CallbackSend] = None, **kwargs: Any) -> None:
        """Queue a str, encoded (UTF-8 by default)."""
        if not isinstance(u, str):
            raise TypeError("unicode/str objects only")
        return self.send(u.encode(encoding), flags=flags, callback=callback, **kwargs)

    send_unicode = send_string

    def send_json(self, obj: Any, flags: int = 0, callback: Optional[CallbackSend] = None, **kwargs: Any) -> None:
        """Queue an object as JSON (UTF-8); ``kwargs`` go to the send."""
        return self.send(json.dumps(obj).encode("utf-8"), flags=flags, callback=callback, **kwargs)

    def send_pyobj(self, obj: Any, flags: int = 0, protocol: int = -1,
                   callback: Optional[CallbackSend] = None, **kwargs: Any) -> None:
        """Queue a pickled object (unpickling is only safe from trusted peers)."""
        return self.send(pickle.dumps(obj, protocol), flags, callback=callback, **kwargs)

    # -- flush

    def flush(self, flag: int = POLLIN | POLLOUT, limit: Optional[int] = None) -> int:
        """Handle pending messages now, outside the loop, and return how
        many were handled (received and sent).  ``flag``: POLLIN receives
        (even with no receive callback: a way to drop input), POLLOUT sends
        the queue.  Stops when nothing matching is pending or at ``limit``.
        The loop's own handling is skipped for the rest of this iteration,
        as in pyzmq."""
        self._check_closed()
        already_flushed = self._flushed
        self._flushed = False
        count = 0
        while not limit or count < limit:
            want = flag & POLLIN
            if self.sending():
                want |= flag & POLLOUT
            if not want:
                break
            events = self._events()
            done = self._step(events & want) if events is not None else 0
            if not done:
                break
            count += done
            if self.socket is None:
                break
        if count:
            self._flushed = True
            if not already_flushed:
                self.io_loop.add_callback(self._finish_flush)
        elif already_flushed:
            self._flushed = True
        self._rebuild_io_state()
        return count

    def _finish_flush(self) -> None:
        self._flushed = False

    # -- state

    def receiving(self) -> bool:
        """True while a receive callback is registered."""
        return self._recv_callback is not None

    def sending(self) -> bool:
        """True while messages wait in the send queue."""
        return bool(self._send_queue)

    def closed(self) -> bool:
        """True once the stream (or its socket, closed elsewhere) is closed."""
        if self.socket is None:
            return True
        if self.socket.closed:
            self.close()  # closed behind our back: unregister, run the close callback
            return True
        return False

    def set_close_callback(self, callback: Optional[Callable[[], Any]]) -> None:
        """Call ``callback()`` when the stream is closed."""
        self._close_callback = callback

    def close(self, linger: Optional[int] = None) -> None:
        """Unregister from the loop, close the socket (with ``linger``) and
        run the close callback.  Queued sends not yet sent are dropped."""
        if self.socket is None:
            return
        if self.socket.closed:
            warnings.warn(
                f"Unregistering FD {self._fd} after closing socket. "
                "This could result in unregistering handlers for the wrong socket. "
                "Please use stream.close() instead of closing the socket directly.",
                stacklevel=2,
            )
            self.io_loop.remove_handler(self._fd)
        else:
            self.io_loop.remove_handler(self._fd)
            self.socket.close(linger)
        self.socket = None  # type: ignore[assignment]
        if self._close_callback:
            self._run_callback(self._close_callback)

    # -- internals

    def _check_closed(self) -> None:
        if self.socket is None:
            raise OSError("Stream is closed")

    def _run_callback(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run a user callback; an awaitable it returns is scheduled and its
        exception logged.  An exception it raises is logged and re-raised
        (the IOLoop logs it too)."""
        try:
            ret = callback(*args)
        except Exception:
            gen_log.error("Uncaught exception in ZMQStream callback", exc_info=True)
            raise
        if inspect.isawaitable(ret):
            fut = asyncio.ensure_future(ret)
            fut.add_done_callback(_log_async_error)

    def _events(self) -> Optional[int]:
        """The socket's EVENTS; None (the stream closed) when the socket
        was closed or its context terminated elsewhere."""
        try:
            return int(self.socket.getsockopt(EVENTS))
        except ContextTerminated:
            gen_log.warning("Got events for stream %s after terminating context", self)
            # zmtp's term() leaves the socket open (calls raise ETERM until
            # close()), where libzmq's waits for it to be closed: close it
            self.close(linger=0)
            return None
        except ZMQError as e:
            if self.closed():
                gen_log.warning("Got events for stream %s attached to closed socket: %s", self, e)
            else:
                gen_log.error("Error getting events for %s: %s", self, e)
            return None

    def _handle_events(self, fd: Any = None, events: int = 0) -> None:
        """The IOLoop's handler for the fd: drain, unless a drain is already
        scheduled (then only read EVENTS, which re-arms the fd: one drain
        of at most DRAIN_LIMIT per loop iteration)."""
        if self._scheduled:
            if self.socket is not None:
                self._events()
            return
        self._drain()

    def _drain(self) -> None:
        """Receive and send while EVENTS shows work wanted, up to
        DRAIN_LIMIT messages; schedule the rest."""
        self._scheduled = False
        if self.socket is None:
            return
        handled = 0
        try:
            while True:
                # read at least once: the call re-arms the fd (else a loop
                # with no callback registered would see it readable forever)
                zevents = self._events()
                if zevents is None or handled >= DRAIN_LIMIT or self._flushed:
                    break
                want = (POLLIN if self.receiving() else 0) | (POLLOUT if self.sending() else 0)
                done = self._step(zevents & want)
                if not done or self.socket is None:
                    break
                handled += done
        finally:
            # whatever happened (a callback raising included): work left is
            # scheduled, not left to an edge that will not come
            self._rebuild_io_state()

    def _step(self, events: int) -> int:
        """One receive (POLLIN in `events`) and one send (POLLOUT in
        `events` and a message queued); how many were handled."""
        done = 0
        if events & POLLIN:
            self._handle_recv()
            done += 1
            if self.socket is None:
                return done
        if events & POLLOUT and self.sending():
            self._handle_send()
            done += 1
        return done

    def _handle_recv(self) -> None:
        if self._flushed:
            return
        try:
            msg = self.socket.recv_multipart(DONTWAIT, copy=self._recv_copy)
        except ZMQError as e:
            if e.errno == EAGAIN:
                return  # EVENTS changed since it was read
            raise
        callback = self._recv_callback
        if callback:
            self._run_callback(callback, msg)

    def _handle_send(self) -> None:
        if self._flushed:
            return
        if not self.sending():
            gen_log.error("Shouldn't have handled a send event")
            return
        msg, kwargs = self._send_queue.popleft()
        status: Any
        try:
            status = self.socket.send_multipart(msg, **kwargs)
        except ZMQError as e:
            gen_log.error("SEND Error: %s", e)
            status = e
        callback = self._send_callback
        if callback:
            self._run_callback(callback, msg, status)

    def _rebuild_io_state(self) -> None:
        """State from receiving()/sending(), then check for work pending."""
        if self.socket is None:
            return
        state = 0
        if self.receiving():
            state |= POLLIN
        if self.sending():
            state |= POLLOUT
        self._state = state
        self._update_handler(state)

    def _add_io_state(self, state: int) -> None:
        self._state |= state
        self._update_handler(self._state)

    def _drop_io_state(self, state: int) -> None:
        self._state &= ~state
        self._update_handler(self._state)

    def _update_handler(self, state: int) -> None:
        """Schedule one handler run when EVENTS already shows what `state`
        wants: the fd is edge-triggered and will not fire for it again."""
        if self.socket is None or self._scheduled or not state:
            return
        events = self._events()
        if events is not None and state & events:
            self._scheduled = True
            self.io_loop.add_callback(self._drain)


def _blocking(socket: Socket) -> Socket:
    """`socket`, or for an asyncio socket (``zmtp.asyncio``) a blocking one
    on the same C socket, with pyzmq's RuntimeWarning: callbacks get what
    the blocking ``recv_multipart`` returns, never futures."""
    future_mod = sys.modules.get("zmtp._future")  # not imported: no asyncio socket exists
    if future_mod is None or not isinstance(socket, getattr(future_mod, "_AsyncSocket", ())):
        return socket
    warnings.warn(
        "ZMQStream only supports the base zmtp.Socket class: use zmtp.Socket.shadow(other_socket.underlying)"
        " or ctx.socket(kind, socket_class=zmtp.Socket) to make one; the socket is shadowed as a zmtp.Socket",
        RuntimeWarning,
        stacklevel=3,
    )
    shadow = getattr(Socket, "shadow", None)
    if shadow is None:
        raise TypeError("ZMQStream needs a blocking zmtp.Socket; Socket.shadow() (to wrap an asyncio socket) "
                        "is not in this build of zmtp yet")
    return shadow(socket.underlying)  # type: ignore[no-any-return]


def _ignore(*args: Any) -> None:
    """The send callback when none is given (pyzmq's no-op)."""


def _log_async_error(fut: "asyncio.Future[Any]") -> None:
    if fut.cancelled():
        return
    exc = fut.exception()
    if exc is not None:
        gen_log.error("Uncaught exception in ZMQStream callback", exc_info=exc)
