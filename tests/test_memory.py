"""Memory and lifetime of read pages: claims are never allocated, frames keep
their page alive (and only as long as needed), pages are reused."""

from __future__ import annotations

import gc
import os

import pytest

import zmtp
from zmtp import codec
from zmtp.codec import ErrorCode, ProtocolError

PAGE = 65536  # READ_BUF_SIZE_DEFAULT
MiB = 1 << 20


def stats() -> dict:
    gc.collect()
    return zmtp.memory_stats()


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def long_header(size: int, flags: int = 0x02) -> bytes:
    return bytes([flags]) + size.to_bytes(8, "big")


def test_read_buf_size_default():
    assert codec.READ_BUF_SIZE_DEFAULT == PAGE
    assert codec.Decoder()._dec.read_buf_size == PAGE


# ------------------------------------------------------------ size claims


def test_huge_claim_allocates_nothing_large():
    base = stats()
    rss0 = rss()
    dec = codec.Decoder(greeting=True)
    events = dec.feed(codec.encode_greeting() + long_header(2**63 - 1) + b"x" * 1000)
    assert [type(e) for e in events] == [codec.Greeting]
    assert dec.error is None
    assert dec.pending == 9 + 1000  # the frame's header and body so far
    live = zmtp.memory_stats()["page_bytes_live"] - base["page_bytes_live"]
    assert 1000 <= live <= 2 * PAGE
    assert rss() - rss0 < 4 * MiB

    # body bytes arriving: the buffer grows with them (doubling), never to
    # the claim
    chunk = bytes(range(256)) * 256  # 64 KiB
    received = 1000
    for _ in range(16):
        assert dec.feed(chunk) == []
        received += len(chunk)
        live = zmtp.memory_stats()["page_bytes_live"] - base["page_bytes_live"]
        assert received <= live <= PAGE + max(PAGE, 2 * received), (received, live)
    assert dec.pending == 9 + received
    assert dec.holds_page
    assert rss() - rss0 < 8 * MiB

    del dec
    after = stats()
    assert after["page_bytes_live"] == base["page_bytes_live"]
    assert after["pages_live"] == base["pages_live"]


@pytest.mark.parametrize("rbs", [256, 4096, PAGE])
def test_huge_claim_small_pages(rbs):
    base = stats()
    dec = codec.Decoder(greeting=False, read_buf_size=rbs)
    assert dec.feed(long_header(2**63 - 1, 0x03) + b"y" * 10) == []
    live = zmtp.memory_stats()["page_bytes_live"] - base["page_bytes_live"]
    assert live <= 2 * rbs
    received = 10
    for _ in range(8):
        dec.feed(b"z" * 3000)
        received += 3000
        live = zmtp.memory_stats()["page_bytes_live"] - base["page_bytes_live"]
        # the read page + the frame's buffer (one page, doubled as needed)
        assert received <= live <= rbs + max(rbs, 2 * received), (received, live)
    assert dec.pending == 9 + received


