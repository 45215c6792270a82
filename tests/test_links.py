"""Real links (issue 7, item 4): zmtp in the root network namespace, a pyzmq
peer (``ip netns exec``) in a namespace of its own, the two joined by a veth
pair that the module makes and removes itself.

* Impaired link: REQ/REP and PUSH/PULL, both directions at once, stay exact
  (every message once, in order, byte for byte) with
  - ``netem``: ``tc netem delay 5ms loss 1%`` on both veth ends (skipped with
    tc's reason where the kernel has no sch_netem);
  - ``bpf-loss``: 1 % loss without netem: a classic-BPF ``tc`` filter on the
    ingress of both ends drops a packet when ``ld rand`` says so (no delay:
    plain tc has nothing that delays).
  - ``delay-line``: 5 ms one way and 1 % loss without netem: a userspace
    relay (a process of its own, RELAY) between two TUN devices, one in the
    root namespace and one moved into the peer's, with point-to-point
    addresses 10.214.x.1 <-> 10.214.x.2 beside the veth pair.  It reads each
    IP packet, drops it with probability 1 % (a seeded RNG; the seed is
    printed, ZMTP_LINK_SEED sets it) and writes it to the other device 5 ms
    after it read it, so every round trip takes >= 10 ms (asserted).
  Both veth ends send one MSS a packet (``gso_max_segs 1``), so the loss is
  per wire-sized packet, as on a real link, not per 64 KiB GSO burst; the
  TUN devices have no offloads (no TUNSETOFFLOAD), so they carry complete
  packets of at most their MTU (1500, asserted) with complete checksums.
* Link down for 3 s while traffic flows (``ip link set <root end> down``,
  then ``up``), heartbeats on (200 ms, timeout 600 ms) on both sides; once
  with zmtp dialling (PUSH and DEALER to a pyzmq PULL and ROUTER), once with
  zmtp bound (PULL and ROUTER, pyzmq dials).  zmtp must detect the dead
  connection by its heartbeats, get connected again by itself, and over the
  whole run no message may come twice, out of order, or incomplete (3-frame
  messages).  Messages in flight when the link went down may be lost (ZeroMQ
  semantics); they are counted and must all have been sent in the window
  between the link going down and the heartbeat noticing it.

The peers talk to the test by lines on stdin/stdout; both sides share the
message generators and checkers of COMMON (a deterministic random block, a
sequence number and the send time in each message; the monotonic clock is
the same in every network namespace).  ``pytest -s`` prints the figures.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import shutil
import subprocess
import time
from typing import Any, Dict, List, Optional, Tuple

import pytest

import zmtp
from zmtp.utils.monitor import recv_monitor_message
import helpers
from helpers import zsock

# -- shared by the test and its peers ------------------------------------------

COMMON = r'''
import random
import struct

BLOCK = random.Random(20240607).randbytes(1 << 18)
SEQ = struct.Struct("!Q")
SEQ_TIME = struct.Struct("!Qd")


def body(i, size):
    """size octets of a fixed random block, from an offset that depends on i."""
    off = (i * 7919) % (len(BLOCK) - 65536)
    return BLOCK[off:off + size]


def stream_size(i):
    """0..64 KiB, mostly small (a lossy 10 ms link carries ~2 MB/s)."""
    if i % 256 == 0:
        return (i * 2654435761) % 65537
    if i % 32 == 0:
        return (i * 40503) % 4097
    return (i * 7919) % 256


def stream_msg(i):
    return SEQ.pack(i) + body(i, stream_size(i))


def rr_request(i):
    return SEQ.pack(i) + body(i + 1, (i * 7919) % 3001)


def rr_reply(m):
    return b"re:" + m


def big_size(i):
    return (i * 2654435761) % 65537


def small_size(i):
    return (i * 7919) % 2049


def parts(i, t, size, tag):
    """A 3-frame message: sequence number and send time, body, trailer."""
    return [SEQ_TIME.pack(i, t), body(i, size), b"%s %d" % (tag, i)]


def check_parts(frames, size_of, tag):
    """(seq, send time) of an intact 3-frame message, else ValueError."""
    if len(frames) != 3 or len(frames[0]) != SEQ_TIME.size:
        raise ValueError("%d frames of %s octets" % (len(frames), [len(f) for f in frames[:5]]))
    i, t = SEQ_TIME.unpack(frames[0])
    if frames[1] != body(i, size_of(i)) or frames[2] != b"%s %d" % (tag, i):
        raise ValueError("message %d: frames of %s octets differ" % (i, [len(f) for f in frames]))
    return i, t


def analyse(recs, t_up):
    """recs: (seq, send time, receive time) in the order received.  Repeats
    (a sequence number not above the last one: a duplicate or a reorder),
    gaps [first lost, last lost, send time of the message before, of the one
    after], and the first message received after t_up."""
    out = {"received": len(recs), "repeats": [], "gaps": [], "first_after_up": None}
    last, last_t = -1, None
    for seq, t_sent, t_recv in recs:
        if seq <= last:
            out["repeats"].append(seq)
            continue
        if seq > last + 1:
            out["gaps"].append([last + 1, seq - 1, last_t, t_sent])
        if out["first_after_up"] is None and t_up is not None and t_recv >= t_up:
            out["first_after_up"] = [seq, t_recv]
        last, last_t = seq, t_sent
    out["last"] = last
    out["lost"] = sum(b - a + 1 for a, b, _, _ in out["gaps"])
    return out
'''

C: Dict[str, Any] = {}
exec(COMMON, C)

# -- the pyzmq peers (run in the namespace) --------------------------------------

# REP bound + REQ dialling zmtp's REP, both at once; prints the REQ's round trips.
REQREP_PEER = COMMON + r'''
import json, sys, time, zmq
ip, n = sys.argv[1], int(sys.argv[2])
ctx = zmq.Context()
rep, req = ctx.socket(zmq.REP), ctx.socket(zmq.REQ)
for s in (rep, req):
    s.linger = 0
print("port", rep.bind_to_random_port(f"tcp://{ip}"), flush=True)
req.connect(sys.stdin.readline().split()[1])
poller = zmq.Poller()
poller.register(rep, zmq.POLLIN)
poller.register(req, zmq.POLLIN)
done = served = 0
rtts = []
t = time.monotonic()
req.send(rr_request(0))
while done < n or served < n:
    ev = dict(poller.poll(20000))
    if not ev:
        print("stuck: replies", done, "requests served", served, flush=True)
        sys.exit(1)
    if rep in ev:
        m = rep.recv()
        if m != rr_request(served):
            print("bad request", served, len(m), flush=True)
            sys.exit(1)
        rep.send(rr_reply(m))
        served += 1
    if req in ev:
        r = req.recv()
        if r != rr_reply(rr_request(done)):
            print("bad reply", done, len(r), flush=True)
            sys.exit(1)
        rtts.append(time.monotonic() - t)
        done += 1
        if done < n:
            t = time.monotonic()
            req.send(rr_request(done))
print("done", json.dumps(rtts), flush=True)
sys.stdin.readline()
'''

# PULL bound + PUSH dialling zmtp's PULL, both at once.
STREAM_PEER = COMMON + r'''
import sys, time, zmq
ip, n = sys.argv[1], int(sys.argv[2])
ctx = zmq.Context()
pull, push = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
for s in (pull, push):
    s.linger = 0
print("port", pull.bind_to_random_port(f"tcp://{ip}"), flush=True)
push.connect(sys.stdin.readline().split()[1])
poller = zmq.Poller()
poller.register(pull, zmq.POLLIN)
poller.register(push, zmq.POLLOUT)
got = sent = 0
t_last = 0.0
while got < n or sent < n:
    ev = dict(poller.poll(20000))
    if not ev:
        print("stuck: received", got, "sent", sent, flush=True)
        sys.exit(1)
    if pull in ev:
        while got < n:
            try:
                m = pull.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            if m != stream_msg(got):
                seq = SEQ.unpack_from(m)[0] if len(m) >= 8 else None
                print("bad: expected", got, "got", seq, "of", len(m), "octets", flush=True)
                sys.exit(1)
            got += 1
        t_last = time.monotonic()
    if push in ev:
        while sent < n:
            try:
                push.send(stream_msg(sent), zmq.NOBLOCK)
            except zmq.Again:
                break
            sent += 1
        if sent == n:
            poller.unregister(push)
print("done", t_last, flush=True)
sys.stdin.readline()
'''

# Stdin commands for the outage peers: "up <t>" (the link came back at t),
# "quiet" (stop sending), "stop" (print the result and exit).
LINE_READER = r'''
import os
_buf = b""
def stdin_lines():
    global _buf
    chunk = os.read(0, 4096)
    if not chunk:
        return None
    _buf += chunk
    lines = _buf.split(b"\n")
    _buf = lines.pop()
    return [l.decode().split() for l in lines if l.strip()]
'''

# PULL and ROUTER bound, heartbeating; the ROUTER echoes with "rep".
BOUND_PEER = COMMON + LINE_READER + r'''
import json, sys, time, zmq
ip, hb_ivl, hb_timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ctx = zmq.Context()
pull, router = ctx.socket(zmq.PULL), ctx.socket(zmq.ROUTER)
for s in (pull, router):
    s.linger = 0
    s.heartbeat_ivl = hb_ivl
    s.heartbeat_timeout = hb_timeout
print("ports", pull.bind_to_random_port(f"tcp://{ip}"), router.bind_to_random_port(f"tcp://{ip}"), flush=True)
poller = zmq.Poller()
for s in (pull, router, 0):
    poller.register(s, zmq.POLLIN)
pulled, requests, bad = [], [], []
t_up = None
while True:
    ev = dict(poller.poll())
    now = time.monotonic()
    if pull in ev:
        while True:
            try:
                frames = pull.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            try:
                pulled.append((*check_parts(frames, big_size, b"push"), now))
            except ValueError as e:
                bad.append("PULL: %s" % e)
    if router in ev:
        while True:
            try:
                ident, *frames = router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            try:
                seq, t = check_parts(frames, small_size, b"req")
            except ValueError as e:
                bad.append("ROUTER: %s" % e)
                continue
            requests.append((seq, t, now))
            router.send_multipart([ident, frames[0], frames[1], b"rep %d" % seq], zmq.NOBLOCK)
    if 0 in ev:
        lines = stdin_lines()
        for words in lines or [["stop"]]:
            if words[0] == "up":
                t_up = float(words[1])
            elif words[0] == "stop":
                res = {"pull": analyse(pulled, t_up), "requests": analyse(requests, t_up), "bad": bad}
                print("result", json.dumps(res), flush=True)
                os._exit(0)
'''

# PUSH and DEALER dialling zmtp, heartbeating, sending one message each per
# `pace` seconds (DONTWAIT; refused sends are counted, take no number).
DIALING_PEER = COMMON + LINE_READER + r'''
import json, math, sys, time, zmq
pull_ep, router_ep = sys.argv[1], sys.argv[2]
hb_ivl, hb_timeout, pace = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
ctx = zmq.Context()
push, dealer = ctx.socket(zmq.PUSH), ctx.socket(zmq.DEALER)
for s in (push, dealer):
    s.linger = 0
    s.heartbeat_ivl = hb_ivl
    s.heartbeat_timeout = hb_timeout
    s.reconnect_ivl = 100
    s.connect_timeout = 500  # a SYN lost while the link is down: retry soon
push.connect(pull_ep)
dealer.connect(router_ep)
poller = zmq.Poller()
poller.register(dealer, zmq.POLLIN)
poller.register(0, zmq.POLLIN)
pseq = rseq = refused = 0
replies, bad = [], []
t_up = None
sending = True
next_send = time.monotonic()
print("ready", flush=True)
while True:
    now = time.monotonic()
    if sending and now >= next_send:
        try:
            push.send_multipart(parts(pseq, now, big_size(pseq), b"push"), zmq.NOBLOCK)
            pseq += 1
        except zmq.Again:
            refused += 1
        try:
            dealer.send_multipart(parts(rseq, now, small_size(rseq), b"req"), zmq.NOBLOCK)
            rseq += 1
        except zmq.Again:
            refused += 1
        next_send += pace
        if next_send < now - 0.1:
            next_send = now
    wait = math.ceil(max(0.0, next_send - time.monotonic()) * 1000) if sending else 100
    ev = dict(poller.poll(wait))
    if dealer in ev:
        while True:
            try:
                frames = dealer.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            try:
                replies.append((*check_parts(frames, small_size, b"rep"), time.monotonic()))
            except ValueError as e:
                bad.append("DEALER: %s" % e)
    if 0 in ev:
        lines = stdin_lines()
        for words in lines or [["stop"]]:
            if words[0] == "up":
                t_up = float(words[1])
            elif words[0] == "quiet":
                sending = False
            elif words[0] == "stop":
                res = {"replies": analyse(replies, t_up), "bad": bad, "sent": pseq,
                       "requested": rseq, "refused": refused}
                print("result", json.dumps(res), flush=True)
                os._exit(0)
'''

# The delay line's relay, in the root namespace: creates TUN devices argv[1]
# and argv[2] (IFF_TUN | IFF_NO_PI: bare IP packets, one a read or write; not
# persistent, so they vanish with the process) and carries every packet read
# from one to the other `delay` s later unless the RNG drops it (`loss`).  A
# fixed delay keeps each direction first in, first out: one deque each.
# "stats" on stdin prints the counters; EOF on stdin (the test process gone)
# ends it.  Capacity, measured on the 2-core test machine: ~140k packets/s
# (bulk TCP through it, 5 ms, no loss: 180 MB/s at MTU 1500; with 1 % loss
# ~90k packets/s, 105 MB/s).  The PUSH/PULL test peaks at 50-95k packets/s
# over 100 ms while both peers compete for the same cores: writes may then
# come a few ms late (the delay is 5 ms plus that, never less; printed as
# "late"), and the TUN queues drop nothing (asserted).  So the MTU stays
# 1500 and the loss is per wire-sized packet, as with netem.
RELAY = r"""
import fcntl, json, os, random, select, struct, sys, time
from collections import deque

