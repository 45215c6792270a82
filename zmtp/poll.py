"""Poller: wait on several zmtp sockets and plain file descriptors at once."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from zmtp import _zmtp
from zmtp.constants import POLLIN, POLLOUT

__all__ = ["Poller"]


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

    def poll(self, timeout: Optional[float] = None) -> List[Tuple[Any, int]]:
        """Wait up to ``timeout`` ms (None or negative: forever).

        Returns ``[(socket, events), ...]`` for those ready.
        """
        items = list(self._items.items())
        if not items:
            if timeout is not None and timeout > 0:
                import time

                time.sleep(timeout / 1000.0)
            return []
        tmo = -1 if timeout is None or timeout < 0 else int(timeout)
        ready = _zmtp._poll(items, tmo)
        return [(items[i][0], ev) for i, ev in ready]
