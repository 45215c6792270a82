"""``zmtp.sugar.poll``: pyzmq's import path for :class:`zmtp.Poller` and
:func:`zmtp.select`.

Layering: imports ``zmtp.poll`` only; imported by ``zmtp.sugar``.
"""

from zmtp.poll import Poller, select

__all__ = ["Poller", "select"]