name_a, name_b = sys.argv[1], sys.argv[2]
delay, loss, seed = float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
TUNSETIFF, IFF_TUN, IFF_NO_PI = 0x400454CA, 0x0001, 0x1000


def tun(name):
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


try:
    fds = (tun(name_a), tun(name_b))
except OSError as e:
    print("error", e, flush=True)
    sys.exit(1)
try:  # the wire: not to lag behind the processes it carries for
    os.nice(-10)
except OSError:
    pass
rng = random.Random(seed)
now = time.monotonic
queues = (deque(), deque())  # (due, packet) read from fds[i], for fds[1 - i]
fwd, drop, octets, peak_q = [0, 0], [0, 0], [0, 0], [0, 0]
max_len = late_1ms = 0
late_max = 0.0
t_first = t_last = None
bin_no, bin_n, peak_n = 0, 0, 0  # packets read per 100 ms of the clock
print("ready", flush=True)


def stats():
    return {"forwarded": fwd, "dropped": drop, "octets": octets, "max_len": max_len,
            "peak_queue": peak_q, "late_max": late_max, "late_over_1ms": late_1ms,
            "busy": (t_last - t_first) if t_first else 0.0, "peak_pps": 10 * max(peak_n, bin_n)}


watch = [0, fds[0], fds[1]]
while True:
    heads = [q[0][0] for q in queues if q]
    timeout = max(0.0, min(heads) - now()) if heads else None
    ready = select.select(watch, [], [], timeout)[0]  # select: a timeout in us
    for i in (0, 1):
        if fds[i] not in ready:
            continue
        q = queues[i]
        for _ in range(64):  # a bounded burst: the writes below are not held up
            try:
                pkt = os.read(fds[i], 65536)
            except BlockingIOError:
                break
            t_last = t = now()
            if t_first is None:
                t_first = t
            if int(t * 10) != bin_no:
                bin_no, peak_n, bin_n = int(t * 10), max(peak_n, bin_n), 0
            bin_n += 1
            if len(pkt) > max_len:
                max_len = len(pkt)
            if rng.random() < loss:
                drop[i] += 1
                continue
            q.append((t + delay, pkt))
        if len(q) > peak_q[i]:
            peak_q[i] = len(q)
    t = now()
    for i in (0, 1):
        q, out = queues[i], fds[1 - i]
        while q and q[0][0] <= t:
            due, pkt = q.popleft()
            if t - due > late_max:
                late_max = t - due
            if t - due > 0.001:
                late_1ms += 1
            try:
                os.write(out, pkt)
            except OSError:  # the device is down: lost as well
                drop[i] += 1
                continue
            fwd[i] += 1
            octets[i] += len(pkt)
    if 0 in ready:
        line = os.read(0, 4096)
        if not line:
            break
        for _ in line.split(b"\n")[:-1]:
            print("stats", json.dumps(stats()), flush=True)
