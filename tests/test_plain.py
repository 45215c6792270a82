"""PLAIN (RFC 24) against pyzmq 27.3 / libzmq 4.3.5: the options as pyzmq's,
a zmtp PLAIN client authenticated by pyzmq's ThreadAuthenticator (tcp and
ipc, either side binding, REQ/REP, DEALER/ROUTER, PUB/SUB, both backends),
a wrong password refused with HANDSHAKE_FAILED_AUTH(400) on both sides, a
PLAIN server with no ZAP handler refusing as libzmq does
(HANDSHAKE_FAILED_NO_DETAIL, EFAULT), and PLAIN against NULL refused with
MECHANISM_MISMATCH.  The wire bytes and every malformed command are checked
without sockets in tests/c/test_mech.c (test_mechanism_c.py)."""

from __future__ import annotations

import errno
from typing import Any, Iterator, List, Tuple

import pytest

zmq = pytest.importorskip("zmq")
from zmq.auth.thread import ThreadAuthenticator  # noqa: E402

import zmtp  # noqa: E402
from helpers import raises_errno, zsock, psock  # noqa: E402
from test_monitor import drain_events, endpoint_for, seen  # noqa: E402

E = zmtp.Event
PAIRS = [(zmtp.REP, zmtp.REQ), (zmtp.ROUTER, zmtp.DEALER), (zmtp.PUB, zmtp.SUB)]
PAIR_IDS = ["req_rep", "dealer_router", "pub_sub"]


@pytest.fixture
def pyauth(zctx: Any) -> Iterator[Any]:
    """pyzmq's ThreadAuthenticator in the pyzmq context: user u, password p."""
    auth = ThreadAuthenticator(zctx)
    auth.start()
    auth.configure_plain(domain="*", passwords={"u": "p"})
    yield auth
    auth.stop()


def exchange(server: Any, client: Any, stype: int) -> None:
    """One message each way (PUB/SUB: published until the subscriber has one)."""
    if stype == zmtp.PUB:
        client.setsockopt(zmtp.SUBSCRIBE, b"")
        for _ in range(400):
            server.send(b"news")
            if client.poll(50):
                assert client.recv() == b"news"
                return
        raise AssertionError("the subscriber got nothing")
    if stype == zmtp.ROUTER:
        client.send(b"hi")
        rid, body = server.recv_multipart()
        assert body == b"hi"
        server.send_multipart([rid, b"yo"])
    else:
        client.send(b"hi")
        assert server.recv() == b"hi"
        server.send(b"yo")
    assert client.recv() == b"yo"


def test_options_as_pyzmq(ctx: Any, zctx: Any) -> None:
    """MECHANISM, PLAIN_SERVER, PLAIN_USERNAME, PLAIN_PASSWORD read and set as
    on a pyzmq socket, errors included."""
    for make, err in ((lambda k: zsock(ctx, k), zmtp.ZMQError), (lambda k: psock(zctx, k), zmq.ZMQError)):
        s = make(zmtp.DEALER)
        assert (s.mechanism, s.plain_server, s.plain_username, s.plain_password) == (0, 0, b"", b"")
        s.plain_username = b"u"
        assert (s.mechanism, s.plain_server, s.plain_username) == (1, 0, b"u")
        s.plain_server = 1
        assert (s.mechanism, s.plain_server) == (1, 1)
        s.plain_password = b"p"  # a client again
        assert (s.mechanism, s.plain_server, s.plain_password) == (1, 0, b"p")
        s.plain_server = 0
        assert s.mechanism == 0
        s.plain_server = True  # as pyzmq's examples write it
        assert (s.mechanism, s.plain_server) == (1, 1)
        s.plain_server = False
        assert s.mechanism == 0
        s.plain_username = b"x" * 255
        for bad in (b"", b"x" * 256):
            raises_errno(errno.EINVAL, s.setsockopt, zmtp.PLAIN_USERNAME, bad, exc=err)
            raises_errno(errno.EINVAL, s.setsockopt, zmtp.PLAIN_PASSWORD, bad, exc=err)
        raises_errno(errno.EINVAL, s.setsockopt, zmtp.MECHANISM, 1, exc=err)
        raises_errno(errno.EINVAL, s.setsockopt, zmtp.PLAIN_SERVER, 2, exc=err)
        with pytest.raises(TypeError):
            s.setsockopt(zmtp.PLAIN_PASSWORD, "str")
        s.close(0)


def test_password_never_shown(ctx: Any) -> None:
    """The password is in no repr and no error message."""
    s = zsock(ctx, zmtp.REQ, plain_username=b"u", plain_password=b"s3cr3t-pw")
    assert b"s3cr3t" not in repr(s).encode()
    try:
        s.setsockopt(zmtp.PLAIN_PASSWORD, b"s3cr3t-pw" * 40)
    except zmtp.ZMQError as exc:
        assert "s3cr3t" not in str(exc)
    else:
        raise AssertionError("a 360-byte password was taken")
    assert s.plain_password == b"s3cr3t-pw"
    s.close(0)


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
@pytest.mark.parametrize("zmtp_binds", [True, False], ids=["zmtp_binds", "pyzmq_binds"])
@pytest.mark.parametrize("stype,ctype", PAIRS, ids=PAIR_IDS)
def test_zmtp_client_pyzmq_server(backend, ctx, zctx, pyauth, transport, zmtp_binds, stype, ctype, tmp_path):
    """A zmtp PLAIN client, a pyzmq PLAIN server whose ZAP handler knows it."""
    ep = endpoint_for(transport, tmp_path, "plain")
    server = psock(zctx, stype, plain_server=1)
    client = zsock(ctx, ctype, plain_username=b"u", plain_password=b"p")
    if zmtp_binds:
        client.bind(ep)
        server.connect(ep)
    else:
        server.bind(ep)
        client.connect(ep)
    exchange(server, client, stype)


