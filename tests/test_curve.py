"""CURVE (issue 17): libsodium loaded at run time, keys as pyzmq's, the C
Z85 codec (RFC 32), the CURVE socket options.

Keys are checked against pyzmq's (libzmq 4.3.5 over libsodium) in both
directions; zmtp without libsodium is a subprocess with ZMTP_LIBSODIUM
naming a missing library.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import zmq

import zmtp
from zmtp import _zmtp

from helpers import round_trips_under_alloc_failures

#: the folder holding the zmtp under test (the source tree, or an installed
#: copy: a sanitizer venv, a wheel), for the child interpreters' PYTHONPATH
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(zmtp.__file__)))

# RFC 32's test vector.
RFC32_BYTES = bytes([0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B])
RFC32_TEXT = b"HelloWorld"


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    """``python -c code`` with this worktree's zmtp and extra environment."""
    full = dict(os.environ, PYTHONPATH=ROOT, **env)
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=60)


def test_libsodium_loaded():
    assert _zmtp._curve_unavailable() is None


def test_z85_rfc32_vector():
    assert _zmtp._z85_encode(RFC32_BYTES) == RFC32_TEXT
    assert _zmtp._z85_decode(RFC32_TEXT) == RFC32_BYTES


@pytest.mark.parametrize("n", [0, 4, 32, 64])
def test_z85_round_trip_as_pyzmq(n):
    import zmq.utils.z85

    data = os.urandom(n)
    text = _zmtp._z85_encode(data)
    assert text == zmq.utils.z85.encode(data)
    assert _zmtp._z85_decode(text) == data


@pytest.mark.parametrize("bad", [b"Hell", b"HelloWorl~", b"%nSc1" * 2 + b"#####"])
def test_z85_decode_refuses(bad):
    # a length not a multiple of 5, a character outside the alphabet, a
    # group above 2^32 - 1 ("#####" is 85^5 - 1)
    with pytest.raises(ValueError):
        _zmtp._z85_decode(bad)


def test_z85_encode_refuses_odd_length():
    with pytest.raises(ValueError):
        _zmtp._z85_encode(b"abc")


def test_keypair_interoperates_with_pyzmq():
    public, secret = zmtp.curve_keypair()
    assert len(public) == len(secret) == 40 and public != secret
    assert zmq.curve_public(secret) == public
    assert zmtp.curve_public(secret) == public
    p2, s2 = zmq.curve_keypair()
    assert zmtp.curve_public(s2) == p2
    assert zmtp.curve_keypair()[1] != secret  # fresh randomness


@pytest.mark.parametrize("bad", [b"x" * 39, b"x" * 41, b"\0" * 32])
def test_curve_public_refuses_as_pyzmq(bad):
    with pytest.raises(ValueError, match="secret key must be a 40 byte z85 encoded string"):
        zmtp.curve_public(bad)
    with pytest.raises(ValueError):
        zmq.curve_public(bad)


@pytest.mark.parametrize("bad", [b"~" * 40, b"#" * 40])
def test_curve_public_refuses_bad_z85_as_pyzmq(bad):
    with pytest.raises(zmtp.ZMQError) as e:
        zmtp.curve_public(bad)
    assert e.value.errno == zmq.EINVAL and bad.decode() not in str(e.value)
    with pytest.raises(zmq.ZMQError) as pe:
        zmq.curve_public(bad)
    assert pe.value.errno == zmq.EINVAL


