"""pyzmq's ``zmq.utils.garbage``: the collector of zero-copy send buffers.

pyzmq keeps a thread that frees the Python objects libzmq sent without
copying; zmtp copies every frame it sends, so it holds no such objects:
``gc.refs`` is always empty and there is no thread to start or stop.  The
names exist for programs (and pyzmq's tests) that look at them.

Layering: imports the standard library only.
"""

from __future__ import annotations

from typing import Any, Dict

__all__ = ["GarbageCollector", "gc"]


class GarbageCollector:
    """pyzmq's interface, with nothing to collect: ``refs`` stays empty,
    ``store()`` keeps nothing (zmtp copied the data already)."""

    def __init__(self, context: Any = None) -> None:
        self.refs: Dict[int, Any] = {}
        self.context = context

    @property
    def is_alive(self) -> bool:
        """False: zmtp runs no collector thread."""
        return False

    def start(self) -> None:
        """Nothing to start."""

    def stop(self) -> None:
        """Nothing to stop."""

    def store(self, obj: Any, event: Any = None) -> int:
        """Return a key without keeping ``obj`` (zmtp never references it)."""
        return id(obj)


#: the process's collector (pyzmq's ``zmq.utils.garbage.gc``).
gc = GarbageCollector()
