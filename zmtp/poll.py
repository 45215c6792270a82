"""Poller: wait on several zmtp sockets and plain file descriptors at once.

Layering: imports ``constants`` and the C module (``_poll``); used by
``proxy`` and the package face.  Must never import ``context``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from zmtp import _zmtp
from zmtp.constants import POLLERR, POLLIN, POLLOUT

__all__ = ["Poller", "select"]


class Poller:
    """pyzmq's Poller: ``register(socket_or_fd, flags)``, ``poll(timeout_ms)``."""

    def __init__(self) -> None:
        self._items: Dict[Any, int] = {}

    def register(self, socket: Any, flags: int = POLLIN | POLLOUT) -> None:
        """Watch ``socket`` (a zmtp Socket, an fd or an object with fileno()) for ``flags``.

        Registering again changes the flags; flags 0 unregisters.
        """
        if flags:
            self._items[socket] = int(flags)
        else:
            self._items.pop(socket, None)

    def modify(self, socket: Any, flags: int = POLLIN | POLLOUT) -> None:
        """Change the flags of a registered socket."""
        self.register(socket, flags)

    def unregister(self, socket: Any) -> None:
        """Stop watching ``socket`` (KeyError if it is not registered)."""
        del self._items[socket]

    def __contains__(self, socket: Any) -> bool:
        return socket in self._items

    @property
    def sockets(self) -> List[Tuple[Any, int]]:
        """``[(socket, flags), ...]`` in the order registered, as pyzmq's
        ``Poller.sockets`` (a copy: change it with register/unregister)."""
        return list(self._items.items())

    def poll(self, timeout: Optional[float] = None) -> List[Tuple[Any, int]]:
        """Wait up to ``timeout`` ms (None or negative: forever).

        Returns ``[(socket, events), ...]`` for those ready; as in pyzmq,
        an object registered for its fileno() comes back as that fd number.
        """
        items = list(self._items.items())
        if not items:
            if timeout is not None and timeout > 0:
                import time

                time.sleep(timeout / 1000.0)
            return []
        tmo = -1 if timeout is None or timeout < 0 else int(timeout)
        ready = _zmtp._poll(items, tmo)
        return [(_result_key(items[i][0]), ev) for i, ev in ready]


def _result_key(obj: Any) -> Any:
    """What a poll result names: a zmtp socket or an int as registered,
    other objects by their fileno() (pyzmq's zmq_poll does the same)."""
    return obj if isinstance(obj, (_zmtp.Socket, int)) else obj.fileno()


def select(
    rlist: List[Any], wlist: List[Any], xlist: List[Any], timeout: Optional[float] = None
) -> Tuple[List[Any], List[Any], List[Any]]:
    """pyzmq's select(): like ``select.select()`` over zmtp sockets and file
    descriptors (or objects with fileno(), returned as their fd number, as
    pyzmq does); ``timeout`` in seconds (None: forever).  Returns the
    readable, writable and errored lists."""
    tmo = -1 if timeout is None else int(timeout * 1000.0)
    if tmo < 0:
        tmo = -1
    items = []
    for s in set(rlist + wlist + xlist):
        flags = (POLLIN if s in rlist else 0) | (POLLOUT if s in wlist else 0) | (POLLERR if s in xlist else 0)
        items.append((s, int(flags)))
    if not items:
        Poller().poll(tmo)  # sleeps for the timeout, as zmq_poll with no items
        return [], [], []
    ready = _zmtp._poll(items, tmo)
    rout: List[Any] = []
    wout: List[Any] = []
    xout: List[Any] = []
    for i, ev in ready:
        s = _result_key(items[i][0])
        if ev & POLLIN:
            rout.append(s)
        if ev & POLLOUT:
            wout.append(s)
        if ev & POLLERR:
            xout.append(s)
    return rout, wout, xout