"""

# -- the link ----------------------------------------------------------------------

PREFIX = "zt"  # namespaces zt<pid>, veth ends zt<pid>r (root) and zt<pid>n (namespace)
LOSS = 0.01
# Classic BPF for cls_bpf in direct-action mode: A = random u32; drop
# (TC_ACT_SHOT) when A <= LOSS * 2^32, else TC_ACT_UNSPEC (carry on).
LOSS_BPF = "4,32 0 0 %d,37 1 0 %d,6 0 0 2,6 0 0 4294967295" % (
    (1 << 32) - 0x1000 + 56,  # SKF_AD_OFF + SKF_AD_RANDOM
    int(LOSS * (1 << 32)),
)


class CmdError(Exception):
    pass


def sh(*argv: str) -> str:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise CmdError(f"{' '.join(argv)}: {e}") from None
    if r.returncode != 0:
        raise CmdError(f"`{' '.join(argv)}` failed: {(r.stderr or r.stdout).strip()}")
    return r.stdout


class Link:
    def __init__(self, ns: str, net: int) -> None:
        self.ns = ns
        self.dev_root, self.dev_ns = ns + "r", ns + "n"
        self.root_ip, self.ns_ip = f"10.213.{net}.1", f"10.213.{net}.2"

    def setup(self) -> None:
        ns = self.ns
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", self.dev_root, "type", "veth", "peer", "name", self.dev_ns, "netns", ns)
        sh("ip", "addr", "add", f"{self.root_ip}/30", "dev", self.dev_root)
        sh("ip", "-n", ns, "addr", "add", f"{self.ns_ip}/30", "dev", self.dev_ns)
        try:  # one MSS a packet, as on a wire (best effort: old iproute2)
            sh("ip", "link", "set", self.dev_root, "gso_max_segs", "1")
            sh("ip", "-n", ns, "link", "set", self.dev_ns, "gso_max_segs", "1")
        except CmdError:
            pass
        sh("ip", "link", "set", self.dev_root, "up")
        sh("ip", "-n", ns, "link", "set", self.dev_ns, "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")

    def teardown(self) -> None:
        # Deleting one end deletes the pair; deleting the namespace would too
        # (asynchronously).
        for argv in (["ip", "link", "del", self.dev_root], ["ip", "netns", "del", self.ns]):
            subprocess.run(argv, capture_output=True)

    def tc_both(self, obj: str, verb: str, *rest: str) -> None:
        """`tc obj verb dev <end> rest...` on both ends."""
        sh("tc", obj, verb, "dev", self.dev_root, *rest)
        sh("tc", "-n", self.ns, obj, verb, "dev", self.dev_ns, *rest)

    def impair(self, kind: str) -> None:
        if kind == "netem":
            self.tc_both("qdisc", "add", "root", "netem", "delay", "5ms", "loss", f"{LOSS * 100:g}%")
        else:
            self.tc_both("qdisc", "add", "clsact")
            self.tc_both("filter", "add", "ingress", "bpf", "da", "bytecode", LOSS_BPF)

    def clear(self) -> None:
        for qdisc in ("root", "clsact"):
            for argv in (["tc", "qdisc", "del", "dev", self.dev_root, qdisc],
                         ["tc", "-n", self.ns, "qdisc", "del", "dev", self.dev_ns, qdisc]):
                subprocess.run(argv, capture_output=True)

    def set_root_end(self, up: bool) -> None:
        sh("ip", "link", "set", self.dev_root, "up" if up else "down")

    def peer(self, script: str, *args: object) -> helpers.Peer:
        return helpers.Peer(script, *args, argv_prefix=["ip", "netns", "exec", self.ns])


DELAY = 0.005  # the delay line's one-way delay: a round trip takes >= 10 ms
TUN_MTU = 1500  # the TUN devices' default, kept
# The TUN devices' queue (500 packets by default), which drops what does not
# fit while the relay is descheduled: long enough that the only losses are
# the relay's 1 % (their drops are printed and asserted to be nil).
TUN_TXQLEN = 10000


class Impairment:
    """What an impaired-link test talks over: the kind (its str), the root
    end's and the namespace end's address, and a delay line's relay."""

    def __init__(self, kind: str, root_ip: str, ns_ip: str, line: Optional["DelayLine"] = None) -> None:
        self.kind, self.root_ip, self.ns_ip, self.line = kind, root_ip, ns_ip, line

    def __str__(self) -> str:
        return self.kind


