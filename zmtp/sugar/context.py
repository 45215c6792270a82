"""``zmtp.sugar.context.Context``: pyzmq's import path for :class:`zmtp.Context`.

Layering: imports ``zmtp.context`` only; imported by ``zmtp.sugar``.
"""

from zmtp.context import Context

#: pyzmq 25+'s name for the blocking context class (a type alias there).
SyncContext = Context

__all__ = ["Context", "SyncContext"]
