"""Large frames sent without a copy (issue 19, "Zero-copy send of large frames").

A frame of 64 KiB or more is queued by reference to the caller's buffer
(``bytes`` whatever ``copy`` says; any buffer with ``copy=False``) and kept
alive until every connection it went to has handed its last byte to the
kernel; ``send(..., copy=False, track=True)`` returns a MessageTracker that
says so.  Checked against pyzmq 27.3 peers over tcp and ipc, zmtp binding
and pyzmq binding, under both backends: content, fan-out, the tracker's
contract (beside pyzmq's), no leak after close / term / a peer's death, and
the counters showing that the payload was not copied.
"""

from __future__ import annotations

import gc
from typing import Any, Callable, Dict, Tuple

import pytest
import zmq

import zmtp
from helpers import DEADLINE_S, psock, wait_for, zsock
from zmtp._zmtp import _SendRef

MiB = 1 << 20


def _stats() -> Dict[str, int]:
    """External pages and _SendRefs alive (released ones drained first)."""
    return dict(_SendRef._stats())


def _pair(ctx: Any, zctx: Any, tmp_path: Any, transport: str, zmtp_binds: bool,
          name: str = "zc", **pull_opts: Any) -> Tuple[Any, Any]:
    """A zmtp PUSH and a pyzmq PULL joined over ``transport``."""
    push, pull = zsock(ctx, zmtp.PUSH), psock(zctx, zmq.PULL, **pull_opts)
    addr = "tcp://127.0.0.1:*" if transport == "tcp" else f"ipc://{tmp_path}/{name}.ipc"
    binder, connecter = (push, pull) if zmtp_binds else (pull, push)
    binder.bind(addr)
    ep = binder.last_endpoint
    connecter.connect(ep.decode() if isinstance(ep, bytes) else ep)
    return push, pull