class DelayLine:
    """Two TUN devices joined by the RELAY process: <ns>a in the root
    namespace (root_ip), <ns>b moved into the link's namespace (ns_ip)."""

    def __init__(self, link: Link, net: int, seed: int) -> None:
        self.link, self.seed = link, seed
        self.dev_root, self.dev_ns = link.ns + "a", link.ns + "b"
        self.root_ip, self.ns_ip = f"10.214.{net}.1", f"10.214.{net}.2"
        self.relay: Optional[helpers.Peer] = None

    def start(self) -> None:
        self.relay = helpers.Peer(RELAY, self.dev_root, self.dev_ns, DELAY, LOSS, self.seed)
        try:
            line = self.relay.readline(10)
        except AssertionError as e:  # it exited, or said nothing
            raise CmdError(f"the relay: {e}") from None
        if line != "ready":
            raise CmdError(f"the relay: {line}")
        ns = self.link.ns
        # An attached TUN device can move to another namespace; its fd stays
        # the relay's.
        sh("ip", "link", "set", self.dev_ns, "netns", ns)
        for ip, dev, local, remote in ((["ip"], self.dev_root, self.root_ip, self.ns_ip),
                                       (["ip", "-n", ns], self.dev_ns, self.ns_ip, self.root_ip)):
            try:  # no IPv6 link-local address: no router solicitations on the line
                sh(*ip, "link", "set", dev, "addrgenmode", "none")
            except CmdError:
                pass
            sh(*ip, "link", "set", dev, "mtu", str(TUN_MTU), "txqueuelen", str(TUN_TXQLEN))
            sh(*ip, "addr", "add", local, "peer", remote, "dev", dev)
            sh(*ip, "link", "set", dev, "up")

    def stats(self) -> Dict[str, Any]:
        """The relay's counters (since it started) and the TUN devices' drops."""
        assert self.relay is not None
        self.relay.send_line("stats")
        st = peer_result(self.relay, "stats", 5)
        st["tun_drops"] = [
            json.loads(sh(*ip, "-j", "-s", "link", "show", "dev", dev))[0]["stats64"]["tx"]["dropped"]
            for ip, dev in ((["ip"], self.dev_root), (["ip", "-n", self.link.ns], self.dev_ns))
        ]
        return st

    def check(self) -> str:
        """Asserts what the delay line must have done; a line of figures."""
        st = self.stats()
        fwd, drop = st["forwarded"], st["dropped"]
        packets = sum(fwd) + sum(drop)
        assert st["max_len"] <= TUN_MTU, f"a packet of {st['max_len']} octets on the delay line"
        assert sum(drop) > 0, f"the delay line dropped nothing of {packets} packets"
        assert st["tun_drops"] == [0, 0], f"TUN queues dropped {st['tun_drops']} packets (the relay lagged)"
        pct = ", ".join(
            f"{d}: {fwd[i]} forwarded, {drop[i]} dropped ({100 * drop[i] / max(1, fwd[i] + drop[i]):.2f} %), "
            f"{st['octets'][i] / 1e6:.1f} MB"
            for i, d in enumerate(("root->ns", "ns->root")))
        return (
            f"delay line (seed {self.seed}): {pct}; {packets} packets in {st['busy']:.2f} s "
            f"(mean {packets / max(st['busy'], 1e-3):.0f}/s, peak {st['peak_pps']}/s over 100 ms), "
            f"queues up to {st['peak_queue']} packets, writes late by up to {ms(st['late_max'])} "
            f"({st['late_over_1ms']} by > 1 ms), TUN queue drops {st['tun_drops']}"
        )

    def stop(self) -> None:
        """Kills and reaps the relay: its TUN devices go with its fds."""
        if self.relay is not None:
            self.relay.kill()
        for ip, dev in ((["ip"], self.dev_root), (["ip", "-n", self.link.ns], self.dev_ns)):
            if subprocess.run([*ip, "link", "show", "dev", dev], capture_output=True).returncode == 0:
                subprocess.run([*ip, "link", "del", dev], capture_output=True)
                raise AssertionError(f"TUN device {dev} outlived the relay")


