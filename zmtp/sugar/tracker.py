"""MessageTracker, pyzmq's ``zmq.sugar.tracker.MessageTracker``.

zmtp copies every message when it is sent (``copy=False`` too: the bytes
are in a page of the sending socket before ``send`` returns), so the
caller's buffer is free at once and there is nothing to track: a tracker
built from nothing, or from trackers that are done, is ``done`` and its
``wait()`` returns at once.  The class still watches what it is given, as
pyzmq's does: ``threading.Event`` objects and other trackers (a tracker of
an unset Event is not done, and ``wait(timeout)`` raises ``NotDone``).
``send(..., track=True)`` is not available yet (it raises
NotImplementedError, src/py_sockio.c); Frames carry no tracker.

Layering: imports ``zmtp.error`` and the C module (Frame); imported by the package face and
``zmtp.sugar``.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Set, Union

from zmtp._zmtp import Frame
from zmtp.error import NotDone

__all__ = ["MessageTracker"]


class MessageTracker:
    """Whether zmtp is done with one or more messages (pyzmq's interface:
    ``done``, ``wait(timeout=-1)``, ``events``, ``peers``).

    ``towatch``: ``threading.Event`` objects (done once set) and other
    MessageTrackers.  With nothing to watch it is done from the start, as
    pyzmq's ``MessageTracker()``, which jupyter_client's Session keeps as
    its "done" tracker.
    """

    events: Set[threading.Event]
    peers: Set["MessageTracker"]

    def __init__(self, *towatch: Union["MessageTracker", threading.Event]) -> None:
        self.events = set()
        self.peers = set()
        for obj in towatch:
            if isinstance(obj, threading.Event):
                self.events.add(obj)
            elif isinstance(obj, MessageTracker):
                self.peers.add(obj)
            elif isinstance(obj, Frame):
                raise ValueError("Not a tracked message (zmtp Frames are copied when sent: nothing to track)")
            else:
                raise TypeError(f"Require Events or Message Frames, not {type(obj)}")

    @property
    def done(self) -> bool:
        """True when every watched event is set and every peer tracker done."""
        return all(e.is_set() for e in self.events) and all(p.done for p in self.peers)

    def wait(self, timeout: Any = -1) -> None:
        """Return once done; raise :class:`zmtp.NotDone` after ``timeout``
        seconds (-1, or a negative number: no limit)."""
        if timeout is False or timeout is None or timeout < 0:
            deadline = None
        else:
            deadline = time.monotonic() + timeout
        for evt in self.events:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not evt.wait(left):
                raise NotDone
        for peer in self.peers:
            left = -1 if deadline is None else max(0.0, deadline - time.monotonic())
            peer.wait(left)
