"""Receiving frames larger than the read page (issue 19): content from pyzmq
peers over tcp and ipc under both backends, multipart, the memory a 64 MiB
frame costs, a trickled huge claim, recv_into beside pyzmq's, and how many
recv() calls a MiB takes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from helpers import DEADLINE_S, connect_to, psock, wait_for, zsock

import zmtp
from zmtp import codec

zmq = pytest.importorskip("zmq")

PAGE = 65536
KiB = 1 << 10
MiB = 1 << 20


def pattern(size: int, seed: int = 0) -> bytes:
    """size bytes that differ at every offset modulo 251 (a prime: a shifted
    or repeated page shows)."""
    unit = bytes((i * 7 + seed) % 251 for i in range(251))
    return (unit * (size // 251 + 1))[:size]


def endpoint(transport: str, tmp_path: Any, tag: str) -> str:
    return "tcp://127.0.0.1:*" if transport == "tcp" else f"ipc://{tmp_path}/{tag}.ipc"


def pair(binder: str, transport: str, tmp_path: Any, ctx: Any, zctx: Any, **zopts: Any):
    """A pyzmq PUSH and a zmtp PULL, connected; ``binder`` says which binds."""
    push = psock(zctx, zmq.PUSH)
    pull = zsock(ctx, zmtp.PULL, **zopts)
    ep = endpoint(transport, tmp_path, "big")
    if binder == "zmtp":
        pull.bind(ep)
        push.connect(pull.last_endpoint.decode())
    else:
        push.bind(ep)
        pull.connect(push.last_endpoint.decode())
    return push, pull


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
@pytest.mark.parametrize("binder", ["zmtp", "pyzmq"])
@pytest.mark.parametrize("size", [PAGE + 1, MiB, 16 * MiB])
def test_big_frame_from_pyzmq(size, binder, transport, backend, tmp_path, ctx, zctx):
    push, pull = pair(binder, transport, tmp_path, ctx, zctx)
    body = pattern(size)
    push.send(body, copy=False)
    push.send(b"after")
    frame = pull.recv(copy=False)
    assert len(frame) == size and frame.bytes == body
    assert pull.recv() == b"after"
    # a frame is read-only and keeps its buffer alive on its own
    view = memoryview(frame)
    del frame
    assert view.readonly and bytes(view[-251:]) == body[-251:]


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_64mib_frame(transport, backend, tmp_path, ctx, zctx):
    push, pull = pair("zmtp", transport, tmp_path, ctx, zctx)
    body = pattern(64 * MiB, seed=3)
    push.send(body, copy=False)
    got = pull.recv(copy=False)
    assert len(got) == len(body) and got.bytes == body


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_multipart_with_big_frames(transport, backend, tmp_path, ctx, zctx):
    push, pull = pair("pyzmq", transport, tmp_path, ctx, zctx)
    parts = [b"head", pattern(3 * MiB + 17, 1), b"", pattern(PAGE + 1, 2), pattern(2 * PAGE, 4), b"tail"]
    for _ in range(3):
        push.send_multipart(parts, copy=False)
    assert pull.recv_multipart() == parts
    frames = pull.recv_multipart(copy=False)
    assert [f.bytes for f in frames] == parts
    assert [f.more for f in frames] == [True] * 5 + [False]
    got = [pull.recv()]
    while pull.rcvmore:
        got.append(pull.recv())
    assert got == parts


# ------------------------------------------------------------ recv_into


@pytest.mark.parametrize("impl", ["zmtp", "pyzmq"])
def test_recv_into_big_frames(impl, backend, tmp_path, ctx, zctx):
    """recv_into as pyzmq 26+ has it, the same answers from both: the
    frame's size, truncation to the buffer or nbytes, RCVMORE per frame,
    an empty buffer discarding a frame."""
    push = psock(zctx, zmq.PUSH)
    if impl == "zmtp":
        pull = zsock(ctx, zmtp.PULL)
    else:
        pull = psock(zctx, zmq.PULL)
    pull.bind("tcp://127.0.0.1:*")
    push.connect(pull.last_endpoint.decode())
    big = pattern(2 * MiB + 5, 9)
    push.send_multipart([big, pattern(PAGE + 1, 5), b"end"], copy=False)
    push.send(big, copy=False)
    got: list[Any] = []
    buf = bytearray(len(big))
    got += [pull.recv_into(buf), bytes(buf) == big, pull.rcvmore]
    small = bytearray(1000)  # truncated: the frame's size comes back
    got += [pull.recv_into(small), bytes(small) == pattern(PAGE + 1, 5)[:1000], pull.rcvmore]
    got += [pull.recv_into(bytearray(0)), pull.rcvmore]  # discarded
    part = bytearray(MiB)
    got += [pull.recv_into(memoryview(part)[10:], nbytes=100), bytes(part[10:110]) == big[:100]]
    got += [part[:10] == bytearray(10), part[110:] == bytearray(MiB - 110)]
    assert got == [len(big), True, 1, PAGE + 1, True, 1, 3, 0, len(big), True, True, True]


# ------------------------------------------------------------ memory


_MEM_SCRIPT = textwrap.dedent(
    """
    import sys, zmtp
    backend, ep, size, warm, copy = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"
    def status(key):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    ctx = zmtp.Context(backend=backend)
    pull = ctx.socket(zmtp.PULL)
    pull.rcvtimeo = 60000
    pull.connect(ep)
    assert len(pull.recv()) == warm  # a big frame before: allocators warm up
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # VmHWM = VmRSS from here
    base = status("VmRSS")
    frame = pull.recv(copy=copy)
    assert len(frame) == size and memoryview(frame)[-1] == (size - 1) % 256
    assert bytes(memoryview(frame)[:256]) == bytes(range(256))
    print(status("VmHWM") - base, flush=True)
    pull.close(linger=0)
    ctx.term()
    """
)


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
@pytest.mark.parametrize("warm,copy", [(4, False), (20_000_000, False), (4, True)])
def test_memory_receiving_64mib(warm, copy, transport, backend, tmp_path, zctx):
    """Receiving a 64 MiB frame raises the receiver's peak RSS by no more
    than the frame and a little (the issue asks 1.5 times): the buffer grows
    in place by mremap, so the old and the new one are never both resident.
    After a 20 MB frame (``warm``) glibc's realloc no longer maps big
    blocks (its threshold rises): growing by realloc then copied, old and
    new resident together (measured 1.25 times before this change).  With
    copy=True the bytes are a second 64 MiB: the frame's pages are given
    back as they are copied (twice the frame before)."""
    size = 64 * MiB
    push = psock(zctx, zmq.PUSH)
    push.sndtimeo = int(DEADLINE_S * 1000)
    push.bind(endpoint(transport, tmp_path, "mem"))
    proc = subprocess.Popen(
        [sys.executable, "-c", _MEM_SCRIPT, backend, push.last_endpoint.decode(), str(size), str(warm),
         str(int(copy))],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(zmtp.__file__))),
    )
    try:
        push.send(bytes(warm), copy=False)
        push.send(bytes(range(256)) * (size // 256), copy=False)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    peak = int(out.split()[-1])
    # Under AddressSanitizer (scripts/sanitize.sh) the bytes object's malloc has a shadow of 1/8 of it.
    bound = 1.25 if copy and "asan" in os.environ.get("LD_PRELOAD", "") else 1.1
    assert peak <= bound * size, (peak, size)


def test_trickled_huge_claim_is_bounded(backend, ctx):
    """A peer claiming a 2**63-1-byte frame and then trickling its body
    makes zmtp hold about what has arrived (twice at most, plus pages), not
    the claim, at every step past the size where buffers become mappings."""
    pull = zsock(ctx, zmtp.PULL)
    pull.bind("tcp://127.0.0.1:*")
    base = zmtp.memory_stats()["page_bytes_live"]
    s = connect_to(pull.last_endpoint.decode())
    try:
        s.sendall(codec.encode_greeting(1, b"NULL", False) + codec.encode_ready({"Socket-Type": "PUSH"}))
        s.sendall(bytes([0x02]) + (2**63 - 1).to_bytes(8, "big"))
        received = 0
        chunk = pattern(256 * KiB, 6)
        for _ in range(16):  # to 4 MiB
            s.sendall(chunk)
            received += len(chunk)

            def arrived(received: int = received) -> bool:
                try:
                    pull.recv(zmtp.DONTWAIT)
                except zmtp.Again:
                    pass
                # (less a margin: pages of earlier tests may be freed meanwhile)
                return zmtp.memory_stats()["page_bytes_live"] - base >= received - 2 * PAGE

            wait_for(arrived, DEADLINE_S, "the trickled bytes to be read")
            live = zmtp.memory_stats()["page_bytes_live"] - base
            assert live <= 2 * received + 3 * PAGE, (received, live)
    finally:
        s.close()
    wait_for(lambda: zmtp.memory_stats()["page_bytes_live"] - base <= 2 * PAGE or pull.poll(10) != 0,
             DEADLINE_S, "the buffer to be freed once the peer left")
