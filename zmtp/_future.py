"""The machinery under ``zmtp.asyncio``: future-returning sockets and poller
on an asyncio-style event loop (``add_reader``, ``call_later``,
``call_soon``, ``create_future``), pyzmq's ``zmq/_future.py`` split.

How a socket meets the loop (docs/asyncio.md has the reasons):

* A call that can complete now does (``DONTWAIT`` first) and returns an
  already-done future: awaiting it takes no loop round trip.
* Otherwise the future waits in a FIFO queue and the loop watches the
  socket's ``fileno()`` (the mailbox eventfd, edge-triggered like libzmq's
  ZMQ_FD).  One reader callback serves every waiting future while
  ``EVENTS`` allows, then reads ``EVENTS`` again before returning (the
  edge), so a burst costs one callback, not one per message.
* A future is completed only with a message it took in the same step: a
  cancelled or timed-out future never takes one (it stays for the next
  receive).
* A call this module makes on the socket outside the reader callback (a
  fast-path send or receive, ``EVENTS``) consumes the edge: while other
  futures wait, a check is scheduled on the loop (``call_soon``).

Layering: imports ``socket``, ``poll``, ``constants``, ``error`` and the C
module; imported by ``asyncio`` only.  Must never import ``context`` or the
package face.
"""

from __future__ import annotations

import warnings
from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Tuple

from zmtp import _zmtp
from zmtp import constants
from zmtp.error import Again, ContextTerminated, ZMQError
from zmtp.poll import Poller
from zmtp.socket import Socket

# Plain ints rather than the IntFlag/IntEnum members of zmtp.constants: on
# the per-call path (``flags | DONTWAIT``, ``EVENTS & wanted``) enum
# arithmetic costs about 0.7 us an operation against 0.06 us for an int,
# about half of an awaited call (docs/performance.md, asyncio rows; pyzmq's
# results are plain ints too).
DONTWAIT = int(constants.DONTWAIT)
EVENTS = int(constants.EVENTS)
POLLIN = int(constants.POLLIN)
POLLOUT = int(constants.POLLOUT)
RCVTIMEO = int(constants.RCVTIMEO)
SNDTIMEO = int(constants.SNDTIMEO)

__all__ = ["_AsyncPoller", "_AsyncSocket"]

_Base = Socket
_c_getsockopt = _zmtp.Socket.getsockopt


def _ended_by(future: Any, events: int) -> bool:
    """Whether a poll watcher's `events` ended `future` (or it was done
    already): -1 is the context's term() (ContextTerminated), -2 the
    socket's close() (cancelled)."""
    if future.done():
        return True
    if events == -1:
        future.set_exception(ContextTerminated())
        return True
    if events == -2:
        future.cancel()
        return True
    return False

class _Event:
    """A waiting send or receive: its future, the call and its timer."""

    __slots__ = ("future", "call", "args", "timer", "finished")

    def __init__(self, future: Any, call: Callable[..., Any], args: Tuple[Any, ...]) -> None:
        self.future = future
        self.call = call  # the blocking method, called with DONTWAIT
        self.args = args  # its arguments; flags (with DONTWAIT) is args[-3]
        self.timer: Any = None
        self.finished = False  # taken off the queue by the reader


class _Recorder:
    """Stands in for a socket so that zmtp.socket.Socket's sugar (encoding,
    JSON, pickles, serializers) is reused, not copied: its send methods
    record the frames, its recv methods hand back what was received."""

    __slots__ = ("sent", "received")

    def __init__(self, received: Any = None) -> None:
        self.sent: Optional[Tuple[str, Any, int, bool]] = None
        self.received = received

    def send(self, data: Any, flags: int = 0, copy: bool = True, track: bool = False) -> None:
        self.sent = ("send", data, flags, copy)

    def send_multipart(self, parts: Any, flags: int = 0, copy: bool = True, track: bool = False) -> None:
        self.sent = ("send_multipart", parts, flags, copy)

    def recv(self, flags: int = 0, copy: bool = True, track: bool = False) -> Any:
        return self.received

    recv_multipart = recv


