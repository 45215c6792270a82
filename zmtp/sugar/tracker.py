"""MessageTracker, pyzmq's ``zmq.sugar.tracker.MessageTracker``.

A tracker says when zmtp no longer references the caller's buffer (pyzmq's
meaning).  Frames below 64 KiB, and mutable buffers sent with
``copy=True``, are copied into zmtp's pages before ``send`` returns, so
their tracking is done at once (``send(data, copy=False, track=True)``
returns :data:`_FINISHED_TRACKER`, as pyzmq does below its
``copy_threshold``).  A frame of ``copy_threshold`` bytes or more sent with
``copy=False`` (and a large ``bytes`` object with either ``copy``), and a
``Frame(data, copy=False)``, are queued by reference
to the caller's buffer: with ``track=True`` the send returns a tracker of
its own, done once every connection the frame went to has handed the last
byte to the kernel (or was closed); until then the buffer must not change.
The tracker watches the C module's ``_SendRef`` objects for that, besides
what pyzmq's watches: ``threading.Event`` objects, tracked Frames and other
trackers (a tracker of an unset Event is not done, and ``wait(timeout)``
raises ``NotDone``).

Layering: imports ``zmtp.error`` and the C module (Frame, _SendRef);
imported by the package face and ``zmtp.sugar``.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Set, Union

from zmtp._zmtp import Frame, _SendRef
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
    _refs: Set[_SendRef]

    def __init__(self, *towatch: Union["MessageTracker", threading.Event, Frame, _SendRef]) -> None:
        self.events = set()
        self.peers = set()
        self._refs = set()
        for obj in towatch:
            if isinstance(obj, _SendRef):
                self._refs.add(obj)
            elif isinstance(obj, threading.Event):
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
        """True when every watched event is set, every peer tracker done and
        every frame zmtp sent by reference written (or dropped with its
        connection)."""
        return (
            all(r.done for r in self._refs)
            and all(e.is_set() for e in self.events)
            and all(p.done for p in self.peers)
        )

    def wait(self, timeout: Any = -1) -> None:
        """Return once done; raise :class:`zmtp.NotDone` after ``timeout``
        seconds (-1, or a negative number: no limit)."""
        if timeout is False or timeout is None or timeout < 0:
            deadline = None
        else:
            deadline = time.monotonic() + timeout
        pause = 0.0001
        while not all(r.done for r in self._refs):
            # No event to wait on: the release may happen on zmtp's
            # progress thread, which never takes the GIL (docs/decisions.md).
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise NotDone
            time.sleep(pause if left is None else min(pause, left))
            pause = min(pause * 2, 0.01)
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
