"""``zmtp.perf``'s scale rows (issue 19), the peer processes' side: the
ROUTER of ``many_peers`` and its DEALER client processes, the receiver of
``big_message_memory``, and the process measurements they need (RSS, its
peak, the descriptor limit).

Layering: imports ``zmtp.perf.links`` only; imported by
the peers and the command line; never imports them.
"""

from __future__ import annotations

import resource
import sys
import time
from typing import Any, List, Optional, Tuple

from zmtp.perf.links import Side, ZmqSide

#: descriptors a process keeps for itself besides its connections (pipes, eventfds, the ring, ...)
FD_SPARE = 64
HELLO = b"hello"
GO = b"go"


def emit(line: str) -> None:
    """A line to the driver (every peer process's way of reporting; zmtp.perf.peers uses it too)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def raise_nofile() -> int:
    """Raise RLIMIT_NOFILE's soft limit to its hard limit; the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


def peers_that_fit(wanted: int, processes: int, fds_per_peer: int = 2) -> Tuple[int, Optional[str]]:
    """(DEALERs that fit under RLIMIT_NOFILE's hard limit, None or why fewer than `wanted`):
    the ROUTER needs one descriptor per peer, each client process `fds_per_peer` per DEALER."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        return wanted, None
    fit = min(hard - FD_SPARE, (hard - FD_SPARE) // fds_per_peer * processes)
    if wanted <= fit:
        return wanted, None
    return max(1, fit), f"--peers {wanted} does not fit RLIMIT_NOFILE's hard limit {hard}: ran {max(1, fit)}"


def status_kib(field: str) -> int:
    """A ``/proc/self/status`` figure in KiB (VmRSS, VmHWM); 0 when absent."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (``/proc/self/clear_refs``, Linux >= 4.0); False when refused."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def set_max_sockets(side: ZmqSide, n: int) -> None:
    """Let the side's Context hold `n` sockets (libzmq's default is 1023)."""
    try:
        side.ctx.set(side.zmq.MAX_SOCKETS, n + FD_SPARE)
    except Exception:  # a library without the limit
        pass


def many_router(side: Side, endpoint: str, peers: int, rounds: int) -> None:
    """The ROUTER of many_peers: ``ready EP``; `peers` hellos (one per DEALER),
    then ``idle BASE_KIB IDLE_KIB`` (RSS after bind, RSS with every peer
    connected and idle); a "go" to each; then echo peers * rounds requests and
    ``result COUNT FIRST_NS LAST_NS``."""
    link = side.bind("router", endpoint, lambda ep: emit(f"ready {ep}"))
    sock: Any = getattr(link, "sock")
    recv, send = sock.recv_multipart, sock.send_multipart
    base = status_kib("VmRSS")
    ids: List[bytes] = [recv()[0] for _ in range(peers)]
    emit(f"idle {base} {status_kib('VmRSS')}")
    for ident in ids:
        send([ident, GO])
    clock = time.perf_counter_ns
    send(recv())
    first = clock()
    for _ in range(peers * rounds - 1):
        send(recv())
    emit(f"result {peers * rounds} {first} {clock()}")


def dealers(side: Side, endpoint: str, peers: int, rounds: int, size: int) -> None:
    """A client process of many_peers: `peers` DEALERs connect, each says hello
    and waits for its "go" (``connected``); then `rounds` rounds, each DEALER
    one round trip in turn; ``times NS,NS,...`` (every round trip) and
    ``served N`` (the replies received)."""
    if isinstance(side, ZmqSide):
        set_max_sockets(side, peers)
    links = [side.connect("dealer", endpoint) for _ in range(peers)]
    for link in links:
        link.send(HELLO)
    for link in links:
        if link.recv() != GO:
            raise RuntimeError("the ROUTER's first message was not 'go'")
    emit("connected")
    payload, clock = b"x" * size, time.perf_counter_ns
    times: List[int] = []
    served = 0
    for _ in range(rounds):
        for link in links:
            t0 = clock()
            link.send(payload)
            reply = link.recv()
            times.append(clock() - t0)
            served += len(reply) == size
    emit("times " + ",".join(map(str, times)))
    emit(f"served {served}")


def big_pull(side: Side, endpoint: str, size: int) -> None:
    """The receiver of big_message_memory: ``ready EP``; its peak RSS reset
    to its idle RSS; one message of `size` bytes; then
    ``result SIZE IDLE_KIB PEAK_KIB RESET`` (RESET 0: the peak could not be
    reset, so it may be the start-up's)."""
    link = side.bind("pull", endpoint, lambda ep: emit(f"ready {ep}"))
    reset = reset_peak()
    idle = status_kib("VmRSS")
    got = len(link.recv())
    if got != size:
        raise ValueError(f"message of {got} bytes received, {size} expected")
    emit(f"result {size} {idle} {status_kib('VmHWM')} {int(reset)}")