class _AsyncSocket(Socket):
    """A zmtp Socket whose send/recv (and their sugar) and poll return
    futures.  Subclasses name the loop: ``_default_loop()``."""

    _recv_futures: Deque[_Event]
    _send_futures: Deque[_Event]
    _watchers: List[Tuple[int, Callable[[int], None]]]  # (flags, callback): poll()s waiting
    _loop: Any
    _fd: int
    _reading: bool
    _check_due: bool

    def __init__(self, context: Any = None, socket_type: int = -1, io_loop: Any = None, **kwargs: Any) -> None:
        if io_loop is not None:
            warnings.warn(
                f"{type(self).__name__}(io_loop) is ignored, as in pyzmq since 22.2: the running loop is used",
                DeprecationWarning,
                stacklevel=2,
            )
        self._recv_futures = deque()
        self._send_futures = deque()
        self._watchers = []
        self._loop = None
        self._reading = False
        self._check_due = False
        super().__init__(context, socket_type, **kwargs)
        # Asked for now: from here on every call re-arms the mailbox, so a
        # DONTWAIT call that says Again is followed by a signal.
        self._fd = self.fileno()

    @classmethod
    def from_socket(cls, socket: Any, io_loop: Any = None) -> "_AsyncSocket":
        """An async object driving the same socket as ``socket`` (a zmtp
        Socket or its ``underlying`` handle), pyzmq's from_socket: a
        blocking and an async object can share one socket (through
        ``Socket.shadow``)."""
        return cls(shadow=socket, io_loop=io_loop)

    # -- the loop

    def _default_loop(self) -> Any:
        raise NotImplementedError("a subclass names its event loop")

    def _get_loop(self) -> Any:
        """The running loop; the socket's reader moves to it if it changed
        (a socket used under successive asyncio.run() calls)."""
        loop = self._default_loop()
        if loop is not self._loop:
            self._stop_reading()
            # Futures of the old loop are left to it (completing one of a
            # closed loop would raise here): they take nothing more.
            for queue in (self._recv_futures, self._send_futures):
                while queue:
                    self._drop_head(queue)
            self._watchers.clear()
            self._check_due = False
            self._loop = loop
        return loop

    def _start_reading(self) -> None:
        if not self._reading:
            self._loop.add_reader(self._fd, self._handle_events)
            self._reading = True

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            loop = self._loop
            if loop is not None and not loop.is_closed():
                loop.remove_reader(self._fd)

    def _wanted(self) -> int:
        """The events something waits for."""
        wanted = (POLLIN if self._recv_futures else 0) | (POLLOUT if self._send_futures else 0)
        for flags, _cb in self._watchers:
            wanted |= flags
        return wanted

    def _touched(self) -> None:
        """After a call on the socket made outside the reader callback: the
        call consumed the fd's edge (events present at its start are not
        signalled again), so if EVENTS already shows what a future waits
        for, serve it on the loop's next turn; any later change signals the
        fd."""
        if self._check_due or self._loop is None or self.closed:
            return
        wanted = self._wanted()
        if not wanted:
            return
        try:
            ready = _c_getsockopt(self, EVENTS) & wanted
        except ZMQError:
            ready = wanted  # the reader says why (term(), ...)
        if ready:
            self._check_due = True
            self._loop.call_soon(self._handle_events)

    def _handle_events(self) -> None:
        """The reader: serve every waiting future while EVENTS allows."""
        self._check_due = False
        if self.closed or self._terminated:
            self._stop_reading()
            if self._terminated:
                self._fail_all(ContextTerminated())
            return
        while True:
            try:
                events = _c_getsockopt(self, EVENTS)
            except ZMQError as exc:  # e.g. term() from another thread
                self._fail_all(exc)
                return
            served = False
            if events & POLLIN and self._recv_futures:
                served = self._serve(self._recv_futures)
            if events & POLLOUT and self._send_futures:
                served = self._serve(self._send_futures) or served
            if self._watchers and events:
                for flags, watcher in list(self._watchers):
                    if events & flags:
                        watcher(events)
            if not served:
                # EVENTS read last: the next change signals the fd
                return

    def _serve(self, queue: Deque[_Event]) -> bool:
        """Complete the futures at the head of ``queue`` with DONTWAIT
        calls until one says Again; True if any was completed."""
        served = False
        while queue:
            ev = queue[0]
            if ev.future.done():  # cancelled or timed out: takes nothing
                self._drop_head(queue)
                continue
            try:
                result = ev.call(self, *ev.args)
            except Again:
                return served
            except Exception as exc:
                queue.popleft()
                ev.finished = True
                self._cancel_timer(ev)
                ev.future.set_exception(exc)
            else:
                queue.popleft()
                ev.finished = True
                self._cancel_timer(ev)
                ev.future.set_result(result)
            served = True
        return served

    def _drop_head(self, queue: Deque[_Event]) -> None:
        """Take a future that ended by itself off the head of ``queue``."""
        ev = queue.popleft()
        ev.finished = True
        self._cancel_timer(ev)

    @staticmethod
    def _cancel_timer(ev: _Event) -> None:
        if ev.timer is not None:
            ev.timer.cancel()
            ev.timer = None

    # -- queueing

    def _add_event(self, queue: Deque[_Event], call: Callable[..., Any], args: Tuple[Any, ...], flags: int, timeo_opt: int) -> Any:
        """The future of ``call(self, *args)`` (args end with flags, copy,
        track; its flags already carry DONTWAIT): done at once if it can
        complete now or the caller's ``flags`` asked for DONTWAIT, else
        queued behind the earlier ones."""
        loop = self._default_loop()
        if loop is not self._loop:
            loop = self._get_loop()
        future = loop.create_future()
        while queue and queue[0].future.done():  # cancelled: its callback has not run yet
            self._drop_head(queue)
        # Something already waits: a call of ours may consume its edge.
        others = bool(self._recv_futures or self._send_futures or self._watchers)
        if flags & DONTWAIT or not queue:
            try:
                result = call(self, *args)
            except Again as exc:
                if flags & DONTWAIT:
                    future.set_exception(exc)
                    self._touched()
                    return future
            except Exception as exc:
                future.set_exception(exc)
                self._touched()
                return future
            else:
                future.set_result(result)
                if others:
                    self._touched()  # (nothing waits: nothing to look at)
                return future
        ev = _Event(future, call, args)
        timeout = _c_getsockopt(self, timeo_opt)
        if timeout >= 0:
            ev.timer = loop.call_later(timeout / 1000.0, _time_out, ev)
        queue.append(ev)
        future.add_done_callback(lambda _f: self._forget(queue, ev))
        self._start_reading()
        if others:
            # The calls above may have consumed an edge another future
            # waits for.  (Alone, after our own call said Again, there is
            # none: what appears after that call is signalled.)
            self._touched()
        return future

    @staticmethod
    def _forget(queue: Deque[_Event], ev: _Event) -> None:
        """A future that ended without the reader (cancelled, timed out,
        failed by close or term) leaves its queue at once."""
        if ev.finished:
            return
        ev.finished = True
        _AsyncSocket._cancel_timer(ev)
        try:
            queue.remove(ev)
        except ValueError:
            pass

    def _fail_all(self, exc: BaseException) -> None:
        """Fail every waiting future with ``exc`` (term())."""
        self._end_all(lambda f: f.set_exception(exc), -1)

    def _cancel_all(self) -> None:
        """Cancel every waiting future (close())."""
        self._end_all(lambda f: f.cancel(), -2)

    def _end_all(self, end: Callable[[Any], Any], code: int) -> None:
        """End every waiting future with ``end(future)``, and the poll()s
        with ``code`` (-1: term(), -2: close()); futures of a loop that
        is closed are only dropped (ending one would raise)."""
        alive = self._loop is not None and not self._loop.is_closed()
        for queue in (self._recv_futures, self._send_futures):
            while queue:
                ev = queue.popleft()
                ev.finished = True
                self._cancel_timer(ev)
                if alive and not ev.future.done():
                    end(ev.future)
        for _flags, watcher in list(self._watchers):
            if alive:
                watcher(code)
        if not alive:
            self._watchers.clear()

    # -- the API

    def close(self, linger: Optional[int] = None) -> None:
        """Close the socket; futures still waiting are cancelled."""
        if not self.closed:
            self._stop_reading()
            self._cancel_all()
        super().close(linger)

    def getsockopt(self, option: int) -> Any:
        """As zmtp.Socket's; reading an option (EVENTS among them) is a call
        on the socket, so waiting futures are looked at again soon."""
        value = super().getsockopt(option)
        self._touched()
        return value

    def setsockopt(self, option: int, value: Any) -> None:
        """As zmtp.Socket's (a call on the socket: see getsockopt)."""
        super().setsockopt(option, value)
        self._touched()

    def bind(self, addr: Any) -> None:
        """As zmtp.Socket's (a call on the socket: see getsockopt)."""
        super().bind(addr)
        self._touched()

    def connect(self, addr: Any) -> None:
        """As zmtp.Socket's (a call on the socket: see getsockopt)."""
        super().connect(addr)
        self._touched()

    def recv(self, flags: int = 0, copy: bool = True, track: bool = False) -> Any:  # type: ignore[override]
        """A future of one frame (bytes, or a Frame with copy=False)."""
        return self._add_event(self._recv_futures, _Base.recv, (int(flags) | DONTWAIT, copy, track), int(flags), RCVTIMEO)

    def recv_multipart(self, flags: int = 0, copy: bool = True, track: bool = False) -> Any:  # type: ignore[override]
        """A future of a whole message's frames."""
        return self._add_event(self._recv_futures, _Base.recv_multipart, (int(flags) | DONTWAIT, copy, track), int(flags), RCVTIMEO)

    def recv_into(self, buffer: Any, /, *, nbytes: int = 0, flags: int = 0) -> Any:  # type: ignore[override]
        """A future of the size of the frame received into ``buffer``."""
        return self._add_event(self._recv_futures, _recv_into, (buffer, nbytes, int(flags) | DONTWAIT, None, None), int(flags), RCVTIMEO)

    def send(self, data: Any, flags: int = 0, copy: bool = True, track: bool = False, **kwargs: Any) -> Any:  # type: ignore[override]
        """A future done once the frame is queued for sending."""
        return self._add_event(self._send_futures, _Base.send, (data, int(flags) | DONTWAIT, copy, track), int(flags), SNDTIMEO)

    def send_multipart(self, msg_parts: Sequence[Any], flags: int = 0, copy: bool = True, track: bool = False, **kwargs: Any) -> Any:  # type: ignore[override]
        """A future done once the message is queued for sending."""
        return self._add_event(self._send_futures, _Base.send_multipart, (msg_parts, int(flags) | DONTWAIT, copy, track), int(flags), SNDTIMEO)

    # -- sugar: zmtp.socket.Socket's encoders and decoders, on futures

    def _send_recorded(self, method: Callable[..., None], *args: Any, **kwargs: Any) -> Any:
        rec = _Recorder()
        method(rec, *args, **kwargs)  # encodes, then "sends" to the recorder
        assert rec.sent is not None
        kind, data, flags, copy = rec.sent
        return getattr(self, kind)(data, flags, copy)

    def _recv_decoded(self, received: Any, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A future of ``method`` (a blocking recv_* sugar) applied to what
        the ``received`` future brings; cancelling it cancels ``received``."""
        future = self._loop.create_future()

        def chain(_f: Any) -> None:
            if future.done():
                return
            if received.cancelled():
                future.cancel()
                return
            exc = received.exception()
            if exc is not None:
                future.set_exception(exc)
                return
            try:
                future.set_result(method(_Recorder(received.result()), *args, **kwargs))
            except Exception as err:
                future.set_exception(err)

        def cancel(_f: Any) -> None:
            if future.cancelled() and not received.done():
                received.cancel()

        if received.done():
            chain(received)
        else:
            received.add_done_callback(chain)
            future.add_done_callback(cancel)
        return future

    def send_string(self, u: str, flags: int = 0, copy: bool = True, encoding: str = "utf-8", **kw: Any) -> Any:  # type: ignore[override]
        """A future: send a str, encoded (UTF-8 by default)."""
        return self._send_recorded(_Base.send_string, u, flags, copy, encoding)

    def recv_string(self, flags: int = 0, encoding: str = "utf-8") -> Any:  # type: ignore[override]
        """A future of a frame decoded to str."""
        return self._recv_decoded(self.recv(flags), _Base.recv_string, 0, encoding)

    send_unicode = send_string
    recv_unicode = recv_string

    def send_json(self, obj: Any, flags: int = 0, **kwargs: Any) -> Any:  # type: ignore[override]
        """A future: send an object as JSON."""
        return self._send_recorded(_Base.send_json, obj, flags, **kwargs)

    def recv_json(self, flags: int = 0, **kwargs: Any) -> Any:  # type: ignore[override]
        """A future of a JSON frame, decoded."""
        return self._recv_decoded(self.recv(flags), _Base.recv_json, 0, **kwargs)

    def send_pyobj(self, obj: Any, flags: int = 0, protocol: int = -1, **kw: Any) -> Any:  # type: ignore[override]
        """A future: send a pickled object."""
        if protocol == -1:
            return self._send_recorded(_Base.send_pyobj, obj, flags)
        return self._send_recorded(_Base.send_pyobj, obj, flags, protocol)

    def recv_pyobj(self, flags: int = 0) -> Any:  # type: ignore[override]
        """A future of an unpickled object (trusted peers only)."""
        return self._recv_decoded(self.recv(flags), _Base.recv_pyobj, 0)

    def send_serialized(self, msg: Any, serialize: Callable[[Any], Sequence[bytes]], flags: int = 0, copy: bool = True) -> Any:  # type: ignore[override]
        """A future: send ``serialize(msg)`` as one message."""
        return self._send_recorded(_Base.send_serialized, msg, serialize, flags, copy)

    def recv_serialized(self, deserialize: Callable[[List[bytes]], Any], flags: int = 0, copy: bool = True) -> Any:  # type: ignore[override]
        """A future of ``deserialize(frames)`` of the next message."""
        return self._recv_decoded(self.recv_multipart(flags, copy), _Base.recv_serialized, deserialize, 0, copy)

    def poll(self, timeout: Optional[int] = None, flags: int = POLLIN) -> Any:  # type: ignore[override]
        """A future of the events in ``flags`` ready within ``timeout`` ms
        (None: no limit); 0 when the timeout passes."""
        self._check_open()
        loop = self._get_loop()
        future = loop.create_future()
        ready = _c_getsockopt(self, EVENTS) & flags
        if ready or timeout == 0:
            future.set_result(ready)
            self._touched()
            return future
        timer = None

        def watch(events: int) -> None:
            if not _ended_by(future, events) and events & flags:
                future.set_result(events & flags)

        def done(_f: Any) -> None:
            if timer is not None:
                timer.cancel()
            if (flags, watch) in self._watchers:
                self._watchers.remove((flags, watch))

        if timeout is not None and timeout > 0:
            timer = loop.call_later(timeout / 1000.0, lambda: future.done() or future.set_result(0))
        self._watchers.append((flags, watch))
        future.add_done_callback(done)
        self._start_reading()
        self._touched()
        return future


def _recv_into(sock: Socket, buffer: Any, nbytes: int, flags: int, _copy: Any, _track: Any) -> int:
    return _Base.recv_into(sock, buffer, nbytes=nbytes, flags=flags)


def _time_out(ev: _Event) -> None:
    """RCVTIMEO / SNDTIMEO passed: the future raises Again (it took nothing)."""
    ev.timer = None
    if not ev.future.done():
        ev.future.set_exception(Again())


class _AsyncPoller(Poller):
    """A Poller whose poll() returns a future.  Subclasses name the loop:
    ``_default_loop()``."""

    def _default_loop(self) -> Any:
        raise NotImplementedError("a subclass names its event loop")

    def poll(self, timeout: Optional[float] = None) -> Any:  # type: ignore[override]
        """A future of ``[(socket, events), ...]`` once any is ready, or
        ``[]`` after ``timeout`` ms (None or negative: no limit)."""
        loop = self._default_loop()
        future = loop.create_future()
        items = list(self._items.items())
        asyncs = [s for s, _ in items if isinstance(s, _AsyncSocket)]
        # A blocking socket is watched through its fileno(), asked for here,
        # before check(): any call on the socket may consume the fd's edge
        # (libzmq's ZMQ_FD contract: read EVENTS after the last call, then
        # wait), so check()'s look must be the last call before the wait.
        # Asked for after it, a message arriving in between could be
        # signalled and the signal drained by the fileno() calls (when the
        # progress thread stepped the socket between two of them), leaving
        # the loop waiting with the message queued: jupyter_client's
        # execute_interactive, whose iopub socket is in this poller, hung.
        blocking_fds = {id(obj): obj.fileno() for obj, _ in items
                        if isinstance(obj, _zmtp.Socket) and not isinstance(obj, _AsyncSocket)}

        def check() -> bool:
            try:
                result = Poller.poll(self, 0)
            except Exception as exc:
                future.set_exception(exc)
                return True
            finally:
                for s in asyncs:
                    s._touched()
            if result:
                future.set_result(result)
                return True
            return False

        if check() or timeout == 0:
            if not future.done():
                future.set_result([])
            return future

        undo: List[Callable[[], None]] = []

        def wake(*_args: Any) -> None:
            if not future.done():
                check()

        def watch(events: int) -> None:
            if not _ended_by(future, events):
                check()

        fds: Dict[int, int] = {}
        for obj, flags in items:
            if isinstance(obj, _AsyncSocket):
                obj._get_loop()
                entry = (flags, watch)
                obj._watchers.append(entry)
                obj._start_reading()
                undo.append(lambda s=obj, e=entry: e in s._watchers and s._watchers.remove(e))
            elif isinstance(obj, _zmtp.Socket):
                fd = blocking_fds[id(obj)]
                fds[fd] = fds.get(fd, 0) | POLLIN  # its mailbox: readable on any change
            else:
                fd = obj if isinstance(obj, int) else obj.fileno()
                fds[fd] = fds.get(fd, 0) | flags
        for fd, flags in fds.items():
            if flags & POLLIN:
                loop.add_reader(fd, wake)
                undo.append(lambda fd=fd: loop.remove_reader(fd))
            if flags & POLLOUT:
                loop.add_writer(fd, wake)
                undo.append(lambda fd=fd: loop.remove_writer(fd))
        if timeout is not None and timeout > 0:
            timer = loop.call_later(timeout / 1000.0, lambda: future.done() or future.set_result([]))
            undo.append(timer.cancel)

        def done(_f: Any) -> None:
            for fn in undo:
                fn()

        future.add_done_callback(done)
        return future
