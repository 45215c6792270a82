"""MessageTracker, pyzmq's ``zmq.sugar.tracker.MessageTracker``.

A tracker says when zmtp no longer references the caller's buffer (pyzmq's
meaning).  zmtp copies every frame into its own pages before ``send``
returns (``copy=False`` too), so a tracker from a send is done at once:
``send(data, copy=False)`` and ``send(frame)`` of a ``Frame(data,
track=True)`` return :data:`_FINISHED_TRACKER`, as pyzmq does for a message
it copied (below its ``copy_threshold``); ``copy=True`` returns None, as
pyzmq's.  Should zmtp send large messages without copying one day, those
sends would return a tracker of their own, done when the kernel has taken
the bytes; the interface stays this one.  The class still watches what it
is given, as pyzmq's does: ``threading.Event`` objects, tracked Frames and
other trackers (a tracker of an unset Event is not done, and
``wait(timeout)`` raises ``NotDone``).

Layering: imports ``zmtp.error`` and the C module (Frame); imported by the package face and
``zmtp.sugar``.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Set, Union

from zmtp._zmtp import Frame
from zmtp.error import NotDone

__all__ = ["MessageTracker", "_FINISHED_TRACKER"]


class MessageTracker:
    """Whether zmtp is done with one or more messages (pyzmq's interface:
    ``done``, ``wait(timeout=-1)``, ``events``, ``peers``).

    ``towatch``: ``threading.Event`` objects (done once set), other
    MessageTrackers and tracked Frames (``Frame(data, track=True)``).  With nothing to watch it is done from the start, as
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
                if obj.tracker is None:
                    raise ValueError("Not a tracked message")
                self.peers.add(obj.tracker)
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


#: The tracker of every message zmtp has copied: done, its ``wait()``
#: returns at once (pyzmq's ``zmq._FINISHED_TRACKER``).
_FINISHED_TRACKER = MessageTracker()
