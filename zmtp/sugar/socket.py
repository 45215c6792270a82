"""``zmtp.sugar.socket.Socket``: pyzmq's import path for :class:`zmtp.Socket`.

Layering: imports ``zmtp.socket`` only; imported by ``zmtp.sugar``.
"""

from zmtp.socket import Socket

#: pyzmq 25+'s name for the blocking socket class (a type alias there).
SyncSocket = Socket

__all__ = ["Socket", "SyncSocket"]