@pytest.mark.parametrize("zmtp_binds", [True, False], ids=["zmtp_binds", "pyzmq_binds"])
def test_wrong_password_refused(backend, ctx, zctx, pyauth, zmtp_binds, tmp_path):
    """ZAP says 400: the pyzmq server reports HANDSHAKE_FAILED_AUTH(400) and
    sends ERROR("400") in libzmq's PLAIN form ("^RROR" for 0x05 "ERROR",
    codec.h); the zmtp client reports HANDSHAKE_FAILED_AUTH(400) too."""
    ep = endpoint_for("tcp", tmp_path, "plain")
    server = psock(zctx, zmq.REP, plain_server=1)
    smon = server.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_AUTH)
    client = zsock(ctx, zmtp.REQ, plain_username=b"u", plain_password=b"wrong")
    kinds = E.HANDSHAKE_FAILED_AUTH | E.HANDSHAKE_FAILED_PROTOCOL | E.HANDSHAKE_SUCCEEDED
    cmon = client.get_monitor_socket(kinds)
    if zmtp_binds:
        client.bind(ep)
        server.connect(ep)
    else:
        server.bind(ep)
        client.connect(ep)
    evs = _first_failures(cmon, kinds)
    assert evs[0] == (E.HANDSHAKE_FAILED_AUTH, 400), evs
    assert drain_events(smon, seen(E.HANDSHAKE_FAILED_AUTH), timeout=20)[0] == (E.HANDSHAKE_FAILED_AUTH, 400)
    assert not server.poll(100)


def _first_failures(mon: Any, kinds: int, n: int = 1) -> List[Tuple[int, int]]:
    return [e for e in drain_events(mon, lambda evs: sum(1 for k, _ in evs if k & kinds) >= n, timeout=20)
            if e[0] & kinds]


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_server_without_zap_refuses_as_libzmq(backend, ctx, zctx, transport, tmp_path):
    """No handler at inproc://zeromq.zap.01: libzmq 4.3.5's PLAIN server
    refuses every client with HANDSHAKE_FAILED_NO_DETAIL(EFAULT); so does
    zmtp's, and the client sees no handshake succeed."""
    fail = E.HANDSHAKE_FAILED_NO_DETAIL | E.HANDSHAKE_FAILED_AUTH | E.HANDSHAKE_FAILED_PROTOCOL | E.HANDSHAKE_SUCCEEDED
    got = []
    for server in (zsock(ctx, zmtp.REP, plain_server=1), psock(zctx, zmq.REP, plain_server=1)):
        ep = endpoint_for(transport, tmp_path, f"nozap{len(got)}")
        mon = server.get_monitor_socket(fail)
        server.bind(ep)
        client = psock(zctx, zmq.REQ, plain_username=b"u", plain_password=b"p")
        client.connect(ep)
        got.append(_first_failures(mon, fail)[0])
        assert not server.poll(100)
        client.close(0)
    assert got[0] == got[1] == (E.HANDSHAKE_FAILED_NO_DETAIL, errno.EFAULT), got


@pytest.mark.parametrize("zmtp_plain", [True, False], ids=["zmtp_plain", "pyzmq_plain"])
def test_mechanism_mismatch(backend, ctx, zctx, zmtp_plain, tmp_path):
    """PLAIN against NULL: libzmq reports HANDSHAKE_FAILED_PROTOCOL
    (MECHANISM_MISMATCH); so does zmtp once it has the peer's greeting.  A
    libzmq that accepted the connection sends the end of its greeting only
    after our first 11 octets arrive alone, and closes at the mismatch
    without flushing it: zmtp, sending its 64 octets at once, then sees
    the peer close first (HANDSHAKE_FAILED_NO_DETAIL).  Either way no
    handshake succeeds on either side."""
    ep = endpoint_for("tcp", tmp_path, "mm")
    if zmtp_plain:
        z = zsock(ctx, zmtp.DEALER, plain_username=b"u", plain_password=b"p")
        p = psock(zctx, zmq.ROUTER)
    else:
        z = zsock(ctx, zmtp.DEALER)
        p = psock(zctx, zmq.ROUTER, plain_server=1)
    kinds = E.HANDSHAKE_FAILED_PROTOCOL | E.HANDSHAKE_FAILED_NO_DETAIL | E.HANDSHAKE_SUCCEEDED
    zmon = z.get_monitor_socket(kinds)
    pmon = p.get_monitor_socket(int(kinds))
    p.bind(ep)
    z.connect(ep)
    mismatch = (E.HANDSHAKE_FAILED_PROTOCOL, zmtp.ProtocolErrorCode.ZMTP_MECHANISM_MISMATCH)
    assert _first_failures(pmon, kinds)[0] == mismatch
    zev = _first_failures(zmon, kinds, 3)
    assert all(e == mismatch or e[0] == E.HANDSHAKE_FAILED_NO_DETAIL for e in zev), zev
