"""Tornado integration, as pyzmq's ``zmq.eventloop``: :mod:`zmtp.eventloop.zmqstream`
(``ZMQStream``), :mod:`zmtp.eventloop.ioloop` (pyzmq's deprecated shim of
tornado's IOLoop) and :mod:`zmtp.eventloop.future`.

Tornado is optional (``pip install zmtp[tornado]``): importing this package
does not import it; ``zmtp.eventloop.IOLoop`` (tornado's IOLoop, as pyzmq
exports it here) is looked up on first use and raises ImportError naming
the extra when tornado is missing.

Layering: imports nothing of ``zmtp`` and no tornado at import time; its
submodules import it (for TORNADO_MISSING).  Nothing in ``zmtp`` imports it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["IOLoop"]

#: the message every module of this package raises when tornado is missing
TORNADO_MISSING = "zmtp.eventloop needs tornado, an optional dependency: pip install zmtp[tornado]"


def __getattr__(name: str) -> Any:
    """``IOLoop``: tornado's, imported on first use (as pyzmq's package exports it)."""
    if name == "IOLoop":
        try:
            from tornado.ioloop import IOLoop
        except ImportError as exc:
            raise ImportError(TORNADO_MISSING) from exc
        return IOLoop
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