@pytest.mark.parametrize("chunk", [300_000, 3 * MiB])
def test_huge_claim_mapped_growth(chunk):
    """Past the size where a frame's buffer becomes a mapping grown by
    mremap (arena.c), growth still follows the bytes received: at most
    twice them plus the read page, whatever the header claims; each growth
    is counted, and the buffer goes with the decoder (the warm mapping it
    may leave is not a live page)."""
    base = stats()
    dec = codec.Decoder(greeting=False)
    assert dec.feed(long_header(2**63 - 1)) == []
    received = 0
    body = bytes(range(251)) * (chunk // 251 + 1)
    while received < 24 * MiB:
        assert dec.feed(body[:chunk]) == []
        received += chunk
        live = zmtp.memory_stats()["page_bytes_live"] - base["page_bytes_live"]
        assert received <= live <= PAGE + 2 * received, (received, live)
    assert dec.pending == 9 + received
    assert zmtp.memory_stats()["page_grows"] > base["page_grows"]
    del dec
    after = stats()
    assert after["page_bytes_live"] == base["page_bytes_live"]
    assert after["pages_live"] == base["pages_live"]


UNDER_ASAN = "asan" in os.environ.get("LD_PRELOAD", "")  # scripts/sanitize.sh: nothing is kept
WARM_SLOTS, WARM_BYTES = 8, 130 * MiB  # arena.c: the kept mappings' bounds (two of the largest kept)


def receive_alive(size: int, n: int) -> list:
    """n frames of `size` bytes decoded while all the earlier ones are still held (a receiver reading
    ahead of its caller), each checked."""
    frames = []
    for k in range(n):
        body = bytes([k % 251]) * size
        (msg,) = codec.Decoder(greeting=False).feed(codec.encode_message([body]))
        frames.append(msg.frames[0])
        assert frames[-1].bytes == body
    return frames


@pytest.mark.skipif(UNDER_ASAN, reason="AddressSanitizer builds keep no freed page or mapping (arena.c)")
def test_kept_mappings_bounded_and_reused():
    """Freed big-frame mappings are kept resident for the next big frames (several: a receiver reads
    ahead), at most WARM_SLOTS of them and WARM_BYTES in all, whatever was alive; a frame that takes a
    kept mapping larger than itself is counted at its own size and its bytes are right."""
    frames = receive_alive(300_000, 12)  # 12 mappings alive at once
    del frames
    kept = stats()["warm_bytes"]
    assert WARM_SLOTS * 300_000 <= kept <= WARM_BYTES, kept  # (earlier tests may have left larger ones)
    frames = receive_alive(3 * MiB, 3)  # larger: they take kept ones (grown) or displace the smallest
    assert stats()["warm_bytes"] <= kept
    del frames
    assert 3 * 3 * MiB <= stats()["warm_bytes"] <= WARM_BYTES
    base = stats()
    (small,) = receive_alive(400_000, 1)  # the smallest kept one large enough: 3 MiB of room
    assert stats()["page_bytes_live"] - base["page_bytes_live"] == 400_000
    assert stats()["warm_bytes"] < base["warm_bytes"]
    del small
    frames = receive_alive(40 * MiB, 4)
    del frames
    assert stats()["warm_bytes"] <= WARM_BYTES


@pytest.mark.parametrize("size", [PAGE + 1, 300_000, 5 * MiB + 3])
def test_big_frame_buffer_is_the_frame(size):
    """A finite big frame ends in a buffer of its own size (growth stops at
    the frame; up to two pages, two pages), its content intact across mremap moves; two in a row (the
    second may reuse the warm mapping the first left) both correct."""
    for seed in range(2):
        base = stats()
        body = bytes((i * 13 + seed) % 256 for i in range(256)) * (size // 256) + b"t" * (size % 256)
        dec = codec.Decoder(greeting=False)
        wire = codec.encode_message([body])
        events = []
        for i in range(0, len(wire), 100_000):
            events += dec.feed(wire[i : i + 100_000])
        (msg,) = events
        frame = msg.frames[0]
        del dec, msg, events
        # up to two pages: two pages at once (a size the page cache keeps)
        assert stats()["page_bytes_live"] - base["page_bytes_live"] == max(size, 2 * PAGE)
        assert frame.bytes == body
        del frame
        assert stats()["page_bytes_live"] == base["page_bytes_live"]


@pytest.mark.parametrize("size", [2**64 - 1, 2**63])
@pytest.mark.parametrize("split", [False, True])
def test_frame_size_top_bit_is_refused(size, split):
    base = stats()
    dec = codec.Decoder(greeting=False)
    wire = codec.encode_message([b"ok"]) + long_header(size) + b"tail"
    events = []
    with pytest.raises(ProtocolError) as ei:
        if split:
            for i in range(len(wire)):
                events += dec.feed(wire[i : i + 1])
        else:
            dec.feed(wire)
    exc = ei.value
    assert exc.code == ErrorCode.FRAME_SIZE
    assert isinstance(exc.code, ErrorCode)
    assert [m.parts for m in events + exc.events] == [[b"ok"]]
    assert dec.error == ErrorCode.FRAME_SIZE
    assert isinstance(dec.reason, str) and dec.reason
    assert str(size) in dec.reason
    # terminal: further input gives the same error
    with pytest.raises(ProtocolError) as ei2:
        dec.feed(b"\x00\x00")
    assert ei2.value.code == ErrorCode.FRAME_SIZE
    del dec, events, exc, ei, ei2  # tracebacks hold the decoder
    after = stats()
    assert after["pages_live"] == base["pages_live"]


# ------------------------------------------------------- frame/page lifetime


def _messages(n: int, size: int = 100):
    return [[bytes([i]) * size, bytes([i + 1]) * (size // 2)] for i in range(n)]


def test_frames_outlive_decoder():
    base = stats()
    msgs = _messages(20)
    dec = codec.Decoder(read_buf_size=1024)
    wire = codec.encode_greeting() + b"".join(codec.encode_message(m) for m in msgs)
    events = []
    for i in range(0, len(wire), 333):
        events += dec.feed(wire[i : i + 333])
    messages = [e for e in events if isinstance(e, codec.Message)]
    assert [m.parts for m in messages] == msgs
    kept = [messages[0].frames[0], messages[7].frames[1], messages[19].frames[0]]
    views = [memoryview(messages[3].frames[0]), messages[12].frames[1].buffer]
    want_kept = [msgs[0][0], msgs[7][1], msgs[19][0]]
    want_views = [msgs[3][0], msgs[12][1]]
    del dec, events, messages
    s = stats()
    assert s["pages_live"] > base["pages_live"]
    # overwrite lots of heap: the kept slices must not be reused memory
    junk = [bytearray(b"\xee" * 1000) for _ in range(2000)]
    other = codec.Decoder(read_buf_size=1024)
    other.feed(codec.encode_greeting() + codec.encode_message([b"\xdd" * 900]) * 50)
    del junk, other
    assert [bytes(f) for f in kept] == want_kept
    assert [f.bytes for f in kept] == want_kept
    assert [v.tobytes() for v in views] == want_views
    assert all(v.readonly for v in views)
    del kept
    s = stats()
    assert s["pages_live"] > base["pages_live"]  # the views still hold pages
    assert [v.tobytes() for v in views] == want_views
    for v in views:
        v.release()
    del views
    assert stats()["pages_live"] == base["pages_live"]


def test_memoryview_outlives_its_frame():
    base = stats()
    dec = codec.Decoder(greeting=False)
    (msg,) = dec.feed(codec.encode_message([b"hello world" * 10]))
    frame = msg.frames[0]
    view = memoryview(frame)
    del dec, msg, frame
    s = stats()
    assert s["pages_live"] == base["pages_live"] + 1
    assert view.tobytes() == b"hello world" * 10
    assert bytes(view[:5]) == b"hello"
    with pytest.raises(TypeError):
        view[0] = 0
    del view
    assert stats()["pages_live"] == base["pages_live"]


def test_big_frame_outlives_decoder():
    base = stats()
    body = bytes(range(251)) * 5000  # > a 4 KiB page
    dec = codec.Decoder(greeting=False, read_buf_size=4096)
    (msg,) = dec.feed(codec.encode_message([body, b"end"]))
    frame = msg.frames[0]
    del dec, msg
    assert stats()["pages_live"] == base["pages_live"] + 1  # its own buffer
    assert frame == body and frame.more
    del frame
    assert stats()["pages_live"] == base["pages_live"]


# ------------------------------------------------------------ page reuse


@pytest.mark.parametrize("rbs", [256, PAGE])
@pytest.mark.parametrize("parts", [[b"x" * 10], [b"id", b"", b"body" * 20], [b"a"] * 6])
def test_steady_state_reuses_the_page(rbs, parts):
    dec = codec.Decoder(read_buf_size=rbs)
    dec.feed(codec.encode_greeting())
    wire = codec.encode_message(parts)
    cmd = codec.encode_ping(10, b"ctx")
    for _ in range(5):  # warm-up
        dec.feed(wire)
    before = stats()
    for i in range(2000):
        events = dec.feed(wire if i % 3 else cmd)
        assert len(events) == 1
        if i % 3:
            assert events[0].parts == parts
        del events
    after = zmtp.memory_stats()
    assert after["pages_total"] == before["pages_total"]
    assert after["pages_live"] == before["pages_live"]


def test_held_frames_force_new_pages():
    # the converse, so the steady-state test can fail: frames kept alive pin
    # their page and the decoder must take fresh ones
    dec = codec.Decoder(greeting=False, read_buf_size=256)
    wire = codec.encode_message([b"k" * 100])
    kept = []
    before = stats()
    for _ in range(50):
        kept += dec.feed(wire)
    after = zmtp.memory_stats()
    assert after["pages_total"] - before["pages_total"] >= 10
    assert all(m.parts == [b"k" * 100] for m in kept)


# ----------------------------------------------------------- release_idle


def test_release_idle_after_complete_message():
    base = stats()
    dec = codec.Decoder()
    events = dec.feed(codec.encode_greeting() + codec.encode_message([b"a" * 50, b"b"]))
    assert dec.holds_page
    assert stats()["pages_live"] == base["pages_live"] + 1
    frames = events[1].frames
    del events
    dec.release_idle()
    assert not dec.holds_page
    assert dec.pending == 0
    # the frames still hold the page
    assert stats()["pages_live"] == base["pages_live"] + 1
    assert [f.bytes for f in frames] == [b"a" * 50, b"b"]
    del frames
    assert stats()["pages_live"] == base["pages_live"]
    # and the decoder goes on with a fresh page
    (msg,) = dec.feed(codec.encode_message([b"again"]))
    assert msg.parts == [b"again"]
    assert dec.holds_page


@pytest.mark.parametrize("cut", [1, 2, 5, 9, 9 + 1000])
def test_release_idle_keeps_a_partial_frame(cut):
    base = stats()
    dec = codec.Decoder(greeting=False, read_buf_size=4096)
    wire = codec.encode_message([bytes(range(250)) * 8, b"last"])
    dec.feed(wire[:cut])
    dec.release_idle()
    assert dec.holds_page
    assert stats()["pages_live"] > base["pages_live"]
    (msg,) = dec.feed(wire[cut:])
    assert msg.parts == [bytes(range(250)) * 8, b"last"]
    del msg
    dec.release_idle()
    assert not dec.holds_page
    assert stats()["pages_live"] == base["pages_live"]


def test_release_idle_between_frames_of_a_message():
    base = stats()
    dec = codec.Decoder(greeting=False, read_buf_size=256)
    first = codec.encode_frame(b"first" * 10, True)
    assert dec.feed(first) == []
    dec.release_idle()  # nothing pending in the page; frame 1 is in the message
    assert stats()["pages_live"] == base["pages_live"] + 1
    (msg,) = dec.feed(codec.encode_frame(b"second", False))
    assert msg.parts == [b"first" * 10, b"second"]
    assert [f.more for f in msg.frames] == [True, False]
    del msg
    dec.release_idle()
    assert stats()["pages_live"] == base["pages_live"]


def test_release_idle_during_big_frame():
    base = stats()
    dec = codec.Decoder(greeting=False, read_buf_size=256)
    body = b"B" * 5000
    wire = codec.encode_message([body])
    dec.feed(wire[:3000])
    dec.release_idle()
    assert dec.holds_page
    assert dec.pending == 3000
    (msg,) = dec.feed(wire[3000:])
    assert msg.parts == [body]
    del msg
    dec.release_idle()
    assert not dec.holds_page
    assert stats()["pages_live"] == base["pages_live"]


# --------------------------------------------------------------- big frames


@pytest.mark.parametrize("chunk", [None, 1000, 4096, 70000])
def test_frame_larger_than_page(chunk):
    base = stats()
    body = bytes(range(256)) * 4096  # 1 MiB
    dec = codec.Decoder(read_buf_size=4096)
    wire = codec.encode_greeting() + codec.encode_message([b"head", body, b"tail"]) + codec.encode_message([b"next"])
    events = []
    if chunk is None:
        events = dec.feed(wire)
    else:
        for i in range(0, len(wire), chunk):
            events += dec.feed(wire[i : i + chunk])
    assert [type(e) for e in events] == [codec.Greeting, codec.Message, codec.Message]
    assert events[1].parts == [b"head", body, b"tail"]
    assert [f.more for f in events[1].frames] == [True, True, False]
    assert events[2].parts == [b"next"]
    after = zmtp.memory_stats()
    assert after["page_grows"] > base["page_grows"]
    # the big frame's buffer is no larger than the frame
    assert after["page_bytes_live"] - base["page_bytes_live"] <= len(body) + 3 * 4096
    del events, dec
    assert stats()["pages_live"] == base["pages_live"]


# ---------------------------------------------------------- Frame(data)


def test_frame_constructor_copies():
    src = bytearray(b"abc")
    f = zmtp.Frame(src)
    src[0] = ord("X")
    assert f == b"abc"
    assert f != b"abd"
    assert len(f) == 3
    assert f.bytes == b"abc"
    assert bytes(f) == b"abc"
    assert not f.more and not f.command
    buf = f.buffer
    # Writable, as pyzmq's: the Frame's own copy (src is untouched).
    assert isinstance(buf, memoryview) and not buf.readonly and buf is f.buffer
    assert buf.tobytes() == b"abc"
    buf[0] = ord("z")
    memoryview(f)[1] = ord("y")
    assert f == b"zyc" and f.bytes == b"zyc" and src == bytearray(b"Xbc")


def test_frame_constructor_page_accounting():
    base = stats()
    f = zmtp.Frame(b"q" * 1000)
    assert stats()["pages_live"] == base["pages_live"] + 1
    view = f.buffer
    del f
    assert stats()["pages_live"] == base["pages_live"] + 1
    assert view.tobytes() == b"q" * 1000
    view.release()
    del view
    assert stats()["pages_live"] == base["pages_live"]


def test_frame_empty():
    base = stats()
    frames = [zmtp.Frame(), zmtp.Frame(b""), zmtp.Frame(None)]
    assert zmtp.memory_stats()["pages_live"] == base["pages_live"]  # no page
    for f in frames:
        assert len(f) == 0 and f.bytes == b"" and bytes(f) == b""
        assert f.buffer.tobytes() == b""
        assert f == b""


def test_frame_bytes_is_cached():
    f = zmtp.Frame(b"cache me")
    assert f.bytes is f.bytes


def test_frame_constructor_errors():
    assert zmtp.Frame(b"x", track=True).tracker.done
    assert zmtp.Frame(track=True).tracker.done
    with pytest.raises(TypeError):
        zmtp.Frame("str")
    with pytest.raises(TypeError):
        zmtp.Frame(12)
