"""Kernel zero-copy send on loopback (MSG_ZEROCOPY; IORING_OP_SEND_ZC pins pages
the same way) against a plain send, 1 MiB and 16 MiB, interleaved (issue 19).

A raw Python sender and a forked reader over 127.0.0.1; the zero-copy side
drains its completion notes (MSG_ERRQUEUE) as it goes.  Short runs on a shared
machine: compare the two columns of one run, not across runs.

    python benchmarks/zerocopy_loopback.py
"""

from __future__ import annotations

import os
import socket
import statistics
import time

MSG_ZEROCOPY = 0x4000000
SO_ZEROCOPY = 60


def _sink(port: int, total: int) -> None:
    s = socket.create_connection(("127.0.0.1", port))
    buf = bytearray(1 << 20)
    got = 0
    while got < total:
        n = s.recv_into(buf)
        if not n:
            break
        got += n
    s.sendall(b"k")
    s.close()
    os._exit(0)


def run(size: int, count: int, zc: bool) -> float:
    """GB/s for `count` sends of `size` bytes, zero-copy or not."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(1)
    port = lst.getsockname()[1]
    pid = os.fork()
    if pid == 0:
        _sink(port, size * count)
    c, _ = lst.accept()
    if zc:
        c.setsockopt(socket.SOL_SOCKET, SO_ZEROCOPY, 1)
    mv = memoryview(bytes(size))
    t0 = time.perf_counter()
    for _ in range(count):
        off = 0
        while off < size:
            try:
                off += c.send(mv[off:], MSG_ZEROCOPY if zc else 0)
            except OSError as e:
                if e.errno != 105:  # ENOBUFS: notes to drain first
                    raise
            while zc:
                try:
                    c.recvmsg(0, 1024, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT)
                except OSError:
                    break
    c.recv(1)
    dt = time.perf_counter() - t0
    os.waitpid(pid, 0)
    c.close()
    lst.close()
    return size * count / dt / 1e9


def main() -> None:
    """Print the medians of 5 interleaved runs per size."""
    for size in (1 << 20, 16 << 20):
        count = max(16, (512 << 20) // size)
        res: dict = {False: [], True: []}
        for _ in range(5):
            for zc in (False, True):
                res[zc].append(run(size, count, zc))
        plain, zero = statistics.median(res[False]), statistics.median(res[True])
        print(f"{size:>9} plain {plain:.2f} GB/s  zerocopy {zero:.2f} GB/s  ratio {zero / plain:.2f}")


if __name__ == "__main__":
    main()
