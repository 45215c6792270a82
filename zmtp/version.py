"""Versions and capabilities, as pyzmq reports them.

zmtp has no libzmq: :func:`zmq_version` names the libzmq release whose wire
behaviour (ZMTP 3.1, option defaults, error numbers) zmtp matches and is
tested against, and :func:`pyzmq_version` the pyzmq release whose blocking
API it follows.

Layering: imports nothing of zmtp; the package face re-exports it.
"""

from __future__ import annotations

from typing import Tuple

__all__ = [
    "__version__",
    "has",
    "pyzmq_version",
    "pyzmq_version_info",
    "zmq_version",
    "zmq_version_info",
]

__version__ = "0.1.0"

_LIBZMQ = (4, 3, 5)
_PYZMQ = (27, 3, 0)

# libzmq's capability names (zmq_has) and whether zmtp has them.  Security
# mechanisms, multicast and draft sockets are not implemented.
_CAPABILITIES = {
    "ipc": True,
    "pgm": False,
    "tipc": False,
    "norm": False,
    "curve": False,  # asked of zmtp.curve.curve_available() at each call
    "gssapi": False,
    "draft": False,
    "inproc": True,
}


def zmq_version() -> str:
    """The libzmq version zmtp is compatible with on the wire, e.g. "4.3.5"."""
    return "%i.%i.%i" % _LIBZMQ


def zmq_version_info() -> Tuple[int, int, int]:
    """:func:`zmq_version` as a tuple, e.g. (4, 3, 5)."""
    return _LIBZMQ


def pyzmq_version() -> str:
    """The pyzmq version whose blocking API zmtp follows, e.g. "27.3.0"."""
    return "%i.%i.%i" % _PYZMQ


def pyzmq_version_info() -> Tuple[int, int, int]:
    """:func:`pyzmq_version` as a tuple."""
    return _PYZMQ


def has(capability: str) -> bool:
    """True if zmtp supports ``capability`` (libzmq's names: "ipc", "pgm",
    "tipc", "norm", "curve", "gssapi", "draft"; also "inproc").  Unknown
    names give False, as in pyzmq.  "curve" is True when libsodium loads and
    the CURVE mechanism is built (see :mod:`zmtp.curve`)."""
    if capability == "curve":
        from zmtp.curve import curve_available  # the C module: loaded late

        return curve_available()
    return _CAPABILITIES.get(capability, False)
