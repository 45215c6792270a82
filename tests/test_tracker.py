"""Message tracking (issue 18, item 3): ``send(..., track=True)``,
``Frame(data, track=True).tracker``, ``MessageTracker``, ``NotDone``,
``_FINISHED_TRACKER``, each beside pyzmq doing the same.

zmtp copies frames below 64 KiB before ``send`` returns, so their trackers
are done at once (pyzmq's are for the messages it copies: below its
copy_threshold); larger ``copy=False`` frames go by reference (issue 19) and
their trackers are done once written, as pyzmq's (the paused-peer contract:
tests/test_zero_copy_send.py).  The messages arrive at a pyzmq peer over tcp
and ipc, whichever side binds.
"""

from __future__ import annotations

import copy
import threading
from typing import Any, Tuple

import pytest
import zmq

import zmtp
from helpers import psock, zsock

# ------------------------------------------------------------ the objects


@pytest.mark.parametrize("lib", [zmtp, zmq], ids=["zmtp", "pyzmq"])
def test_finished_tracker_and_notdone(lib: Any) -> None:
    assert isinstance(lib._FINISHED_TRACKER, lib.MessageTracker)
    assert lib._FINISHED_TRACKER.done
    lib._FINISHED_TRACKER.wait(0)
    assert issubclass(lib.NotDone, Exception)
    assert lib.MessageTracker().done  # nothing to watch: done


@pytest.mark.parametrize("lib", [zmtp, zmq], ids=["zmtp", "pyzmq"])
def test_tracker_of_events_waits_and_times_out(lib: Any) -> None:
    evt = threading.Event()
    t = lib.MessageTracker(evt, lib._FINISHED_TRACKER)
    assert not t.done
    with pytest.raises(lib.NotDone):
        t.wait(0.05)
    evt.set()
    assert t.done
    t.wait(0.05)
    t.wait()


@pytest.mark.parametrize("lib", [zmtp, zmq], ids=["zmtp", "pyzmq"])
def test_tracker_refuses_untracked_frames_and_other_objects(lib: Any) -> None:
    with pytest.raises(ValueError, match="Not a tracked message"):
        lib.MessageTracker(lib.Frame(b"x"))
    with pytest.raises(TypeError):
        lib.MessageTracker(object())


def test_frame_track() -> None:
    """Frame(data, track=True) has a tracker (zmtp's is done at once: the
    Frame holds its own copy); an untracked Frame's tracker is None, as
    pyzmq's."""
    assert zmtp.Frame(b"x").tracker is None and zmq.Frame(b"x").tracker is None
    f = zmtp.Frame(b"hello", track=True)
    assert isinstance(zmq.Frame(b"hello", track=True).tracker, zmq.MessageTracker)
    assert isinstance(f.tracker, zmtp.MessageTracker) and f.tracker.done
    both = zmtp.MessageTracker(f)  # a tracked Frame is watchable, as in pyzmq
    assert both.done
    for lib in (zmtp, zmq):  # copy.copy keeps the tracking, as pyzmq's
        assert copy.copy(lib.Frame(b"x")).tracker is None
        c = copy.copy(lib.Frame(b"asdf", track=True))
        assert isinstance(c.tracker, lib.MessageTracker) and c.bytes == b"asdf"


# ------------------------------------------------------------ sends