def remove_stale_namespaces() -> None:
    """Namespaces of this module's earlier runs whose process is gone."""
    try:
        out = sh("ip", "netns", "list")
    except CmdError:
        return
    for line in out.splitlines():
        m = re.fullmatch(PREFIX + r"(\d+)", line.split(" ")[0])
        if m and int(m.group(1)) != os.getpid() and not os.path.exists(f"/proc/{m.group(1)}"):
            Link(m.group(0), 0).teardown()


def free_subnet(prefix: str = "10.213") -> int:
    used = sh("ip", "-o", "-4", "addr")
    for k in range(256):
        net = (os.getpid() + k) % 256
        if f"{prefix}.{net}." not in used:
            return net
    raise CmdError(f"no free {prefix}.x.0/30")


@pytest.fixture(scope="module")
def link():
    if os.geteuid() != 0:
        pytest.skip("network namespaces and veth pairs need root")
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            pytest.skip(f"`{tool}` (iproute2) is not installed")
    remove_stale_namespaces()
    ln: Optional[Link] = None
    try:
        try:
            ln = Link(f"{PREFIX}{os.getpid()}", free_subnet())
            ln.setup()
        except CmdError as e:
            pytest.skip(f"cannot make a veth link between network namespaces: {e}")
        yield ln
    finally:
        if ln is not None:
            ln.teardown()


@pytest.fixture(params=["netem", "bpf-loss", "delay-line"])
def impaired(request, link):
    kind = request.param
    if kind == "delay-line":
        yield from delay_line(link)
        return
    try:
        link.impair(kind)
    except CmdError as e:
        link.clear()
        pytest.skip(f"{kind} refused: {e}")
    yield Impairment(kind, link.root_ip, link.ns_ip)
    link.clear()


def delay_line(link: Link):
    try:
        os.close(os.open("/dev/net/tun", os.O_RDWR))
    except OSError as e:
        pytest.skip(f"delay-line: cannot open /dev/net/tun: {e}")
    seed = int(os.environ.get("ZMTP_LINK_SEED") or random.randrange(1 << 32))
    line = None
    try:
        try:
            line = DelayLine(link, free_subnet("10.214"), seed)
            line.start()
        except CmdError as e:
            pytest.skip(f"delay-line refused: {e}")
        # The seed repeats the sequence of drop decisions, not the timing.
        print(f"\ndelay-line: {DELAY * 1000:g} ms each way, {LOSS:.0%} loss, relay seed {seed} "
              f"(ZMTP_LINK_SEED={seed} repeats it), {line.root_ip} <-> {line.ns_ip}")
        yield Impairment("delay-line", line.root_ip, line.ns_ip, line)
    finally:
        if line is not None:
            line.stop()


# -- helpers -------------------------------------------------------------------------


def peer_check(peer: helpers.Peer) -> None:
    """Fail with its output when the peer has exited."""
    if peer.proc.poll() is None:
        return
    out = []
    try:
        while True:
            line = peer.poll_line(0.2)
            if line is None:
                break
            out.append(line)
    except AssertionError as e:
        out.append(str(e))
    raise AssertionError("the peer exited:\n" + "\n".join(out))


def peer_result(peer: helpers.Peer, word: str, timeout: float = 10.0) -> Any:
    line = peer.readline(timeout)
    assert line.startswith(word + " "), f"expected {word!r} from the peer, got {line!r}"
    return json.loads(line[len(word) + 1:])


def ms(x: Optional[float]) -> str:
    if x is None:
        return "-"
    return f"{x * 1000:.2f} ms" if x < 0.01 else f"{x * 1000:.0f} ms"


