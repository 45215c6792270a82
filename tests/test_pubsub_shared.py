"""A message published to N subscribers is encoded once and shared, not copied N times."""

from __future__ import annotations

import time

import zmq

import zmtp


def test_fanout_shares_one_encoding(backend, ctx, zctx):
    pub = ctx.socket(zmtp.PUB)
    pub.sndhwm = 0  # keep everything queued: nobody reads
    pub.bind("tcp://127.0.0.1:*")
    subs = []
    for _ in range(4):
        s = zctx.socket(zmq.SUB)
        s.rcvhwm = 1
        s.subscribe(b"")
        s.connect(pub.last_endpoint.decode())
        subs.append(s)
    deadline = time.monotonic() + 5
    while pub.stats()["accepted"] < 4 or time.monotonic() < deadline - 4.7:
        pub.poll(10, 0)  # accepts, handshakes, subscriptions
        assert time.monotonic() < deadline
    # until every subscription is in: a probe reaches all four (not a sleep:
    # a publish before then is dropped, and "stalled" below would fail)
    while not all(s.poll(0) for s in subs):
        pub.send(b"probe")
        pub.poll(10, 0)
        assert time.monotonic() < deadline + 15, "the subscriptions never all arrived"
    for s in subs:
        while s.poll(50):
            assert s.recv() == b"probe"
    pub.poll(50, 0)
    before = zmtp.memory_stats()["page_bytes_live"]
    payload = b"x" * 4096
    count = 8000  # 32 MiB, more than the 4 subscribers' kernel buffers take
    for _ in range(count):
        pub.send(payload)
    queued = zmtp.memory_stats()["page_bytes_live"] - before
    published = count * len(payload)
    # Shared: at most what was published (plus pages).  Copied per
    # subscriber it would be up to 4x, minus what the kernel took.
    assert queued < 1.25 * published, (queued, published)
    assert queued > 0.2 * published  # the subscribers really are stalled
    pub.close(linger=0)