def _payload(size: int) -> bytes:
    """Bytes that differ along the frame (a misplaced slice shows)."""
    block = bytes(range(256)) * 256
    return (block * (size // len(block) + 1))[:size]


def _as(kind: str, data: bytes) -> Any:
    if kind == "bytes":
        return data
    if kind == "bytearray":
        return bytearray(data)
    if kind == "memoryview":
        return memoryview(bytearray(data))
    np = pytest.importorskip("numpy")
    return np.frombuffer(data, dtype=np.uint8).copy()


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
@pytest.mark.parametrize("zmtp_binds", [True, False], ids=["zmtp_binds", "pyzmq_binds"])
@pytest.mark.parametrize("kind", ["bytes", "bytearray", "memoryview", "numpy"])
def test_large_frames_by_reference_to_pyzmq(backend: str, ctx: Any, zctx: Any, tmp_path: Any,
                                            transport: str, zmtp_binds: bool, kind: str) -> None:
    """64 KiB .. 16 MiB frames, alone and inside multipart messages, reach a
    pyzmq PULL whole; each goes as one external page (no copy)."""
    push, pull = _pair(ctx, zctx, tmp_path, transport, zmtp_binds)
    for size in (64 * 1024, 256 * 1024, MiB, 16 * MiB):
        data = _payload(size)
        obj = _as(kind, data)
        before = _stats()["ext_pages_total"]
        push.send(obj, copy=False)
        push.send_multipart([b"head", obj, b"tail"], copy=False)
        assert _stats()["ext_pages_total"] - before == 2  # by reference, twice
        assert pull.recv() == data
        assert pull.recv_multipart() == [b"head", data, b"tail"]
    wait_for(lambda: _stats()["ext_pages_live"] == 0, DEADLINE_S, "the references released")


def test_64_mib_frame(backend: str, ctx: Any, zctx: Any, tmp_path: Any) -> None:
    """The top of the issue's range, once: 64 MiB of bytes (copy=True: bytes
    cannot change, so they go by reference too)."""
    push, pull = _pair(ctx, zctx, tmp_path, "tcp", True)
    data = _payload(64 * MiB)
    before = _stats()["ext_pages_total"]
    assert push.send(data) is None  # copy=True: None, as pyzmq
    assert _stats()["ext_pages_total"] - before == 1
    assert pull.recv(copy=False).bytes == data


def test_small_and_mutable_copy_true_frames_are_copied(backend: str, ctx: Any, zctx: Any,
                                                       tmp_path: Any) -> None:
    """Below 64 KiB, and a mutable buffer with copy=True, zmtp copies (as
    pyzmq): no external page, and changing the buffer after send() does not
    change what the peer gets."""
    push, pull = _pair(ctx, zctx, tmp_path, "tcp", True)
    before = _stats()["ext_pages_total"]
    push.send(_payload(64 * 1024 - 1), copy=False)
    ba = bytearray(_payload(MiB))
    push.send(ba)  # copy=True
    ba[:4] = b"XXXX"
    assert _stats()["ext_pages_total"] == before
    assert pull.recv() == _payload(64 * 1024 - 1)
    assert pull.recv() == _payload(MiB)


def test_payload_not_copied_counts(backend: str, ctx: Any, zctx: Any, tmp_path: Any) -> None:
    """The counters: a 16 MiB frame by reference allocates a handful of
    pages (headers), the same frame copied takes a page per 16 KiB of the
    output queue (so the count below can fail)."""
    push, pull = _pair(ctx, zctx, tmp_path, "tcp", True)
    data = _payload(16 * MiB)
    push.send(b"warm")
    assert pull.recv() == b"warm"

    def pages_for_one_send() -> int:
        before = zmtp.memory_stats()["pages_total"]
        push.send(data)
        after = zmtp.memory_stats()["pages_total"]
        assert pull.recv(copy=False).bytes == data
        return after - before

    by_ref = pages_for_one_send()
    try:
        _SendRef._set_threshold(len(data) + 1)  # copied
        copied = pages_for_one_send()
    finally:
        _SendRef._set_threshold(0)
    assert by_ref < 64, by_ref  # headers (and other sockets of the process)
    assert copied >= 16 * MiB // (16 * 1024) // 2, copied


def test_fanout_one_reference_for_every_subscriber(backend: str, ctx: Any, zctx: Any,
                                                   tmp_path: Any) -> None:
    """PUB to three pyzmq SUBs (tcp and ipc) and a zmtp SUB over inproc: one
    external page per frame, whatever the number of subscribers; all get it
    whole; released once the last has it."""
    pub = zsock(ctx, zmtp.PUB)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    pub.bind(f"ipc://{tmp_path}/fan.ipc")
    pub.bind("inproc://zc-fan")
    subs = [psock(zctx, zmq.SUB) for _ in range(3)]
    for i, s in enumerate(subs):
        s.setsockopt(zmq.SUBSCRIBE, b"")
        s.connect(f"tcp://127.0.0.1:{port}" if i < 2 else f"ipc://{tmp_path}/fan.ipc")
    zsub = zsock(ctx, zmtp.SUB)
    zsub.subscribe(b"")
    zsub.connect("inproc://zc-fan")
    everyone: list = [*subs, zsub]

    def all_joined() -> bool:
        pub.send(b"hello")
        return all(s.poll(50) for s in everyone)

    wait_for(all_joined, DEADLINE_S, "every SUB subscribed")
    for s in everyone:
        while s.poll(100):
            s.recv()
    data = _payload(4 * MiB)
    before = _stats()["ext_pages_total"]
    t = pub.send(bytearray(data), copy=False, track=True)
    pub.send_multipart([b"topic", data])
    assert _stats()["ext_pages_total"] - before == 2
    for s in everyone:
        assert s.recv() == data
        assert s.recv_multipart() == [b"topic", data]
    t.wait(DEADLINE_S)
    del t
    wait_for(lambda: _stats()["ext_pages_live"] == 0, DEADLINE_S, "the references released")


# ------------------------------------------------------------ the tracker


def _paused_peer(ctx: Any, zctx: Any, tmp_path: Any, transport: str, zmtp_binds: bool,
                 sender: str) -> Tuple[Any, Any]:
    """A PUSH (zmtp or pyzmq) to a pyzmq PULL that does not read: its
    receive queue holds one message and its kernel buffer is small, so
    after three small messages a 32 MiB frame cannot all leave the
    sender (loopback buffers are a few MiB)."""
    if sender == "zmtp":
        push, pull = _pair(ctx, zctx, tmp_path, transport, zmtp_binds, name="paused",
                           rcvhwm=1, rcvbuf=4096)
    else:
        push = psock(zctx, zmq.PUSH)
        pull = psock(zctx, zmq.PULL, rcvhwm=1, rcvbuf=4096)
        port = pull.bind_to_random_port("tcp://127.0.0.1")
        push.connect(f"tcp://127.0.0.1:{port}")
    for i in range(3):
        push.send(b"filler%d" % i)
    return push, pull


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
@pytest.mark.parametrize("zmtp_binds", [True, False], ids=["zmtp_binds", "pyzmq_binds"])
def test_tracker_waits_for_the_kernel(backend: str, ctx: Any, zctx: Any, tmp_path: Any,
                                      transport: str, zmtp_binds: bool) -> None:
    """copy=False, track=True: not done while the peer does not read (its
    buffers are full: the frame cannot have left), wait(timeout) raises
    NotDone; done after the peer reads; the caller's bytearray is not read
    after done (changed then, the peer still gets the bytes sent)."""
    push, pull = _paused_peer(ctx, zctx, tmp_path, transport, zmtp_binds, "zmtp")
    data = _payload(32 * MiB)
    ba = bytearray(data)
    t = push.send(ba, copy=False, track=True)
    assert isinstance(t, zmtp.MessageTracker)
    assert not t.done
    with pytest.raises(zmtp.NotDone):
        t.wait(0.05)
    assert zmtp.MessageTracker(t).done is False  # watchable by another tracker
    for i in range(3):
        assert pull.recv() == b"filler%d" % i
    t.wait(DEADLINE_S)  # the peer's libzmq read the frame off the socket
    assert t.done
    ba[:] = b"\x00" * len(ba)  # after done: zmtp no longer reads it
    ba.extend(b"resizable again")  # and holds no view of it
    assert pull.recv(copy=False).bytes == data


def test_pyzmq_tracker_same_contract(zctx: Any, tmp_path: Any) -> None:
    """The same sequence with a pyzmq sender: the contract the zmtp test
    asserts is pyzmq's."""
    push, pull = _paused_peer(None, zctx, tmp_path, "tcp", False, "pyzmq")
    data = _payload(32 * MiB)
    t = push.send(bytearray(data), copy=False, track=True)
    assert isinstance(t, zmq.MessageTracker)
    with pytest.raises(zmq.NotDone):
        t.wait(0.05)
    for i in range(3):
        assert pull.recv() == b"filler%d" % i
    t.wait(DEADLINE_S)
    assert pull.recv() == data


def test_track_results(backend: str, ctx: Any, zctx: Any, tmp_path: Any) -> None:
    """What a large send returns, as pyzmq: copy=True None; copy=False
    untracked None (pyzmq's untracked Frame); copy=False tracked a tracker
    of its own; send_multipart's tracker watches every large frame."""
    push, pull = _pair(ctx, zctx, tmp_path, "tcp", True)
    data = _payload(MiB)
    assert push.send(data) is None
    assert push.send(data, copy=False) is None
    t = push.send(data, copy=False, track=True)
    assert isinstance(t, zmtp.MessageTracker) and t is not zmtp._FINISHED_TRACKER
    tm = push.send_multipart([data, b"small"], copy=False, track=True)
    assert isinstance(tm, zmtp.MessageTracker) and tm is not zmtp._FINISHED_TRACKER
    for _ in range(3):
        assert pull.recv() == data
    assert pull.recv_multipart() == [data, b"small"]
    t.wait(DEADLINE_S)
    tm.wait(DEADLINE_S)


def test_inproc_by_reference_until_the_frame_goes(backend: str, ctx: Any) -> None:
    """inproc: the receiver's zero-copy Frame references the sender's buffer
    (no copy at all); the tracker is done when that Frame is dropped."""
    push, pull = zsock(ctx, zmtp.PUSH), zsock(ctx, zmtp.PULL)
    pull.bind("inproc://zc-inproc")
    push.connect("inproc://zc-inproc")
    data = _payload(MiB)
    ba = bytearray(data)
    t = push.send(ba, copy=False, track=True)
    f = pull.recv(copy=False)
    assert f.bytes == data
    assert not t.done  # the Frame still references ba
    del f
    gc.collect()
    t.wait(DEADLINE_S)
    push.send(ba, copy=False)
    assert pull.recv() == data  # copy=True: copied out, released at once


def test_received_frame_forwarded_without_copy(backend: str, ctx: Any, zctx: Any,
                                               tmp_path: Any) -> None:
    """A proxy: a large Frame received with copy=False and sent on is
    queued by reference to its read page (no new payload pages)."""
    src = psock(zctx, zmq.PUSH)
    mid_in = zsock(ctx, zmtp.PULL)
    port = mid_in.bind_to_random_port("tcp://127.0.0.1")
    src.connect(f"tcp://127.0.0.1:{port}")
    mid_out, dst = _pair(ctx, zctx, tmp_path, "tcp", True, name="fwd")
    data = _payload(8 * MiB)
    src.send(data)
    f = mid_in.recv(copy=False)
    before = zmtp.memory_stats()["pages_total"]
    mid_out.send(f)
    # 512 pages of 16 KiB were it copied; other sockets of this process
    # may take a few pages meanwhile (the counter is process wide)
    assert zmtp.memory_stats()["pages_total"] - before < 64
    assert dst.recv() == data


# ------------------------------------------------------------ no leak


def _queued_then(ctx: Any, zctx: Any, tmp_path: Any, end: Callable[[Any, Any], None]) -> None:
    """Frames by reference queued to a paused peer, then `end` (close,
    term, the peer's death): every reference is released."""
    base = _stats()
    push, pull = _paused_peer(ctx, zctx, tmp_path, "tcp", True, "zmtp")
    t = push.send(bytearray(_payload(32 * MiB)), copy=False, track=True)
    push.send(_payload(MiB))
    assert not t.done
    end(push, pull)
    t.wait(DEADLINE_S)
    del t
    wait_for(lambda: _stats()["ext_pages_live"] == base["ext_pages_live"], DEADLINE_S,
             "every external page released")
    wait_for(lambda: _stats()["send_refs_live"] <= base["send_refs_live"], DEADLINE_S,
             "every _SendRef dropped")


def test_close_releases_queued_references(backend: str, ctx: Any, zctx: Any, tmp_path: Any) -> None:
    _queued_then(ctx, zctx, tmp_path, lambda push, pull: push.close(linger=0))


def test_term_releases_queued_references(backend: str, zctx: Any, tmp_path: Any) -> None:
    c = zmtp.Context()

    def end(push: Any, pull: Any) -> None:
        c.destroy(linger=0)  # close every socket, then term()

    _queued_then(c, zctx, tmp_path, end)


def test_peer_death_releases_queued_references(backend: str, ctx: Any, zctx: Any,
                                               tmp_path: Any) -> None:
    _queued_then(ctx, zctx, tmp_path, lambda push, pull: pull.close(linger=0))


def test_frame_of_data_is_copied(backend: str, ctx: Any, zctx: Any, tmp_path: Any) -> None:
    """Frame(data, copy=True) (writable, its tracker done at once) is copied
    when sent: changing its buffer after send() does not change what the
    peer gets, even while the frame waits behind a paused peer."""
    push, pull = _paused_peer(ctx, zctx, tmp_path, "tcp", True, "zmtp")
    data = _payload(32 * MiB)
    f = zmtp.Frame(data, track=True, copy=True)
    assert f.tracker.done
    push.send(f, copy=False)
    f.buffer[-4:] = b"XXXX"  # the end: still in zmtp's queue were it referenced
    for i in range(3):
        assert pull.recv() == b"filler%d" % i
    assert pull.recv() == data


def test_frame_copy_false_references_data(backend: str, ctx: Any, zctx: Any, tmp_path: Any) -> None:
    """Frame(data, copy=False, track=True), as pyzmq's: no copy (the Frame
    and the queues it is sent to reference data); its tracker is done once
    the Frame is gone and every send of it written; sending it twice
    queues two references to the same bytes."""
    push, pull = _paused_peer(ctx, zctx, tmp_path, "tcp", True, "zmtp")
    data = _payload(32 * MiB)
    before = _stats()["ext_pages_total"]
    f = zmtp.Frame(bytearray(data), copy=False, track=True)
    assert _stats()["ext_pages_total"] - before == 1
    t = f.tracker
    assert not t.done
    assert push.send(f, copy=False).done is False  # the Frame's tracker, as pyzmq
    push.send(f)
    for i in range(3):
        assert pull.recv() == b"filler%d" % i
    assert pull.recv() == data and pull.recv() == data
    assert not t.done  # the Frame still holds data
    del f
    gc.collect()
    t.wait(DEADLINE_S)
    assert _stats()["ext_pages_total"] - before == 1  # never copied into another


# ------------------------------------------------------------ other socket types, CURVE


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_router_and_req_large_frames(backend: str, ctx: Any, zctx: Any, tmp_path: Any,
                                     transport: str) -> None:
    """REQ -> pyzmq REP and ROUTER -> pyzmq DEALER with 4 MiB frames by
    reference (envelopes and routing ids copied around them)."""
    data = _payload(4 * MiB)
    addr = "tcp://127.0.0.1:*" if transport == "tcp" else f"ipc://{tmp_path}/rr.ipc"
    req, rep = zsock(ctx, zmtp.REQ), psock(zctx, zmq.REP)
    rep.bind(addr)
    req.connect(rep.last_endpoint.decode())
    before = _stats()["ext_pages_total"]
    req.send(data)
    assert rep.recv() == data
    rep.send(data)
    assert req.recv() == data
    router, dealer = zsock(ctx, zmtp.ROUTER), psock(zctx, zmq.DEALER, routing_id=b"d1")
    addr2 = "tcp://127.0.0.1:*" if transport == "tcp" else f"ipc://{tmp_path}/rt.ipc"
    router.bind(addr2)
    dealer.connect(router.last_endpoint.decode() if isinstance(router.last_endpoint, bytes)
                   else router.last_endpoint)
    dealer.send(b"hi")
    assert router.recv_multipart() == [b"d1", b"hi"]
    router.send_multipart([b"d1", data, bytearray(data)], copy=False)
    assert dealer.recv_multipart() == [data, data]
    assert _stats()["ext_pages_total"] - before == 3


def test_curve_large_frames(backend: str, ctx: Any, zctx: Any) -> None:
    """CURVE seals from the queue (by reference too): a 4 MiB frame by
    reference reaches a pyzmq CURVE server whole."""
    try:
        cpub, csec = zmtp.curve_keypair()
    except Exception as e:  # libsodium absent
        pytest.skip(f"CURVE unavailable: {e}")
    spub, ssec = zmq.curve_keypair()
    pull = psock(zctx, zmq.PULL)
    pull.curve_server = True
    pull.curve_secretkey = ssec
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    push = zsock(ctx, zmtp.PUSH)
    push.curve_serverkey = spub
    push.curve_publickey = cpub
    push.curve_secretkey = csec
    push.connect(f"tcp://127.0.0.1:{port}")
    data = _payload(4 * MiB)
    push.send_multipart([b"a", data, bytearray(data)], copy=False)
    assert pull.recv_multipart() == [b"a", data, data]


def test_copy_threshold_per_socket(backend: str, ctx: Any, zctx: Any, tmp_path: Any) -> None:
    """Socket.copy_threshold, as pyzmq's: with copy=False, 0 sends even a
    small frame by reference (its tracker waits for the paused peer), a
    threshold above the size copies a large one (done at once)."""
    push, pull = _paused_peer(ctx, zctx, tmp_path, "tcp", True, "zmtp")
    assert push.copy_threshold == 65536  # pyzmq's default
    big = _payload(32 * MiB)
    push.copy_threshold = len(big) + 1
    before = _stats()["ext_pages_total"]
    assert push.send(bytearray(big), copy=False, track=True) is zmtp._FINISHED_TRACKER
    assert _stats()["ext_pages_total"] == before
    push.copy_threshold = 0
    t = push.send_multipart([b"small", b"frames"], copy=False, track=True)
    assert _stats()["ext_pages_total"] - before == 2
    assert not t.done  # behind the 32 MiB frame and the paused peer
    for i in range(3):
        assert pull.recv() == b"filler%d" % i
    assert pull.recv() == big
    assert pull.recv_multipart() == [b"small", b"frames"]
    t.wait(DEADLINE_S)