def test_curve_keygen_prints_a_pair():
    r = subprocess.run([sys.executable, "-m", "zmtp.curve_keygen"], env=dict(os.environ, PYTHONPATH=ROOT),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "== CURVE PUBLIC KEY ==" and lines[2] == "== CURVE SECRET KEY =="
    assert zmq.curve_public(lines[3].encode()) == lines[1].encode()


def test_without_libsodium_says_what_to_install():
    code = (
        "import zmtp\n"
        "print(zmtp.has('curve'))\n"
        "for f, a in ((zmtp.curve_keypair, ()), (zmtp.curve_public, (b'x' * 40,))):\n"
        "    try:\n"
        "        f(*a)\n"
        "    except RuntimeError as e:\n"
        "        print(e)\n"
    )
    r = run_python(code, ZMTP_LIBSODIUM="/nonexistent/libsodium.so")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "False"
    assert len(lines) == 3
    for line in lines[1:]:
        assert "libsodium" in line and "apt-get install libsodium23" in line and "wheel" in line
    r = run_python("import sys, zmtp.curve_keygen as k; sys.exit(k.main())", ZMTP_LIBSODIUM="/nonexistent/x.so")
    assert r.returncode == 1 and "libsodium" in r.stderr


def test_wheel_copy_of_libsodium_is_loaded_first(tmp_path):
    # a wheel ships zmtp/_sodium/libsodium.so: a copy of the package with the
    # system's library there loads that file (the loader's log says which)
    import shutil

    def loaded(stderr: str) -> list:
        # the loader runs the init of each library it really loads
        return [line.split("calling init: ")[1].strip() for line in stderr.splitlines()
                if "calling init: " in line and "libsodium" in os.path.basename(line)]

    system = loaded(run_python("import zmtp; zmtp.curve_keypair()", LD_DEBUG="files").stderr)
    assert len(system) == 1 and "/zmtp/_sodium/" not in system[0], system
    shutil.copytree(os.path.join(ROOT, "zmtp"), tmp_path / "zmtp", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "zmtp" / "_sodium").mkdir()
    shutil.copy(system[0], tmp_path / "zmtp" / "_sodium" / "libsodium.so")
    env = dict(os.environ, PYTHONPATH=str(tmp_path), LD_DEBUG="files")
    r = subprocess.run([sys.executable, "-c", "import zmtp; zmtp.curve_keypair()"], env=env, capture_output=True,
                       text=True, timeout=60, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr[-2000:]
    assert loaded(r.stderr) == ["%s/zmtp/_sodium/libsodium.so" % tmp_path]


# ---------------------------------------------------------------------------
# The CURVE mechanism (src/mech_curve.c) against libzmq over a plain socket:
# Python carries the bytes, the mechanism makes and opens them.
# ---------------------------------------------------------------------------


class Wire:
    """A ZMTP byte stream over a blocking TCP socket: the greeting, then
    frames as (flags, body)."""

    def __init__(self, sock) -> None:
        self.sock = sock
        sock.settimeout(10)
        self.buf = b""

    def _need(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("peer closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def greeting(self) -> bytes:
        return self._need(64)

    def frame(self):
        flags = self._need(1)[0]
        size = int.from_bytes(self._need(8), "big") if flags & 2 else self._need(1)[0]
        return flags, self._need(size)

    def closed(self) -> bool:
        try:
            self.frame()
        except (ConnectionError, OSError):
            return True
        return False


def z85_key(k: bytes) -> bytes:
    return _zmtp._z85_decode(k)


def frame_body(wire_bytes: bytes) -> bytes:
    """The body of one encoded frame."""
    if wire_bytes[0] & 2:
        return wire_bytes[9:]
    return wire_bytes[2:]


def mech_client(sock, server_public: bytes, socktype: str = "REQ"):
    """Run the client handshake with zmtp's mechanism; returns its handle."""
    public, secret = zmtp.curve_keypair()
    mech, out = _zmtp._curve_mech(0, z85_key(public), z85_key(secret), z85_key(server_public), socktype)
    sock.sendall(out)
    wire = Wire(sock)
    greeting = wire.greeting()
    assert greeting[12:17] == b"CURVE"
    ready = False
    while not ready:
        flags, body = wire.frame()
        assert flags & 4, "a command during the handshake"
        out, ready, meta = _zmtp._curve_mech_handle(mech, body)
        sock.sendall(out)
    return mech, wire, meta


def test_mechanism_as_client_against_libzmq_server(zctx):
    import socket

    srv_public, srv_secret = zmq.curve_keypair()
    rep = zctx.socket(zmq.REP)
    rep.curve_secretkey = srv_secret
    rep.curve_publickey = srv_public
    rep.curve_server = True
    port = rep.bind_to_random_port("tcp://127.0.0.1")
    with socket.create_connection(("127.0.0.1", port)) as sock:
        mech, wire, meta = mech_client(sock, srv_public)
        assert b"\x0bSocket-Type\x00\x00\x00\x03REP" in meta
        # REQ: an empty delimiter then the body, sealed frame by frame
        sock.sendall(_zmtp._curve_mech_encode(mech, b"", 1) + _zmtp._curve_mech_encode(mech, b"hello", 0))
        assert rep.recv_multipart() == [b"hello"]
        rep.send_multipart([b"wor", b"ld" * 1000])
        got = []
        while True:
            flags, body = wire.frame()
            assert flags == 0 or flags == 2  # MESSAGE goes as a data frame (libzmq), never a command
            data, more = _zmtp._curve_mech_decode(mech, body)
            got.append((data, more))
            if not more & 1:
                break
        assert got == [(b"", 1), (b"wor", 1), (b"ld" * 1000, 0)]


def test_mechanism_as_server_against_libzmq_client(zctx):
    import socket

    srv_public, srv_secret = zmtp.curve_keypair()
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    req = zctx.socket(zmq.REQ)
    req.curve_serverkey = srv_public
    req.curve_publickey, req.curve_secretkey = zmq.curve_keypair()
    req.connect("tcp://127.0.0.1:%d" % lsock.getsockname()[1])
    sock, _ = lsock.accept()
    lsock.close()
    with sock:
        mech, out = _zmtp._curve_mech(1, z85_key(srv_public), z85_key(srv_secret), b"\0" * 32, "REP")
        sock.sendall(out)
        wire = Wire(sock)
        assert wire.greeting()[12:17] == b"CURVE"
        ready = False
        while not ready:
            flags, body = wire.frame()
            out, ready, meta = _zmtp._curve_mech_handle(mech, body)
            sock.sendall(out)
        assert b"\x0bSocket-Type\x00\x00\x00\x03REQ" in meta
        req.send_multipart([b"a", b"b" * 300])
        got = []
        while len(got) < 3:
            flags, body = wire.frame()
            got.append(_zmtp._curve_mech_decode(mech, body))
        assert got == [(b"", 1), (b"a", 1), (b"b" * 300, 0)]
        sock.sendall(b"".join(_zmtp._curve_mech_encode(mech, d, f) for d, f in ((b"", 1), (b"ok", 0))))
        assert req.recv_multipart() == [b"ok"]


def test_wrong_server_key_refused_by_libzmq(zctx):
    import socket

    srv_public, srv_secret = zmq.curve_keypair()
    rep = zctx.socket(zmq.REP)
    rep.curve_secretkey = srv_secret
    rep.curve_server = True
    port = rep.bind_to_random_port("tcp://127.0.0.1")
    wrong_public, _ = zmq.curve_keypair()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        public, secret = zmtp.curve_keypair()
        mech, out = _zmtp._curve_mech(0, z85_key(public), z85_key(secret), z85_key(wrong_public), "REQ")
        sock.sendall(out)
        wire = Wire(sock)
        frames = []
        try:  # libzmq cannot open our HELLO: it closes (maybe resets), no WELCOME
            wire.greeting()
            while True:
                frames.append(wire.frame())
        except (ConnectionError, OSError):
            pass
        assert frames == []


def test_libzmq_client_with_wrong_server_key_refused():
    # our server cannot open the HELLO of a client that used another key
    srv_public, srv_secret = zmtp.curve_keypair()
    other_public, other_secret = zmtp.curve_keypair()
    cli_public, cli_secret = zmtp.curve_keypair()
    server, _ = _zmtp._curve_mech(1, z85_key(srv_public), z85_key(srv_secret), b"\0" * 32, "REP")
    client, hello = _zmtp._curve_mech(0, z85_key(cli_public), z85_key(cli_secret), z85_key(other_public), "REQ")
    with pytest.raises(ValueError, match="code 0x11000001"):  # ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC
        _zmtp._curve_mech_handle(server, frame_body(hello[64:]))


def handshake_pair():
    """A client and a server mechanism joined in memory, READY both."""
    srv_public, srv_secret = zmtp.curve_keypair()
    cli_public, cli_secret = zmtp.curve_keypair()
    server, _ = _zmtp._curve_mech(1, z85_key(srv_public), z85_key(srv_secret), b"\0" * 32, "REP")
    client, hello = _zmtp._curve_mech(0, z85_key(cli_public), z85_key(cli_secret), z85_key(srv_public), "REQ")
    welcome, ready, _ = _zmtp._curve_mech_handle(server, frame_body(hello[64:]))
    assert not ready
    initiate, ready, _ = _zmtp._curve_mech_handle(client, frame_body(welcome))
    assert not ready
    ready_cmd, ready, _ = _zmtp._curve_mech_handle(server, frame_body(initiate))
    assert ready
    out, ready, _ = _zmtp._curve_mech_handle(client, frame_body(ready_cmd))
    assert ready and out == b""
    return client, server, hello[64:], initiate


def test_replayed_or_old_message_nonce_closes():
    client, server, _, _ = handshake_pair()
    m1 = frame_body(_zmtp._curve_mech_encode(client, b"one", 0))
    m2 = frame_body(_zmtp._curve_mech_encode(client, b"two", 4))
    assert _zmtp._curve_mech_decode(server, m2) == (b"two", 4)  # COMMAND travels sealed
    with pytest.raises(ValueError, match="code 0x10000002"):  # INVALID_SEQUENCE
        _zmtp._curve_mech_decode(server, m1)


def test_tampered_box_closes():
    client, server, _, _ = handshake_pair()
    m = bytearray(frame_body(_zmtp._curve_mech_encode(client, b"payload", 0)))
    m[-1] ^= 1
    with pytest.raises(ValueError, match="code 0x11000001"):
        _zmtp._curve_mech_decode(server, bytes(m))


@pytest.mark.parametrize("cut", [1, 50, 193])
def test_truncated_hello_refused(cut):
    srv_public, srv_secret = zmtp.curve_keypair()
    server, _ = _zmtp._curve_mech(1, z85_key(srv_public), z85_key(srv_secret), b"\0" * 32, "REP")
    _, _, hello, _ = handshake_pair()
    with pytest.raises(ValueError, match="code 0x10000013"):  # MALFORMED_COMMAND_HELLO
        _zmtp._curve_mech_handle(server, frame_body(hello)[:-cut])


def test_hello_with_padding_not_zero_refused():
    srv_public, srv_secret = zmtp.curve_keypair()
    cli_public, cli_secret = zmtp.curve_keypair()
    server, _ = _zmtp._curve_mech(1, z85_key(srv_public), z85_key(srv_secret), b"\0" * 32, "REP")
    _, hello = _zmtp._curve_mech(0, z85_key(cli_public), z85_key(cli_secret), z85_key(srv_public), "REQ")
    body = bytearray(frame_body(hello[64:]))
    body[6 + 2 + 10] = 1
    with pytest.raises(ValueError, match="code 0x10000013"):
        _zmtp._curve_mech_handle(server, bytes(body))


def test_out_of_order_commands_refused():
    srv_public, srv_secret = zmtp.curve_keypair()
    server, _ = _zmtp._curve_mech(1, z85_key(srv_public), z85_key(srv_secret), b"\0" * 32, "REP")
    _, _, _, initiate = handshake_pair()
    with pytest.raises(ValueError, match="code 0x10000001"):  # UNEXPECTED_COMMAND: INITIATE before HELLO
        _zmtp._curve_mech_handle(server, frame_body(initiate))


def test_initiate_replayed_to_another_handshake_refused():
    # the cookie key is per handshake: an INITIATE from another one fails
    client, server, hello, initiate = handshake_pair()
    _, server2, _, _ = handshake_pair()
    with pytest.raises(ValueError):
        _zmtp._curve_mech_handle(server2, frame_body(initiate))


# ---------------------------------------------------------------------------
# The CURVE options, as pyzmq's
# ---------------------------------------------------------------------------


def test_options_as_pyzmq(ctx, zctx):
    public, secret = zmtp.curve_keypair()
    for lib, c in ((zmtp, ctx), (zmq, zctx)):
        s = c.socket(lib.REQ)
        assert s.curve_server == 0
        s.curve_serverkey = public  # a client
        assert s.curve_server == 0
        s.setsockopt(lib.CURVE_SECRETKEY, _zmtp._z85_decode(secret))  # 32 raw bytes
        s.setsockopt(lib.CURVE_PUBLICKEY, public + b"\0")  # libzmq's C string
        s.curve_server = 1
        assert s.curve_server == 1
        s.curve_server = 0
        assert s.curve_server == 0
        s.curve_server = True  # ipykernel's way
        assert s.curve_server == 1
        s.curve_server = False
        assert s.curve_server == 0
        for opt in (lib.CURVE_PUBLICKEY, lib.CURVE_SECRETKEY, lib.CURVE_SERVERKEY):
            with pytest.raises(lib.ZMQError) as e:
                s.getsockopt(opt)
            assert e.value.errno == zmq.EINVAL
        with pytest.raises(AttributeError, match="curve_secretkey attribute is write-only"):
            s.curve_secretkey
        for bad in (b"x" * 39, b"x" * 41, b"~" * 40, b"\0" * 40, b"#" * 40):
            with pytest.raises(lib.ZMQError) as e:
                s.curve_serverkey = bad
            assert e.value.errno == zmq.EINVAL
        with pytest.raises(TypeError):
            s.curve_serverkey = public.decode()
        s.close()


def test_secret_never_in_errors(ctx):
    s = ctx.socket(zmtp.REQ)
    _, secret = zmtp.curve_keypair()
    bad = secret[:39] + b"~"
    with pytest.raises(zmtp.ZMQError) as e:
        s.curve_secretkey = bad
    assert secret[:20].decode() not in str(e.value) and secret[:20].decode() not in repr(s)
    s.curve_secretkey = secret
    assert secret[:20].decode() not in repr(s)
    s.close()


def test_options_without_libsodium_say_what_to_install():
    code = (
        "import zmtp\n"
        "s = zmtp.Context.instance().socket(zmtp.REQ)\n"
        "for name in ('curve_server', 'curve_publickey', 'curve_secretkey', 'curve_serverkey'):\n"
        "    try:\n"
        "        setattr(s, name, 1 if name == 'curve_server' else b'x' * 40)\n"
        "    except zmtp.ZMQError as e:\n"
        "        print(e.errno, e)\n"
        "s.close()\n"
    )
    r = run_python(code, ZMTP_LIBSODIUM="/nonexistent/libsodium.so")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 4, r.stdout
    for line in lines:
        assert line.startswith("%d " % zmq.EINVAL) and "apt-get install libsodium23" in line


# ---------------------------------------------------------------------------
# CURVE over the connection, against libzmq: both roles, both binders, tcp
# and ipc, both backends
# ---------------------------------------------------------------------------

MiB = 1 << 20
_BLOB = os.urandom(4 * MiB)


def endpoint(transport: str, tmp_path) -> str:
    return "tcp://127.0.0.1:*" if transport == "tcp" else "ipc://%s/curve.ipc" % tmp_path


def curve_pair(ctx, zctx, server_impl: str, binder: str, transport: str, tmp_path, server_type: str, client_type: str,
               server_key: bytes = b""):
    """A CURVE server and client, one zmtp and one pyzmq; the binder binds.
    ``server_key``: what the client believes the server's key is (default:
    the right one)."""
    sp, ss = zmq.curve_keypair()
    cp, cs = zmtp.curve_keypair()

    def make(impl, kind):
        if impl == "zmtp":
            sock = ctx.socket(getattr(zmtp, kind))
        else:
            sock = zctx.socket(getattr(zmq, kind))
            sock.linger = 0
        sock.rcvtimeo = sock.sndtimeo = 10000
        return sock

    client_impl = "pyzmq" if server_impl == "zmtp" else "zmtp"
    server = make(server_impl, server_type)
    server.curve_secretkey = ss
    server.curve_publickey = sp
    server.curve_server = 1
    client = make(client_impl, client_type)
    client.curve_serverkey = server_key or sp
    client.curve_publickey = cp
    client.curve_secretkey = cs
    first, second = (server, client) if binder == "server" else (client, server)
    first.bind(endpoint(transport, tmp_path))
    ep = first.last_endpoint
    second.connect(ep.decode() if isinstance(ep, bytes) else ep)
    return server, client


CASES = [pytest.param(impl, binder, transport, id="%s-server-%s-binds-%s" % (impl, binder, transport))
         for impl in ("zmtp", "pyzmq") for binder in ("server", "client") for transport in ("tcp", "ipc")]


@pytest.mark.parametrize("server_impl,binder,transport", CASES)
def test_req_rep_sizes_and_multipart(server_impl, binder, transport, backend, tmp_path, ctx, zctx):
    rep, req = curve_pair(ctx, zctx, server_impl, binder, transport, tmp_path, "REP", "REQ")
    for n in (0, 1, 255, 256, 65536, 4 * MiB):
        msg = [_BLOB[:n], b"", b"tail"]
        req.send_multipart(msg)
        assert rep.recv_multipart() == msg
        rep.send_multipart([b"re", _BLOB[:n]])
        assert req.recv_multipart() == [b"re", _BLOB[:n]]
    req.close()
    rep.close()


@pytest.mark.parametrize("server_impl,binder,transport", CASES)
def test_dealer_router(server_impl, binder, transport, backend, tmp_path, ctx, zctx):
    router, dealer = curve_pair(ctx, zctx, server_impl, binder, transport, tmp_path, "ROUTER", "DEALER")
    for i in range(50):
        dealer.send_multipart([b"m%d" % i, b"x" * i])
    for i in range(50):
        ident, *rest = router.recv_multipart()
        assert rest == [b"m%d" % i, b"x" * i]
        router.send_multipart([ident, b"r%d" % i])
    assert [dealer.recv() for _ in range(50)] == [b"r%d" % i for i in range(50)]
    dealer.close()
    router.close()


@pytest.mark.parametrize("server_impl", ["zmtp", "pyzmq"])
def test_pub_sub_subscriptions_sealed(server_impl, backend, tmp_path, ctx, zctx):
    # the subscription travels as a sealed COMMAND: if it did not arrive the
    # publisher would send nothing
    pub, sub = curve_pair(ctx, zctx, server_impl, "server", "tcp", tmp_path, "PUB", "SUB")
    sub.subscribe(b"a")
    deadline = time.monotonic() + 20
    got = None
    while got is None and time.monotonic() < deadline:
        pub.send_multipart([b"b-not-this", b"x"])
        pub.send_multipart([b"a-topic", b"y"])
        try:
            sub.rcvtimeo = 100
            got = sub.recv_multipart()
        except (zmq.Again, zmtp.Again):
            pass
    assert got == [b"a-topic", b"y"]
    sub.close()
    pub.close()


@pytest.mark.parametrize("server_impl", ["zmtp", "pyzmq"])
def test_heartbeats_over_curve(server_impl, backend, tmp_path, ctx, zctx):
    # PINGs travel sealed; a peer that could not open them would drop us
    rep, req = curve_pair(ctx, zctx, server_impl, "server", "tcp", tmp_path, "REP", "REQ")
    for sock in (rep, req):
        sock.heartbeat_ivl = 50
        sock.heartbeat_timeout = 2000
    req.send(b"a")
    assert rep.recv() == b"a"
    rep.send(b"b")
    assert req.recv() == b"b"
    # idle well past several heartbeats (the deadline, not the result, is timed)
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        try:
            rep.recv(zmq.NOBLOCK if server_impl == "pyzmq" else zmtp.NOBLOCK)
        except (zmq.Again, zmtp.Again):
            pass
        time.sleep(0.02)
    req.send(b"c")
    assert rep.recv() == b"c"
    req.close()
    rep.close()


@pytest.mark.parametrize("server_impl", ["zmtp", "pyzmq"])
def test_wrong_server_key_refused(server_impl, backend, tmp_path, ctx, zctx):
    wrong, _ = zmq.curve_keypair()
    rep, req = curve_pair(ctx, zctx, server_impl, "server", "tcp", tmp_path, "REP", "REQ", server_key=wrong)
    mon = rep.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL)
    req.send(b"never")
    ev = mon.recv_multipart()
    assert int.from_bytes(ev[0][:2], "little") == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    assert int.from_bytes(ev[0][2:6], "little") == 0x11000001  # ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC
    rep.rcvtimeo = 300
    with pytest.raises((zmq.Again, zmtp.Again)):
        rep.recv()
    rep.disable_monitor()
    mon.close()
    req.close()
    rep.close()


def test_sealed_message_with_too_many_frames_cut(backend, tmp_path, ctx, zctx):
    # the frames of a sealed message are counted as the decoder counts plain
    # ones (4096 at most): a bomb closes the connection, memory stays bounded
    from zmtp.codec import ErrorCode

    router, dealer = curve_pair(ctx, zctx, "zmtp", "server", "tcp", tmp_path, "ROUTER", "DEALER")
    dealer.send_multipart([b""] * 4097)
    router.rcvtimeo = 300
    with pytest.raises(zmtp.Again):
        router.recv_multipart()
    deadline = time.monotonic() + 20
    while router.stats()["protocol_errors"] == {} and time.monotonic() < deadline:
        with pytest.raises(zmtp.Again):
            router.recv_multipart()
    assert router.stats()["protocol_errors"] == {ErrorCode.TOO_MANY_FRAMES: 1}
    dealer.send_multipart([b"a"] * 4096)  # libzmq redials: a message at the limit passes
    router.rcvtimeo = 10000
    assert len(router.recv_multipart()) == 4097
    dealer.close()
    router.close()


def test_zmtp_to_zmtp(backend, tmp_path, ctx):
    sp, ss = zmtp.curve_keypair()
    rep = ctx.socket(zmtp.REP)
    rep.curve_secretkey, rep.curve_publickey, rep.curve_server = ss, sp, 1
    req = ctx.socket(zmtp.REQ)
    req.curve_serverkey = sp
    req.curve_publickey, req.curve_secretkey = zmtp.curve_keypair()
    for s in (rep, req):
        s.rcvtimeo = s.sndtimeo = 10000
    rep.bind("ipc://%s/zz.ipc" % tmp_path)
    req.connect("ipc://%s/zz.ipc" % tmp_path)
    for n in (0, 70000):
        req.send_multipart([b"q", _BLOB[:n]])
        assert rep.recv_multipart() == [b"q", _BLOB[:n]]
        rep.send(b"r")
        assert req.recv() == b"r"
    req.close()
    rep.close()


def test_messages_queued_before_and_across_reconnects(backend, ctx, zctx):
    # a zmtp client's messages queued before the first connection and while
    # the server is gone are sealed with the keys of the connection that
    # finally carries them
    import socket

    from helpers import DEADLINE_S, settle

    sp, ss = zmq.curve_keypair()
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()

    def server():
        s = zctx.socket(zmq.PULL)
        s.curve_secretkey, s.curve_publickey, s.curve_server = ss, sp, True
        deadline = time.monotonic() + DEADLINE_S
        while True:  # the last server's port may take a moment to be free
            try:
                s.bind("tcp://127.0.0.1:%d" % port)
                return s
            except zmq.ZMQError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def receive(pull):
        # the zmtp side moves only inside its calls: drive it while waiting
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            try:
                return pull.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                settle(push, ms=20)
        raise AssertionError("nothing arrived")

    push = ctx.socket(zmtp.PUSH)
    push.curve_serverkey = sp
    push.curve_publickey, push.curve_secretkey = zmtp.curve_keypair()
    push.sndtimeo = 10000
    push.reconnect_ivl = 20
    push.connect("tcp://127.0.0.1:%d" % port)
    push.send_multipart([b"before", b"1"])  # queued: nobody listens yet
    pull = server()
    assert receive(pull) == [b"before", b"1"]
    push.send(b"during")
    assert receive(pull) == [b"during"]
    pull.close()  # the server goes; the client redials
    settle(push, ms=100)
    push.send_multipart([b"across", b"2"])
    pull = server()
    assert receive(pull) == [b"across", b"2"]
    push.close()
    pull.close()


def zmtp_curve_server(ctx, kind=zmtp.REP):
    """A zmtp CURVE server bound on tcp: (socket, port, server public key)."""
    sp, ss = zmtp.curve_keypair()
    s = ctx.socket(kind)
    s.curve_secretkey, s.curve_publickey, s.curve_server = ss, sp, 1
    s.rcvtimeo = s.sndtimeo = 10000
    s.bind("tcp://127.0.0.1:*")
    return s, int(s.last_endpoint.rsplit(b":", 1)[1]), sp


def test_zmtp_server_takes_message_as_command_frame_and_refuses_replay(backend, ctx):
    import socket
    import threading

    from helpers import DEADLINE_S, settle

    rep, port, sp = zmtp_curve_server(ctx)
    mon = rep.get_monitor_socket(zmtp.EVENT_HANDSHAKE_FAILED_PROTOCOL)
    sock = socket.create_connection(("127.0.0.1", port))
    box = []
    t = threading.Thread(target=lambda: box.append(mech_client(sock, sp)))
    t.start()
    deadline = time.monotonic() + DEADLINE_S
    while t.is_alive() and time.monotonic() < deadline:
        settle(rep, ms=20)  # the handshake needs the zmtp side driven
    t.join()
    mech, wire, _ = box[0]
    empty = _zmtp._curve_mech_encode(mech, b"", 1)
    body = _zmtp._curve_mech_encode(mech, b"cmd-form", 0)
    # RFC 26's form: MESSAGE in a command frame (flag 0x04)
    as_command = bytes([4, len(frame_body(body))]) + frame_body(body)
    sock.sendall(empty + as_command)
    assert rep.recv_multipart() == [b"cmd-form"]
    rep.send(b"ok")
    sock.sendall(empty)  # a replayed MESSAGE (its nonce was used): the connection ends
    ev = None
    deadline = time.monotonic() + DEADLINE_S
    while ev is None and time.monotonic() < deadline:
        settle(rep, ms=20)
        try:
            ev = mon.recv_multipart(zmtp.NOBLOCK)
        except zmtp.Again:
            pass
    assert ev is not None and int.from_bytes(ev[0][2:6], "little") == 0x10000002  # INVALID_SEQUENCE
    sock.close()
    rep.disable_monitor()
    mon.close()
    rep.close()


def test_random_allocation_failures_never_corrupt(backend, ctx):
    # 1 allocation in 8 fails (seeded) while a CURVE DEALER and ROUTER
    # exchange multipart messages: calls raise out-of-memory or work, a
    # failed handshake or box closes and redials, and every message that
    # arrives is one that was sent, whole
    sp, ss = zmtp.curve_keypair()
    router = ctx.socket(zmtp.ROUTER)
    router.curve_secretkey, router.curve_publickey, router.curve_server = ss, sp, 1
    dealer = ctx.socket(zmtp.DEALER)
    dealer.routing_id = b"d"
    dealer.curve_serverkey = sp
    dealer.curve_publickey, dealer.curve_secretkey = zmtp.curve_keypair()
    for s in (router, dealer):
        s.rcvtimeo = 200
        s.sndtimeo = 5000
    router.bind("tcp://127.0.0.1:*")
    dealer.connect(router.last_endpoint)
    dealer.send(b"hello")
    router.rcvtimeo = 10000
    assert router.recv_multipart() == [b"d", b"hello"]
    router.rcvtimeo = 200
    sent = [[b"%d" % i] + [b"x" * (i * 37 % 5000)] * (1 + i % 4) for i in range(60)]
    assert round_trips_under_alloc_failures(dealer, router, sent) > 0
    # the pair recovers: a new handshake if one was lost
    deadline = time.monotonic() + 20
    while True:
        dealer.send(b"after")
        try:
            got = router.recv_multipart()
        except zmtp.Again:
            assert time.monotonic() < deadline, "no recovery"
            continue
        if got == [b"d", b"after"]:
            break
        assert got[0] == b"d" and got[1:] in sent
    dealer.close()
    router.close()


def test_inproc_ignores_curve_as_libzmq(ctx, zctx):
    # inproc has no handshake in libzmq: CURVE options change nothing there
    for lib, c in ((zmtp, ctx), (zmq, zctx)):
        sp, ss = lib.curve_keypair()
        a = c.socket(lib.PAIR)
        a.curve_secretkey, a.curve_server = ss, 1
        b = c.socket(lib.PAIR)
        b.curve_serverkey = sp
        b.curve_publickey, b.curve_secretkey = lib.curve_keypair()
        a.rcvtimeo = 10000
        a.bind("inproc://curve-ignored")
        b.connect("inproc://curve-ignored")
        b.send(b"hi")
        assert a.recv() == b"hi", lib.__name__
        a.close()
        b.close()


JUPYTER_CLIENT = r"""
import json, sys
from jupyter_client.manager import KernelManager
km = KernelManager(kernel_name="zk", transport="tcp", transport_encryption="required")
km.start_kernel()
kc = km.client()
kc.start_channels()
try:
    kc.wait_for_ready(timeout=120)
    out = []
    r = kc.execute_interactive("import sys; print(sys.modules['zmq'].__name__, 6 * 7)", timeout=120,
                               output_hook=lambda m: out.append(m["content"].get("text")))
    keys = json.load(open(km.connection_file))
    print("RESULT", json.dumps({"client": sys.modules["zmq"].__name__, "status": r["content"]["status"],
                                "out": [o for o in out if o], "keyed": "curve_secretkey" in keys}))
finally:
    kc.stop_channels()
    km.shutdown_kernel(now=True)
"""


def test_jupyter_kernel_with_transport_encryption(tmp_path):
    # jupyter_client 8.10 provisions CurveZMQ keys when zmq.has("curve"):
    # kernel and client both on zmtp, every channel CURVE
    jupyter_client = pytest.importorskip("jupyter_client")
    pytest.importorskip("ipykernel")
    import json

    from jupyter_client.manager import KernelManager

    if "transport_encryption" not in KernelManager.class_trait_names():
        # 8.10 added it; pip gives Python 3.9 jupyter_client 8.6, without it
        pytest.skip(f"jupyter_client {jupyter_client.__version__} has no transport_encryption (8.10+)")

    spec = tmp_path / "share" / "kernels" / "zk"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "zmtp.compat", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "zk", "language": "python", "metadata": {"supported_encryption": ["curve"]}}))
    (tmp_path / "client.py").write_text(JUPYTER_CLIENT)
    env = dict(os.environ, PYTHONPATH=ROOT, JUPYTER_PATH=str(tmp_path / "share"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), JUPYTER_DATA_DIR=str(tmp_path / "share"),
               JUPYTER_CONFIG_DIR=str(tmp_path / "config"), IPYTHONDIR=str(tmp_path / "ipython"),
               JUPYTER_PLATFORM_DIRS="1", PYDEVD_DISABLE_FILE_VALIDATION="1")
    proc = subprocess.run([sys.executable, "-m", "zmtp.compat", str(tmp_path / "client.py")], env=env,
                          cwd=str(tmp_path), capture_output=True, text=True, timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert json.loads(lines[-1][len("RESULT "):]) == {"client": "zmtp", "status": "ok", "out": ["zmtp 42\n"],
                                                       "keyed": True}


def fresh_handshake():
    """A client and server mid-handshake: (client, server, hello, welcome,
    initiate, ready) with each command's body, nothing yet fed past HELLO."""
    srv_public, srv_secret = zmtp.curve_keypair()
    cli_public, cli_secret = zmtp.curve_keypair()
    server, _ = _zmtp._curve_mech(1, z85_key(srv_public), z85_key(srv_secret), b"\0" * 32, "REP")
    client, hello = _zmtp._curve_mech(0, z85_key(cli_public), z85_key(cli_secret), z85_key(srv_public), "REQ")
    return client, server, frame_body(hello[64:])


@pytest.mark.parametrize("change", ["cut", "grow"])
@pytest.mark.parametrize("command", ["WELCOME", "INITIATE", "READY"])
def test_truncated_or_oversized_commands_refused(command, change):
    # every handshake command with a byte less or more fails, none crashes
    client, server, hello = fresh_handshake()
    welcome = frame_body(_zmtp._curve_mech_handle(server, hello)[0])
    if command == "WELCOME":
        target, body = client, welcome
    else:
        initiate = frame_body(_zmtp._curve_mech_handle(client, welcome)[0])
        if command == "INITIATE":
            target, body = server, initiate
        else:
            ready = frame_body(_zmtp._curve_mech_handle(server, initiate)[0])
            target, body = client, ready
    body = body[:-1] if change == "cut" else body + b"\0"
    with pytest.raises(ValueError, match="mechanism failed"):
        _zmtp._curve_mech_handle(target, body)


def test_without_a_zap_handler_every_client_is_admitted(backend, ctx, zctx):
    """A CURVE server with no ZAP handler admits every client with a valid
    vouch (encryption without authentication), with ZAP_ENFORCE_DOMAIN 0
    or 1: what libzmq 4.3.5 does (its server is checked beside ours)."""
    srv_public, srv_secret = zmtp.curve_keypair()
    for enforce in (0, 1):
        for impl_ctx, mod in ((ctx, zmtp), (zctx, zmq)):  # zmtp's server, then libzmq's
            rep = impl_ctx.socket(mod.REP)
            rep.linger = 0
            rep.curve_secretkey = srv_secret
            rep.curve_server = True
            rep.setsockopt(mod.ZAP_ENFORCE_DOMAIN, enforce)
            port = rep.bind_to_random_port("tcp://127.0.0.1")
            req = zctx.socket(zmq.REQ)
            req.linger = 0
            req.curve_serverkey = srv_public
            req.curve_publickey, req.curve_secretkey = zmq.curve_keypair()
            req.connect(f"tcp://127.0.0.1:{port}")
            req.send(b"ping")
            rep.rcvtimeo = 10000
            assert rep.recv() == b"ping", (mod.__name__, enforce)
            req.close()
            rep.close()
