"""zmtp: the ZeroMQ wire protocol (ZMTP 3.1) for Python, without libzmq.

This release holds the C core: read pages with zero-copy frames, messages,
and the sans-IO ZMTP codec (:mod:`zmtp.codec`).  Sockets come next; until
then :class:`Context` and friends raise :class:`NotImplementedError`.
"""

from zmtp._zmtp import Frame, memory_stats
from zmtp.codec import ProtocolError

__version__ = "0.1.0"

__all__ = ["Frame", "ProtocolError", "memory_stats", "__version__"]
