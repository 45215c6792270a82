"""tornado's IOLoop under pyzmq's old name (``zmq.eventloop.ioloop``).

Deprecated in pyzmq 17 and kept for old code: zmtp needs no special loop,
tornado's own IOLoop (asyncio underneath) runs :class:`ZMQStream` and
:mod:`zmtp.eventloop.future`.  Importing this module warns
(DeprecationWarning, pyzmq's text), as ``install()`` does.

Layering: imports tornado (and ``zmtp.eventloop`` for the message when it
is missing); imported by nobody in ``zmtp``.
"""

from __future__ import annotations

import warnings


def _deprecated() -> None:
    warnings.warn(
        "zmq.eventloop.ioloop is deprecated in pyzmq 17."
        " pyzmq now works with default tornado and asyncio eventloops.",
        DeprecationWarning,
        stacklevel=3,
    )


_deprecated()

try:
    from tornado.ioloop import *  # noqa: F401,F403 - the shim re-exports tornado's names
    from tornado.ioloop import IOLoop
except ImportError as _exc:
    from zmtp.eventloop import TORNADO_MISSING

    raise ImportError(TORNADO_MISSING) from _exc

#: pyzmq's name for the loop: tornado's IOLoop itself
ZMQIOLoop = IOLoop


def install() -> None:
    """DEPRECATED, does nothing but warn: tornado's IOLoop needs no
    installing (pyzmq 17 and later)."""
    _deprecated()