def percentile(xs: List[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


# -- 1. an impaired link: exact delivery ---------------------------------------------

# The same counts for every kind of link; over the delay line the round
# trips take ~4-5 s (10 ms each, ~220 ms for each lost packet's
# retransmission), the stream 0.2-1.2 s.
RR_N = 300
STREAM_N = 20000


def test_req_rep_exact_over_impaired_link(backend, ctx, link, impaired):
    """zmtp REQ -> pyzmq REP and pyzmq REQ -> zmtp REP at once, RR_N round
    trips each: every request and reply exact and matching."""
    n = RR_N
    zrep = zsock(ctx, zmtp.REP, linger=0)
    zrep.bind(f"tcp://{impaired.root_ip}:*")
    zreq = zsock(ctx, zmtp.REQ, linger=0)
    peer = link.peer(REQREP_PEER, impaired.ns_ip, n)
    try:
        port = peer.expect("port")[0]
        t0 = time.monotonic()
        zreq.connect(f"tcp://{impaired.ns_ip}:{port}")
        peer.send_line(f"connect {zrep.last_endpoint.decode()}")
        poller = zmtp.Poller()
        poller.register(zrep, zmtp.POLLIN)
        poller.register(zreq, zmtp.POLLIN)
        done = served = 0
        rtts: List[float] = []
        t = time.monotonic()
        zreq.send(C["rr_request"](0))
        deadline = t0 + 30
        while done < n or served < n:
            ready = dict(poller.poll(100))
            if not ready:
                assert time.monotonic() < deadline, f"replies {done}, requests served {served} of {n}"
                peer_check(peer)
                continue
            if zrep in ready:
                m = zrep.recv()
                assert m == C["rr_request"](served), f"request {served}: {len(m)} octets, not as sent"
                zrep.send(C["rr_reply"](m))
                served += 1
            if zreq in ready:
                r = zreq.recv()
                assert r == C["rr_reply"](C["rr_request"](done)), f"reply {done}: {len(r)} octets, not as expected"
                rtts.append(time.monotonic() - t)
                done += 1
                if done < n:
                    t = time.monotonic()
                    zreq.send(C["rr_request"](done))
        peer_rtts = peer_result(peer, "done", 15)
        took = time.monotonic() - t0
        peer.send_line("bye")
    finally:
        peer.kill()
    assert len(peer_rtts) == n
    print(
        f"\n{impaired} ({backend}): {n} round trips each way in {took:.1f} s; "
        f"zmtp REQ->pyzmq REP min {ms(min(rtts))} p50 {ms(percentile(rtts, 0.5))} "
        f"p99 {ms(percentile(rtts, 0.99))} max {ms(max(rtts))}; pyzmq REQ->zmtp REP "
        f"min {ms(min(peer_rtts))} p50 {ms(percentile(peer_rtts, 0.5))} "
        f"p99 {ms(percentile(peer_rtts, 0.99))} max {ms(max(peer_rtts))}"
    )
    if impaired.line is not None:
        print("  " + impaired.line.check())
        assert min(rtts + peer_rtts) >= 2 * DELAY, (
            f"a round trip of {ms(min(rtts + peer_rtts))} over a line delaying {ms(DELAY)} each way")


def test_push_pull_exact_over_impaired_link(backend, ctx, link, impaired):
    """zmtp PUSH -> pyzmq PULL and pyzmq PUSH -> zmtp PULL at once,
    STREAM_N messages of 0..64 KiB each way: all received once, in order,
    byte-exact."""
    n = STREAM_N
    stream_msg = C["stream_msg"]
    total = sum(len(stream_msg(i)) for i in range(n))
    zpull = zsock(ctx, zmtp.PULL, linger=0)
    zpull.bind(f"tcp://{impaired.root_ip}:*")
    zpush = zsock(ctx, zmtp.PUSH, linger=0)
    peer = link.peer(STREAM_PEER, impaired.ns_ip, n)
    try:
        port = peer.expect("port")[0]
        t0 = time.monotonic()
        zpush.connect(f"tcp://{impaired.ns_ip}:{port}")
        peer.send_line(f"connect {zpull.last_endpoint.decode()}")
        poller = zmtp.Poller()
        poller.register(zpull, zmtp.POLLIN)
        poller.register(zpush, zmtp.POLLOUT)
        got = sent = 0
        t_got = 0.0
        deadline = t0 + 30
        while got < n or sent < n:
            ready = dict(poller.poll(100))
            if not ready:
                assert time.monotonic() < deadline, f"received {got}, sent {sent} of {n}"
                peer_check(peer)
                continue
            if zpull in ready:
                while got < n:
                    try:
                        m = zpull.recv(zmtp.DONTWAIT)
                    except zmtp.Again:
                        break
                    if m != stream_msg(got):
                        seq = C["SEQ"].unpack_from(m)[0] if len(m) >= 8 else None
                        raise AssertionError(f"expected message {got}, got {seq} of {len(m)} octets")
                    got += 1
                t_got = time.monotonic()
            if zpush in ready:
                while sent < n:
                    try:
                        zpush.send(stream_msg(sent), zmtp.DONTWAIT)
                    except zmtp.Again:
                        break
                    sent += 1
                if sent == n:
                    poller.unregister(zpush)
        t_peer = peer_result(peer, "done", 15)
        peer.send_line("bye")
    finally:
        peer.kill()
    mb = total / 1e6
    print(
        f"\n{impaired} ({backend}): {n} messages, {mb:.1f} MB each way in {max(t_peer, t_got) - t0:.1f} s; "
        f"zmtp->pyzmq {mb / (t_peer - t0):.1f} MB/s, pyzmq->zmtp {mb / (t_got - t0):.1f} MB/s"
    )
    if impaired.line is not None:
        print("  " + impaired.line.check())


# -- 2. the link goes down for 3 s ---------------------------------------------------

HB_IVL, HB_TIMEOUT = 200, 600
PACE = 0.005  # one message per stream every 5 ms
BEFORE, DOWN_FOR = 1.0, 3.0
AFTER = 0.5  # traffic after everything is back, then AFTER quiet
# A message lost was sent at most this long after the link went down (the
# sender's heartbeat noticed by then; what is sent later waits for the
# reconnect), and not long before.
LOSS_WINDOW = (-1.0, (HB_IVL + HB_TIMEOUT) / 1000 + 0.7)
HB_OPTS = dict(linger=0, heartbeat_ivl=HB_IVL, heartbeat_timeout=HB_TIMEOUT, reconnect_ivl=100)


class Outage:
    """Takes the root end of the link down BEFORE s after start(), and up
    again DOWN_FOR s later (telling the peer "up <t>")."""

    def __init__(self, link: Link, peer: helpers.Peer) -> None:
        self.link, self.peer = link, peer
        self.t0 = time.monotonic()
        self.t_down: Optional[float] = None
        self.t_up: Optional[float] = None

    def tick(self) -> None:
        now = time.monotonic()
        if self.t_down is None and now >= self.t0 + BEFORE:
            self.link.set_root_end(False)
            self.t_down = time.monotonic()
        elif self.t_up is None and self.t_down is not None and now >= self.t_down + DOWN_FOR:
            self.link.set_root_end(True)
            self.t_up = time.monotonic()
            self.peer.send_line(f"up {self.t_up}")

    def restore(self) -> None:
        if self.t_down is not None and self.t_up is None:
            self.link.set_root_end(True)


class Monitors:
    """Monitor sockets on zmtp sockets; every event with its arrival time."""

    def __init__(self, socks: Dict[str, Any]) -> None:
        self.mons = {name: s.get_monitor_socket() for name, s in socks.items()}
        self.log: Dict[str, List[Tuple[float, int]]] = {name: [] for name in socks}

    def register(self, poller: Any) -> None:
        for m in self.mons.values():
            poller.register(m, zmtp.POLLIN)

    def drain(self) -> None:
        for name, m in self.mons.items():
            while m.poll(0):
                self.log[name].append((time.monotonic(), recv_monitor_message(m)["event"]))

    def first(self, name: str, event: int, after: float) -> Optional[float]:
        return next((t for t, e in self.log[name] if e == event and t >= after), None)

    def close(self) -> None:
        for m in self.mons.values():
            m.close(linger=0)


def check_outage(streams: Dict[str, Tuple[dict, int]], bad: List[str], mons: Monitors,
                 stats: Dict[str, dict], outage: Outage) -> Dict[str, Any]:
    """The common verdict; returns the figures.  streams: name -> (analysis,
    how many were sent)."""
    t_down, t_up = outage.t_down, outage.t_up
    assert t_down is not None and t_up is not None
    assert not bad, f"damaged messages: {bad[:10]}"
    lo, hi = t_down + LOSS_WINDOW[0], t_down + LOSS_WINDOW[1]
    for name, (an, sent) in streams.items():
        assert not an["repeats"], f"{name}: received twice or out of order: {an['repeats'][:20]}"
        assert an["last"] == sent - 1, f"{name}: {sent} sent, the last received is {an['last']}"
        assert an["first_after_up"] is not None, f"{name}: nothing after the link came back"
        for a, b, t_before, t_after in an["gaps"]:
            since = "the start" if t_before is None else f"{t_before - t_down:.3f} s"
            assert t_before is not None and lo <= t_before and t_after <= hi, (
                f"{name}: messages {a}..{b} lost, sent between {since} and {t_after - t_down:.3f} s "
                f"after the link went down (allowed {LOSS_WINDOW})"
            )
    figures: Dict[str, Any] = {}
    for name, st in stats.items():
        t_disc = mons.first(name, zmtp.EVENT_DISCONNECTED, t_down)
        t_hs = mons.first(name, zmtp.EVENT_HANDSHAKE_SUCCEEDED, t_up)
        assert st["heartbeat_timeouts"] >= 1, f"{name}: no heartbeat timeout counted: {st}"
        assert t_disc is not None and t_disc < t_up, (
            f"{name}: no DISCONNECTED while the link was down: {mons.log[name]}")
        assert t_hs is not None, f"{name}: no handshake after the link came back: {mons.log[name]}"
        figures[name] = (t_disc - t_down, t_hs - t_up)
    return figures


def test_link_down_zmtp_dials(backend, ctx, link):
    """zmtp PUSH and DEALER dial a pyzmq PULL and ROUTER (which echoes) in
    the namespace; the link goes down for 3 s and comes back."""
    push = zsock(ctx, zmtp.PUSH, **HB_OPTS)
    dealer = zsock(ctx, zmtp.DEALER, **HB_OPTS)
    mons = Monitors({"PUSH": push, "DEALER": dealer})
    parts, check_parts, big, small = C["parts"], C["check_parts"], C["big_size"], C["small_size"]
    replies: List[Tuple[int, float, float]] = []
    bad: List[str] = []
    pseq = rseq = refused = 0

    def drain(wait_ms: float) -> None:
        for s, _ in poller.poll(math.ceil(max(0.0, wait_ms))):
            if s is dealer:
                while True:
                    try:
                        frames = dealer.recv_multipart(zmtp.DONTWAIT)
                    except zmtp.Again:
                        break
                    try:
                        replies.append((*check_parts(frames, small, b"rep"), time.monotonic()))
                    except ValueError as e:
                        bad.append(f"DEALER: {e}")
        mons.drain()

    peer = link.peer(BOUND_PEER, link.ns_ip, HB_IVL, HB_TIMEOUT)
    outage = Outage(link, peer)  # for the finally; the real one starts once connected
    try:
        pull_port, router_port = peer.expect("ports")
        push.connect(f"tcp://{link.ns_ip}:{pull_port}")
        dealer.connect(f"tcp://{link.ns_ip}:{router_port}")
        poller = zmtp.Poller()
        poller.register(dealer, zmtp.POLLIN)
        mons.register(poller)
        outage = Outage(link, peer)
        next_send = time.monotonic()
        stop_at: Optional[float] = None
        while stop_at is None or time.monotonic() < stop_at:
            outage.tick()
            now = time.monotonic()
            if now >= next_send:
                try:
                    push.send_multipart(parts(pseq, now, big(pseq), b"push"), zmtp.DONTWAIT)
                    pseq += 1
                except zmtp.Again:
                    refused += 1
                try:
                    dealer.send_multipart(parts(rseq, now, small(rseq), b"req"), zmtp.DONTWAIT)
                    rseq += 1
                except zmtp.Again:
                    refused += 1
                next_send += PACE
                if next_send < now - 0.1:
                    next_send = now
            drain((next_send - time.monotonic()) * 1000)
            peer_check(peer)
            t_up = outage.t_up
            if t_up is not None and stop_at is None:
                if (replies and replies[-1][2] >= t_up
                        and all(mons.first(k, zmtp.EVENT_HANDSHAKE_SUCCEEDED, t_up) for k in mons.log)):
                    stop_at = time.monotonic() + AFTER
                assert time.monotonic() < t_up + 8, (
                    f"traffic did not resume within 8 s of the link coming back; "
                    f"PUSH {push.stats()}, DEALER {dealer.stats()}, events {mons.log}")
        quiet_until = time.monotonic() + AFTER
        while time.monotonic() < quiet_until:
            drain(20)
        peer.send_line("stop")
        res = peer_result(peer, "result")
        stats = {"PUSH": push.stats(), "DEALER": dealer.stats()}
    finally:
        outage.restore()
        peer.kill()
        mons.close()
    t_up = outage.t_up
    assert t_up is not None and outage.t_down is not None
    reps = C["analyse"](replies, t_up)
    streams = {
        "zmtp PUSH -> pyzmq PULL": (res["pull"], pseq),
        "zmtp DEALER -> pyzmq ROUTER (requests)": (res["requests"], rseq),
        "pyzmq ROUTER -> zmtp DEALER (replies)": (reps, rseq),
    }
    print(
        f"\nlink down {DOWN_FOR:.0f} s, zmtp dials ({backend}): sent {pseq} PUSH, {rseq} requests "
        f"({refused} sends refused); lost PUSH {res['pull']['lost']}, requests {res['requests']['lost']}, "
        f"replies {reps['lost']}; first PUSH message {ms(res['pull']['first_after_up'] and res['pull']['first_after_up'][1] - t_up)}, "
        f"first reply {ms(reps['first_after_up'] and reps['first_after_up'][1] - t_up)} after link-up"
    )
    figures = check_outage(streams, bad + res["bad"], mons, stats, outage)
    print(
        "  " + "; ".join(f"{k}: DISCONNECTED {ms(d)} after link-down, HANDSHAKE_SUCCEEDED {ms(h)} after link-up"
                         for k, (d, h) in figures.items())
        + f"; stats {stats}"
    )
    for name, st in stats.items():
        assert st["connected"] >= 2, f"{name} did not connect again: {st}"


def test_link_down_zmtp_binds(backend, ctx, link):
    """A pyzmq PUSH and DEALER in the namespace dial a zmtp PULL and ROUTER
    (which echoes); the link goes down for 3 s and comes back."""
    pull = zsock(ctx, zmtp.PULL, **HB_OPTS)
    router = zsock(ctx, zmtp.ROUTER, **HB_OPTS)
    for s in (pull, router):
        s.bind(f"tcp://{link.root_ip}:*")
    mons = Monitors({"PULL": pull, "ROUTER": router})
    check_parts, big, small = C["check_parts"], C["big_size"], C["small_size"]
    pulled: List[Tuple[int, float, float]] = []
    requests: List[Tuple[int, float, float]] = []
    bad: List[str] = []
    poller = zmtp.Poller()
    poller.register(pull, zmtp.POLLIN)
    poller.register(router, zmtp.POLLIN)
    mons.register(poller)

    def drain(wait_ms: float) -> None:
        for s, _ in poller.poll(math.ceil(max(0.0, wait_ms))):
            now = time.monotonic()
            if s is pull:
                while True:
                    try:
                        frames = pull.recv_multipart(zmtp.DONTWAIT)
                    except zmtp.Again:
                        break
                    try:
                        pulled.append((*check_parts(frames, big, b"push"), now))
                    except ValueError as e:
                        bad.append(f"PULL: {e}")
            elif s is router:
                while True:
                    try:
                        ident, *frames = router.recv_multipart(zmtp.DONTWAIT)
                    except zmtp.Again:
                        break
                    try:
                        seq, t = check_parts(frames, small, b"req")
                    except ValueError as e:
                        bad.append(f"ROUTER: {e}")
                        continue
                    requests.append((seq, t, now))
                    router.send_multipart([ident, frames[0], frames[1], b"rep %d" % seq], zmtp.DONTWAIT)
        mons.drain()

    peer = link.peer(DIALING_PEER, pull.last_endpoint.decode(), router.last_endpoint.decode(),
                     HB_IVL, HB_TIMEOUT, PACE)
    outage = Outage(link, peer)  # for the finally; the real one starts once the peer runs
    try:
        peer.expect("ready")
        outage = Outage(link, peer)
        stop_at: Optional[float] = None
        while stop_at is None or time.monotonic() < stop_at:
            outage.tick()
            drain(5)
            peer_check(peer)
            t_up = outage.t_up
            if t_up is not None and stop_at is None:
                if (pulled and pulled[-1][2] >= t_up and requests and requests[-1][2] >= t_up
                        and all(mons.first(k, zmtp.EVENT_HANDSHAKE_SUCCEEDED, t_up) for k in mons.log)):
                    stop_at = time.monotonic() + AFTER
                assert time.monotonic() < t_up + 8, (
                    f"traffic did not resume within 8 s of the link coming back; "
                    f"PULL {pull.stats()}, ROUTER {router.stats()}, events {mons.log}")
        peer.send_line("quiet")
        quiet_until = time.monotonic() + AFTER
        while time.monotonic() < quiet_until:
            drain(20)
        peer.send_line("stop")
        res = peer_result(peer, "result")
        stats = {"PULL": pull.stats(), "ROUTER": router.stats()}
    finally:
        outage.restore()
        peer.kill()
        mons.close()
    t_up = outage.t_up
    assert t_up is not None and outage.t_down is not None
    pulled_an = C["analyse"](pulled, t_up)
    requests_an = C["analyse"](requests, t_up)
    streams = {
        "pyzmq PUSH -> zmtp PULL": (pulled_an, res["sent"]),
        "pyzmq DEALER -> zmtp ROUTER (requests)": (requests_an, res["requested"]),
        "zmtp ROUTER -> pyzmq DEALER (replies)": (res["replies"], res["requested"]),
    }
    print(
        f"\nlink down {DOWN_FOR:.0f} s, zmtp bound ({backend}): sent {res['sent']} PUSH, {res['requested']} "
        f"requests ({res['refused']} sends refused); lost PUSH {pulled_an['lost']}, requests "
        f"{requests_an['lost']}, replies {res['replies']['lost']}; first PUSH message "
        f"{ms(pulled_an['first_after_up'] and pulled_an['first_after_up'][1] - t_up)}, first reply "
        f"{ms(res['replies']['first_after_up'] and res['replies']['first_after_up'][1] - t_up)} after link-up"
    )
    figures = check_outage(streams, bad + res["bad"], mons, stats, outage)
    print(
        "  " + "; ".join(f"{k}: DISCONNECTED {ms(d)} after link-down, HANDSHAKE_SUCCEEDED {ms(h)} after link-up"
                         for k, (d, h) in figures.items())
        + f"; stats {stats}"
    )
    for name, st in stats.items():
        assert st["accepted"] >= 2, f"{name} was not dialled again: {st}"