def _pair(ctx: Any, zctx: Any, tmp_path: Any, transport: str, zmtp_binds: bool) -> Tuple[Any, Any]:
    """A zmtp PUSH and a pyzmq PULL joined over ``transport``."""
    push, pull = zsock(ctx, zmtp.PUSH), psock(zctx, zmq.PULL)
    if transport == "tcp":
        addr = "tcp://127.0.0.1:*"
    else:
        addr = f"ipc://{tmp_path}/track.ipc"
    binder, connecter = (push, pull) if zmtp_binds else (pull, push)
    binder.bind(addr)
    endpoint = binder.last_endpoint
    connecter.connect(endpoint.decode() if isinstance(endpoint, bytes) else endpoint)
    return push, pull


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
@pytest.mark.parametrize("zmtp_binds", [True, False], ids=["zmtp_binds", "pyzmq_binds"])
def test_send_track_results_like_pyzmq(backend: str, ctx: Any, zctx: Any, tmp_path: Any, transport: str,
                                       zmtp_binds: bool) -> None:
    """What each send returns, zmtp beside pyzmq (a pyzmq PUSH to a pyzmq
    PULL): copy=True -> None; copy=False of a small message -> the
    finished tracker (pyzmq copied it too); a tracked Frame -> a tracker
    that becomes done; send_multipart -> the last frame's result."""
    push, pull = _pair(ctx, zctx, tmp_path, transport, zmtp_binds)
    ppush, ppull = psock(zctx, zmq.PUSH), psock(zctx, zmq.PULL)
    port = ppull.bind_to_random_port("tcp://127.0.0.1")
    ppush.connect(f"tcp://127.0.0.1:{port}")

    assert push.send(b"a", track=True) is None
    assert ppush.send(b"a", track=True) is None
    t = push.send(b"b", copy=False, track=True)
    p = ppush.send(b"b", copy=False, track=True)
    assert t is zmtp._FINISHED_TRACKER and p is zmq._FINISHED_TRACKER
    f = zmtp.Frame(b"c", track=True)
    t = push.send(f, track=True)
    p = ppush.send(zmq.Frame(b"c", track=True), track=True)
    assert isinstance(t, zmtp.MessageTracker) and isinstance(p, zmq.MessageTracker)
    t.wait(10)
    p.wait(10)
    assert push.send(zmtp.Frame(b"d")) is None and ppush.send(zmq.Frame(b"d")) is None
    t = push.send_multipart([b"e", b"f"], copy=False, track=True)
    p = ppush.send_multipart([b"e", b"f"], copy=False, track=True)
    assert t.done and isinstance(p, zmq.MessageTracker)
    assert push.send_multipart([b"g"], track=True) is None and ppush.send_multipart([b"g"], track=True) is None
    # untracked Frame with track=True: ValueError, nothing sent
    for sock, lib in ((push, zmtp), (ppush, zmq)):
        with pytest.raises(ValueError, match="Not a tracked message"):
            sock.send(lib.Frame(b"x"), track=True)
    with pytest.raises(ValueError, match="Not a tracked message"):
        push.send_multipart([b"x", zmtp.Frame(b"y")], track=True)

    want = [[b"a"], [b"b"], [b"c"], [b"d"], [b"e", b"f"], [b"g"]]
    assert [pull.recv_multipart() for _ in want] == want
    assert [ppull.recv_multipart() for _ in want] == want
    assert pull.poll(100) == 0  # the refused sends sent nothing


def test_recv_accepts_track(backend: str, ctx: Any) -> None:
    """recv(track=True) is accepted, as pyzmq's (there is nothing to track
    on receive)."""
    a, b = zsock(ctx, zmtp.PAIR), zsock(ctx, zmtp.PAIR)
    a.bind("inproc://recv-track")
    b.connect("inproc://recv-track")
    a.send(b"x")
    assert b.recv(copy=False, track=True) == b"x"
    a.send_multipart([b"y", b"z"])
    assert b.recv_multipart(track=True) == [b"y", b"z"]


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
@pytest.mark.parametrize("zmtp_binds", [True, False], ids=["zmtp_binds", "pyzmq_binds"])
def test_large_send_track_results_like_pyzmq(backend: str, ctx: Any, zctx: Any, tmp_path: Any,
                                             transport: str, zmtp_binds: bool) -> None:
    """Above the copy threshold (issue 19), zmtp beside pyzmq: copy=False,
    track=True returns a tracker of its own (not the finished one) that
    becomes done once the peer has the frame; copy=False untracked returns
    None; MessageTracker of such a tracker waits for it too."""
    push, pull = _pair(ctx, zctx, tmp_path, transport, zmtp_binds)
    ppush, ppull = psock(zctx, zmq.PUSH), psock(zctx, zmq.PULL)
    port = ppull.bind_to_random_port("tcp://127.0.0.1")
    ppush.connect(f"tcp://127.0.0.1:{port}")
    big = bytearray(b"z" * (1 << 20))
    for sock, lib, other in ((push, zmtp, pull), (ppush, zmq, ppull)):
        t = sock.send(big, copy=False, track=True)
        assert isinstance(t, lib.MessageTracker) and t is not lib._FINISHED_TRACKER
        assert sock.send(big, copy=False) is None
        both = lib.MessageTracker(t)
        assert other.recv() == big and other.recv() == big
        t.wait(10)
        both.wait(10)
        assert t.done and both.done
