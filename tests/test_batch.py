"""send_batch, send_buffered + flush, and BufferConfig, against pyzmq peers
on both backends."""

from __future__ import annotations

import time

import pytest
import zmq

import zmtp


def push_to_pyzmq(ctx, zctx, **opts):
    pull = zctx.socket(zmq.PULL)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    push = ctx.socket(zmtp.PUSH, **opts)
    push.connect(f"tcp://127.0.0.1:{port}")
    push.send(b"hello")  # the connection is up
    assert pull.recv() == b"hello"
    return push, pull


def test_send_batch_one_flush(backend, ctx, zctx):
    push, pull = push_to_pyzmq(ctx, zctx)
    msgs = [b"m%05d" % i + b"." * 58 for i in range(1000)]
    before = zmtp.io_stats()["sendmsg"]
    assert push.send_batch(msgs) == 1000
    writes = zmtp.io_stats()["sendmsg"] - before
    assert [pull.recv() for _ in range(1000)] == msgs
    write_size = push._buffers(-1, -1, -1)[1]  # 64 KiB: BufferConfig.default()
    assert write_size == zmtp.BufferConfig.default().write_buf_size
    assert writes <= 66_000 // write_size + 3, writes  # 64 KiB writes, not 1000


def test_send_batch_mixes_frames_and_multipart(backend, ctx, zctx):
    push, pull = push_to_pyzmq(ctx, zctx)
    frame = zmtp.Frame(b"framed")
    assert push.send_batch([b"one", [b"two", b"parts"], (b"a", bytearray(b"b"), memoryview(b"c")), frame]) == 4
    got = [pull.recv_multipart() for _ in range(4)]
    assert got == [[b"one"], [b"two", b"parts"], [b"a", b"b", b"c"], [b"framed"]]


def test_send_batch_bad_input(ctx):
    s = ctx.socket(zmtp.PUSH)
    with pytest.raises(TypeError, match="sequence of messages"):
        s.send_batch(b"not a list")
    with pytest.raises(TypeError, match="str"):
        s.send_batch(["text"])
    with pytest.raises(ValueError, match="at least one frame"):
        s.send_batch([[]])
    s.close()
    with pytest.raises(zmtp.ZMQError):
        s.send_batch([b"x"])


def test_send_batch_dontwait_stops_at_hwm(backend, ctx, zctx):
    """A peer that does not read: DONTWAIT queues what fits and says how
    many; nothing is partial, nothing lost of what was counted."""
    push, pull = push_to_pyzmq(ctx, zctx, sndhwm=10)
    body = b"z" * (128 * 1024)
    sent = 0
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            n = push.send_batch([body] * 50, zmtp.DONTWAIT)
        except zmtp.Again:  # not even the first fitted (the last batch filled the queue exactly)
            break
        sent += n
        if n < 50:
            break
    assert 0 < sent < 10_000
    got = 0
    while pull.poll(500):
        assert pull.recv() == body
        got += 1
    assert got == sent


def test_send_buffered_waits_for_flush(backend, ctx, zctx):
    push, pull = push_to_pyzmq(ctx, zctx)
    t0 = time.monotonic()
    before = zmtp.io_stats()["sendmsg"]
    for i in range(5):
        push.send_buffered(b"b%d" % i)
    held = zmtp.io_stats()["sendmsg"] - before
    if time.monotonic() - t0 < 0.0005:  # the 1 ms safety net has not run
        assert held == 0
    push.flush()
    assert [pull.recv() for _ in range(5)] == [b"b%d" % i for i in range(5)]


def test_forgotten_flush_still_sends(backend, ctx, zctx):
    """send_buffered without flush(): the progress thread sends it within
    ~1 ms while the owner does something else."""
    push, pull = push_to_pyzmq(ctx, zctx)
    push.send_buffered([b"multi", b"part"])
    t0 = time.monotonic()
    assert pull.poll(2000)
    assert time.monotonic() - t0 < 1.0  # not ~1 ms on a loaded machine; never sent is poll() == 0
    assert pull.recv_multipart() == [b"multi", b"part"]


def test_buffer_config_presets_and_validation():
    assert zmtp.BufferConfig.default() == zmtp.BufferConfig()
    assert (zmtp.BufferConfig.small().read_buf_size, zmtp.BufferConfig.small().write_buf_size) == (16384, 4096)
    assert zmtp.BufferConfig.large().write_buf_size == 262144
    assert zmtp.BufferConfig.custom(4096, 1024).read_buf_size == 4096
    assert zmtp.BufferConfig.auto().auto_tune
    with pytest.raises(ValueError, match="read_buf_size"):
        zmtp.BufferConfig.custom(10, 1024)
    with pytest.raises(ValueError, match="write_buf_size"):
        zmtp.BufferConfig.custom(4096, 0)
    with pytest.raises(TypeError, match="int"):
        zmtp.BufferConfig.custom(4096.0, 1024)  # type: ignore[arg-type]


def test_config_applies_to_the_socket(ctx):
    s = ctx.socket(zmtp.DEALER, config=zmtp.BufferConfig.custom(4096, 2048))
    assert s._buffers() == (4096, 2048, 0)
    with pytest.raises(TypeError, match="BufferConfig"):
        ctx.socket(zmtp.DEALER, config=(4096, 2048))


def test_small_read_pages_carry_large_messages(backend, ctx, zctx):
    """A 256 B read page still receives a 1 MiB frame (it gets its own
    buffer) and many small ones."""
    push = zctx.socket(zmq.PUSH)
    port = push.bind_to_random_port("tcp://127.0.0.1")
    pull = ctx.socket(zmtp.PULL, config=zmtp.BufferConfig.custom(256, 4096))
    pull.connect(f"tcp://127.0.0.1:{port}")
    big = bytes(range(256)) * 4096
    push.send(big)
    for i in range(100):
        push.send(b"s%d" % i)
    assert pull.recv() == big
    assert [pull.recv() for _ in range(100)] == [b"s%d" % i for i in range(100)]


def test_auto_tunes_the_write_size(backend, ctx, zctx):
    push, pull = push_to_pyzmq(ctx, zctx, config=zmtp.BufferConfig.auto())
    for _ in range(200):
        push.send(b"k" * 2000)
    for _ in range(200):
        pull.recv()
    assert push._buffers()[1] >= 16 * 1024  # ~16 messages of 2 KiB
    for _ in range(200):
        push.send(b"k")
    for _ in range(200):
        pull.recv()
    assert push._buffers()[1] == 4096  # the floor, for tiny messages
