"""Replay the network fuzzer's inputs through its harness (fuzz/net_fuzz.py).

Each input is what a raw TCP peer sends to a real zmtp socket (bound, or
connecting to the peer), for one socket type, in one handshake phase, in
chunks, while a good pyzmq peer stays connected to the same zmtp socket.  The
harness checks after every input that the good peer still gets its round
trip, that ``stats()`` counted the connection and exactly the protocol
errors and failed handshakes the bytes call for, that the application got
exactly the peer's messages, that what zmtp sent back is valid ZMTP, and that
no descriptor or read page was left behind.

Replayed here: the seed corpus (fuzz/net_corpus/, recorded pyzmq sessions
of every socket type plus a few hostile streams, made by
fuzz/make_net_seeds.py), every saved finding (fuzz/net_regressions/) and the
inline regressions below, under both backends; and the same for the PLAIN
and CURVE targets (fuzz/net_mech_corpus/, fuzz/net_mech_regressions/:
``make_net_seeds.py --mech``, ``Harness.run_mech``).  A finding that is still an
open zmtp bug is a strict xfail: the test asserts the correct behaviour and
turns red (XPASS) once zmtp is fixed, so the marker comes off then.  `bash
fuzz/net_run.sh SECONDS` explores further (atheris + ASan/UBSan).
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import pytest

pytest.importorskip("zmq")

ROOT = pathlib.Path(__file__).resolve().parent.parent / "fuzz"
HARNESS = ROOT / "net_fuzz.py"
if not HARNESS.is_file():  # pragma: no cover - an sdist without fuzz/
    pytest.skip("fuzz/net_fuzz.py is not there", allow_module_level=True)


def _load_harness():
    name = "zmtp_net_fuzz_harness"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, HARNESS)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up while the class is built
    spec.loader.exec_module(mod)
    return mod


nf = _load_harness()


def _files(d):
    return sorted(p for p in (ROOT / d).iterdir() if p.is_file() and not p.name.endswith(".txt")) \
        if (ROOT / d).is_dir() else []


FILES = _files("net_corpus")


#: name: (input bytes in net_fuzz.py's format, what it did wrong, xfail
#: reason while the bug is open or None).  Files in fuzz/net_regressions/
#: are replayed too (same name -> same entry).
REGRESSIONS = {
    # PAIR, zmtp bound; a raw peer connects and says nothing (or half a
    # greeting, or a greeting only) and stays connected; the good pyzmq
    # PAIR reconnects (so the raw connection is first in zmtp's list);
    # zmtp's send() to the good peer, ACTIVE, raises Again after SNDTIMEO.
    # libzmq attaches an accepted connection's pipe only after its
    # handshake, so there the good peer is served.
    "pair-silent-first-peer-blocks-send": (b"\x00\x18\x20", "good PAIR peer starved (fixed: pair_peer in engine.c)", None),
    "pair-half-greeting-first-peer-blocks-send": (
        b"\x00\x18\x20" + nf.greeting(1)[:30], "good PAIR peer starved (fixed: pair_peer in engine.c)", None),
    "pair-greeting-only-first-peer-blocks-send": (b"\x00\x1a\x20", "good PAIR peer starved (fixed: pair_peer in engine.c)", None),
}
for _p in _files("net_regressions"):
    if _p.name not in REGRESSIONS:
        REGRESSIONS[_p.name] = (_p.read_bytes(), "saved finding", None)
    else:
        assert REGRESSIONS[_p.name][0] == _p.read_bytes(), f"fuzz/net_regressions/{_p.name} differs from the inline copy"

#: Hand-made inputs with the outcome the oracle must predict (so the oracle,
#: on which the stats check rests, is itself checked): name -> (input,
#: protocol errors, handshake_failed, active).
G = nf.greeting
R = nf.ready
E = nf.codec
ORACLE_CASES = {
    "http_to_router": (nf.make_input("ROUTER", b"GET / HTTP/1.1\r\n\r\n"), {"SIGNATURE": 1}, 1, False),
    "zmtp10_to_dealer": (nf.make_input("DEALER", b"\xff" + b"\0" * 8 + b"\x7f\x00", side="connect"),
                         {"VERSION": 1}, 1, False),
    # ZMTP/2.0 peers (tests/test_zmtp20.py): compatible ones are admitted, others refused and counted
    "zmtp20_router_to_dealer": (nf.make_input("DEALER", b"\xff" + b"\0" * 8 + b"\x7f\x01\x06\x00\x00\x00\x01x",
                                              side="connect"), {}, 0, True),
    "zmtp20_pull_to_pull": (nf.make_input("PULL", b"\xff" + b"\0" * 8 + b"\x7f\x01\x07\x00\x00"),
                            {"V2_SOCKET_TYPE": 1}, 1, False),
    "zmtp20_command_to_pull": (nf.make_input("PULL", b"\xff" + b"\0" * 8 + b"\x7f\x01\x08\x00\x00\x04\x00"),
                               {"RESERVED_FLAGS": 1}, 0, True),
    "curve_to_pull": (nf.make_input("PULL", G(1).replace(b"NULL", b"CURV")), {"MECHANISM": 1}, 1, False),
    "pub_ready_to_push": (nf.make_input("PUSH", R("PUB", False), prefix_mode=nf.PREFIX_GREETING), {}, 1, False),
    "message_before_ready": (nf.make_input("SUB", E.encode_frame(b"x"), prefix_mode=nf.PREFIX_GREETING), {}, 1, False),
    "reserved_flags_after_greeting": (nf.make_input("REP", b"\x10\x01x", prefix_mode=nf.PREFIX_GREETING),
                                      {"RESERVED_FLAGS": 1}, 0, False),
    "second_pair_peer": (nf.make_input("PAIR", b"", prefix_mode=nf.PREFIX_READY), {}, 1, False),
    # until READY a frame is at most HANDSHAKE_FRAME_MAX (64 KiB), refused at its header
    "long_command_before_ready": (nf.make_input("PULL", b"\x06" + (1 << 20).to_bytes(8, "big"),
                                                prefix_mode=nf.PREFIX_GREETING), {"MSG_TOO_LARGE": 1}, 0, False),
    "valid_dealer_then_error": (nf.make_input("ROUTER", E.encode_error(b"bye"), prefix_mode=nf.PREFIX_READY,
                                              peer_index=1), {}, 0, True),
    "valid_then_bad_frame_size": (nf.make_input("PULL", b"\x02" + (2**63).to_bytes(8, "big"),
                                                prefix_mode=nf.PREFIX_READY30), {"FRAME_SIZE": 1}, 0, True),
}


def test_corpus_is_present():
    assert len([p for p in FILES if p.parent.name == "net_corpus"]) >= 40, \
        "fuzz/net_corpus is missing (python fuzz/make_net_seeds.py)"


@pytest.mark.parametrize("name", list(ORACLE_CASES))
def test_oracle(name):
    data, errors, hs_failed, active = ORACLE_CASES[name]
    inp = nf.parse_input(data)
    out = nf.expected_outcome(inp.ztype, inp.stream)
    assert {nf.ErrorCode(c).name: n for c, n in out.protocol_errors.items()} == errors, out
    assert out.handshake_failed == hs_failed, out
    assert out.active == active, out


def test_input_format_round_trip():
    data = nf.make_input("XSUB", b"payload", side="connect", prefix_mode=nf.PREFIX_READY30,
                         end_mode=nf.END_KEEP_OPEN, peer_index=1, identity=True, splits=(1, 64, 3))
    inp = nf.parse_input(data)
    assert (inp.ztype, inp.side, inp.prefix_mode, inp.end_mode, inp.peer_type, inp.identity) == \
        ("XSUB", "connect", nf.PREFIX_READY30, nf.END_KEEP_OPEN, "XPUB", True)
    assert b"".join(inp.chunks) == inp.stream and inp.stream.endswith(b"payload")
    assert [len(c) for c in inp.chunks][:3] == [1, 64, 3]
    assert nf.parse_input(b"") is not None and nf.parse_input(b"\xff") is not None


def test_replay_corpus(backend):
    """Every file through one harness (one zmtp socket per type, reused, as
    in a fuzz run); all failures are reported together."""
    failures = []
    with nf.Harness() as h:
        for path in FILES:
            try:
                h.run(path.read_bytes())
            except nf.Finding as f:
                failures.append(f"{path.parent.name}/{path.name}: {nf.parse_input(path.read_bytes()).describe()}: {f}")
        counts = dict(h.counts)
    assert not failures, "\n".join(failures)
    # the corpus exercises both outcomes
    assert counts["valid"] > 20 and counts["invalid"] > 10, counts


MECH_FILES = _files("net_mech_corpus") + _files("net_mech_regressions")


def test_mech_corpus_is_present():
    assert len(MECH_FILES) >= 40, "fuzz/net_mech_corpus is missing (python fuzz/make_net_seeds.py --mech)"


def test_mech_input_format_round_trip():
    data = nf.make_mech_input("CURVE-C", b"payload", side="connect", prefix_mode=3, end_mode=nf.END_RESET,
                              splits=(2, 5))
    inp = nf.parse_mech_input(data)
    assert (inp.target, inp.side, inp.prefix_mode, inp.end_mode, inp.lengths) == \
        ("CURVE-C", "connect", 3, nf.END_RESET, [2, 5])
    assert inp.payload == b"payload" and b"".join(inp.chunks()) == b"payload"
    assert nf.parse_mech_input(b"").target == "PLAIN-S"


def test_replay_mech_corpus(backend):
    """Every PLAIN/CURVE input through one harness (one rig per target);
    the sealed sessions must have got their messages through (counted
    "active")."""
    failures = []
    with nf.Harness() as h:
        for path in MECH_FILES:
            try:
                h.run_mech(path.read_bytes())
            except nf.Finding as f:
                failures.append(f"{path.parent.name}/{path.name}: "
                                f"{nf.parse_mech_input(path.read_bytes()).describe()}: {f}")
        counts = dict(h.counts)
    assert not failures, "\n".join(failures)
    assert counts["active"] >= 16 and counts["invalid"] > 40, counts


def _regression_params():
    for name, (_data, _what, xfail) in REGRESSIONS.items():
        marks = [pytest.mark.xfail(strict=True, raises=nf.Finding, reason=xfail)] if xfail else []
        yield pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("name", list(_regression_params()))
def test_regression(name, backend):
    """The input must pass every check of the harness (a good peer's round
    trip, stats, delivery, output, fds); the timeout is short, a starved
    peer shows within a second."""
    data, _what, _xfail = REGRESSIONS[name]
    with nf.Harness(timeout_ms=1000) as h:
        h.skip_known = False  # whatever NET_FUZZ_SKIP_KNOWN says
        h.run(data)
