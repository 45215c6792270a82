"""pyzmq's blocking API surface (issue 18, item 6), each behaviour beside
pyzmq 27.3 doing the same: every constant, the socket and context
attributes, bind()/connect() context managers, Frame.buffer, the ipc path
limit, and what term() / a ``with Context()`` block say about sockets left
open."""

from __future__ import annotations

import enum
import errno
import time
from typing import Any, Tuple

import pytest
import zmq
import zmq.constants

import zmtp
import zmtp.constants
from helpers import DEADLINE_S, TIMEOUT_MS, psock, wait_for, zsock

LIBS = [pytest.param(zmtp, id="zmtp"), pytest.param(zmq, id="pyzmq")]

# ------------------------------------------------------------ constants

#: names pyzmq's zmq.constants.__all__ lists that are not constants
_NOT_CONSTANTS = {"Enum", "IntEnum", "IntFlag"}


def test_every_pyzmq_constant_exists_with_its_number() -> None:
    """Every module-level constant of pyzmq's zmq.constants is a zmtp
    name with the same number and the same enum class (unimplemented ones
    too: using them raises, tests/test_unimplemented_options.py)."""
    missing, wrong = [], []
    probed = zmtp.constants.PROBED_OPTIONS & set(zmtp.constants.UNIMPLEMENTED_SOCKET_OPTIONS)
    for name in sorted(set(zmq.constants.__all__) - _NOT_CONSTANTS - probed):
        theirs = getattr(zmq.constants, name)
        if isinstance(theirs, type):
            continue
        ours = getattr(zmtp, name, None)
        if ours is None:
            missing.append(name)
        elif int(ours) != int(theirs) or type(ours).__name__ != type(theirs).__name__:
            wrong.append((name, ours, theirs))
    assert not missing and not wrong, (missing, wrong)


def test_every_pyzmq_enum_member_exists() -> None:
    """Each enum of pyzmq's zmq.constants has its zmtp twin with all its
    members (aliases included) and numbers; SocketOption's _opt_type too."""
    for name in sorted(set(zmq.constants.__all__) - _NOT_CONSTANTS):
        theirs = getattr(zmq.constants, name)
        if not (isinstance(theirs, type) and issubclass(theirs, enum.Enum)):
            continue
        ours = getattr(zmtp, name)
        lost = {m: int(v) for m, v in theirs.__members__.items() if m not in ours.__members__}
        differ = {m for m, v in theirs.__members__.items() if m in ours.__members__ and int(ours[m]) != int(v)}
        assert not lost and not differ, (name, lost, differ)
    for m, opt in zmq.SocketOption.__members__.items():
        assert zmtp.SocketOption[m]._opt_type.name == opt._opt_type.name, m
    assert zmtp.IDENTITY is zmtp.SocketOption.ROUTING_ID
    assert zmtp.RECONNECT_STOP_AFTER_DISCONNECT is zmtp.constants.ReconnectStop.AFTER_DISCONNECT
    assert repr(zmtp.Event.ALL_V1) == repr(zmq.Event.ALL_V1).replace("zmq", "zmtp")


def test_every_public_pyzmq_constant_name_is_in_zmtp() -> None:
    """``dir(zmq)``'s upper-case names (constants) are all zmtp's, and in
    ``zmtp.__all__``; ``zmtp.device`` too."""
    probed = zmtp.constants.PROBED_OPTIONS & set(zmtp.constants.UNIMPLEMENTED_SOCKET_OPTIONS)
    names = [n for n in dir(zmq) if n.isupper() and not n.startswith("_") and n not in probed]
    assert [n for n in names if not hasattr(zmtp, n)] == []
    assert [n for n in names if n not in zmtp.__all__] == []
    assert zmtp.DRAFT_API is False and zmtp.PYZMQ_DRAFT_API is False and zmtp.COPY_THRESHOLD == zmq.COPY_THRESHOLD
    assert "device" in zmtp.__all__ and "device" in zmq.__all__


def test_draft_socket_type_refused() -> None:
    """A draft socket type exists as a name (pyzmq's libzmq makes one);
    zmtp does not implement them: EINVAL."""
    with zmtp.Context() as ctx:
        for kind in (zmtp.SERVER, zmtp.CLIENT, zmtp.RADIO, zmtp.DISH, zmtp.CHANNEL):
            with pytest.raises(zmtp.ZMQError) as info:
                ctx.socket(kind)
            assert info.value.errno == errno.EINVAL and kind.name in str(info.value)


# ------------------------------------------------------------ attributes


@pytest.fixture
def lib_ctx(request: Any) -> Any:
    lib = request.param
    c = lib.Context()
    yield lib, c
    c.destroy(linger=0)


LIB_CTX = pytest.mark.parametrize("lib_ctx", LIBS, indirect=True)


@LIB_CTX
def test_socket_attributes_like_pyzmq(lib_ctx: Any) -> None:
    lib, c = lib_ctx
    s = c.socket(lib.SUB)
    assert s.fd == s.getsockopt(lib.FD) == s.FD
    s.LINGER = 7  # upper-case option names, as attributes
    assert s.linger == 7 == s.LINGER
    for name in ("IDENTITY", "AFFINITY", "FD", "send"):
        assert name in dir(s), name
    with pytest.raises(AttributeError):
        s.apple = "foo"
    with pytest.raises(AttributeError):
        s.apple
    s.setsockopt_string(lib.IDENTITY, "tést", "utf16")
    assert s.getsockopt_unicode(lib.IDENTITY, "utf16") == "tést"
    assert s.getsockopt_string(lib.IDENTITY, "utf16") == "tést"
    s.setsockopt_unicode(lib.SUBSCRIBE, "x")
    with pytest.raises(TypeError):
        s.setsockopt(lib.SUBSCRIBE, "x")
    with pytest.raises(TypeError):
        s.getsockopt_string(lib.LINGER)
    s.close()


@LIB_CTX
def test_context_attributes_like_pyzmq(lib_ctx: Any) -> None:
    lib, c = lib_ctx
    assert "IO_THREADS" in dir(c) and "socket" in dir(c)
    c.IO_THREADS = 2
    assert c.io_threads == 2 == c.IO_THREADS == c.get(lib.IO_THREADS)
    with pytest.raises(lib.ZMQError) as info:
        lib.Context(io_threads=-1)
    assert info.value.errno == errno.EINVAL

    class MySocket(lib.Socket):
        tag = None

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.tag = kwargs.pop("tag", None)
            super().__init__(*args, **kwargs)

    class MyContext(lib.Context):
        _socket_class = MySocket

    with MyContext() as mine:
        with mine.socket(lib.PUSH, tag="t") as s:  # kwargs reach the class
            assert isinstance(s, MySocket) and s.tag == "t"
    with c.socket(lib.PUSH, socket_class=MySocket) as s:
        assert isinstance(s, MySocket)


def test_probed_options_absent_until_implemented() -> None:
    """``hasattr(zmq, "ROUTER_HANDOVER")`` (ipykernel's probe) is False
    while zmtp does not implement the option; its enum member exists."""
    for name in zmtp.constants.PROBED_OPTIONS:
        implemented = name not in zmtp.constants.UNIMPLEMENTED_SOCKET_OPTIONS
        assert hasattr(zmtp, name) is implemented and name in zmtp.SocketOption.__members__


@pytest.mark.parametrize("lib", LIBS)
def test_reprs_like_pyzmq(lib: Any) -> None:
    """pyzmq's repr shapes, with the library's own name."""
    name = lib.__name__
    with lib.Context() as c:
        assert f"{name}.Context()" in repr(c) and "closed" not in repr(c)
        with c.socket(lib.PUSH) as push:
            assert f"{name}.Context(1 socket)" in repr(c)
            assert f"{name}.Socket({name}.PUSH)" in repr(push) and "closed" not in repr(push)
            with c.socket(lib.PULL):
                assert f"{name}.Context(2 sockets)" in repr(c)
        assert f"{name}.Socket({name}.PUSH)" in repr(push) and repr(push).endswith("closed>")
    assert f"{name}.Context()" in repr(c) and "closed" in repr(c)
    for data in (b"", b"123456789", b"x" * 20, b"x" * 2000, b"x" * (2**20 + 5)):
        assert repr(zmtp.Frame(data)).replace("zmtp.", "zmq.") == repr(zmq.Frame(data))


@LIB_CTX
def test_frame_buffer_like_pyzmq(lib_ctx: Any) -> None:
    lib, c = lib_ctx
    f = lib.Frame(bytearray(b"abc"))
    assert f.buffer is f.buffer
    assert not f.buffer.readonly  # writable: the frame's own memory
    f.buffer[0] = ord("z")
    assert f.bytes == b"zbc"


@LIB_CTX
def test_ipc_path_limit_named(lib_ctx: Any) -> None:
    lib, c = lib_ctx
    s = c.socket(lib.PUB)
    with pytest.raises(lib.ZMQError) as info:
        s.bind("ipc://" + "a" * (lib.IPC_PATH_MAX_LEN + 1))
    assert str(lib.IPC_PATH_MAX_LEN) in info.value.strerror
    s.close()


# ------------------------------------------------------------ with a pyzmq peer


def _endpoint(transport: str, tmp_path: Any, name: str) -> str:
    return "tcp://127.0.0.1:*" if transport == "tcp" else f"ipc://{tmp_path}/{name}.ipc"


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
@pytest.mark.parametrize("zmtp_binds", [True, False], ids=["zmtp_binds", "pyzmq_binds"])
def test_subscribe_attribute(backend: str, ctx: Any, zctx: Any, tmp_path: Any, transport: str, zmtp_binds: bool) -> None:
    """``sub.subscribe = "c"`` subscribes (as pyzmq's): a pyzmq PUB's "c..."
    messages arrive, others do not."""
    sub, pub = zsock(ctx, zmtp.SUB), psock(zctx, zmq.PUB)
    binder, other = (sub, pub) if zmtp_binds else (pub, sub)
    binder.bind(_endpoint(transport, tmp_path, "sub"))
    other.connect(binder.last_endpoint.decode())
    sub.subscribe = "c"
    assert callable(sub.subscribe)  # the method stays

    def canary() -> bool:
        pub.send(b"canary")
        return sub.poll(50) != 0

    wait_for(canary, DEADLINE_S, "the subscription reaching pyzmq's PUB")
    while sub.poll(100):
        sub.recv()
    pub.send(b"no")
    pub.send(b"cat")
    assert sub.recv() == b"cat"


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_connect_context_manager_disconnects(backend: str, ctx: Any, zctx: Any, tmp_path: Any, transport: str) -> None:
    """``with pull.connect(url):`` disconnects at exit: the pyzmq PUSH has
    no peer left (its send raises Again), as with pyzmq's own PULL."""
    for lib, c in ((zmtp, ctx), (zmq, zctx)):
        push = psock(zctx, zmq.PUSH)
        push.bind(_endpoint(transport, tmp_path, f"cm-{lib.__name__}"))
        url = push.last_endpoint.decode()
        pull = c.socket(lib.PULL)
        pull.rcvtimeo = TIMEOUT_MS
        cm = pull.connect(url)
        assert f"connect={url!r}" in repr(cm)
        with cm as entered:
            assert entered is pull
            push.send(b"hi")
            assert pull.recv() == b"hi"

        def gone() -> bool:
            try:
                push.send(b"x", zmq.DONTWAIT)
            except zmq.Again:
                return True
            return False

        if lib is zmtp or transport == "ipc":  # libzmq's tcp disconnect keeps the pipe a while
            wait_for(gone, DEADLINE_S, f"the PUSH seeing {lib.__name__}'s PULL disconnect")
        pull.close(linger=0)
        push.close(linger=0)


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_bind_context_manager_unbinds(backend: str, ctx: Any, zctx: Any, tmp_path: Any, transport: str) -> None:
    """``with push.bind(url):`` unbinds at exit (a wildcard port resolved):
    the endpoint is free to bind again, zmtp as pyzmq."""
    for lib, c in ((zmtp, ctx), (zmq, zctx)):
        push = c.socket(lib.PUSH)
        push.linger = 0
        addr = _endpoint(transport, tmp_path, f"bcm-{lib.__name__}")
        cm = push.bind(addr)
        url = push.last_endpoint.decode()
        assert f"bind={url!r}" in repr(cm)  # the endpoint bound, as pyzmq's
        with cm:
            pull = psock(zctx, zmq.PULL)
            pull.connect(url)
            push.send(b"hi")
            assert pull.recv() == b"hi"
            pull.close()
        again = c.socket(lib.PUSH)
        again.linger = 0
        deadline = time.monotonic() + DEADLINE_S
        while True:  # the kernel frees a tcp port at once; allow a slow machine
            try:
                again.bind(url)
                break
            except lib.ZMQError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        again.close()
        push.close()


# ------------------------------------------------------------ sockets left open


def test_with_context_left_with_sockets_warns_like_pyzmq() -> None:
    for lib in (zmtp, zmq):
        with pytest.warns(ResourceWarning):
            with lib.Context() as c:
                s = c.socket(lib.PUSH)
        assert s.closed and c.closed, lib.__name__


def test_term_with_sockets_open_warns_and_returns(backend: str) -> None:
    """zmtp's deliberate difference: term() closes what is left open (with
    its LINGER) instead of waiting, and warns (pyzmq's would block until
    the sockets are closed); the socket then raises ContextTerminated until
    closed, as libzmq's."""
    c = zmtp.Context()
    s = c.socket(zmtp.PUSH)
    with pytest.warns(ResourceWarning, match="unclosed socket"):
        c.term()
    assert c.closed and not s.closed
    with pytest.raises(zmtp.ContextTerminated):
        s.send(b"x")
    s.close()
    with zmtp.Context() as clean:  # nothing left open: no warning
        clean.socket(zmtp.PUSH).close()


@pytest.mark.parametrize("kind", ["PAIR", "PUB", "SUB", "REQ", "REP", "DEALER", "ROUTER", "PULL", "PUSH",
                                  "XPUB", "XSUB", "STREAM"])
def test_thread_safe_reads_as_pyzmq(kind):
    """THREAD_SAFE is read-only and 0 for every standard socket type, as
    libzmq's (pyzmq beside); setting it is EINVAL in both."""
    for lib in (zmtp, zmq):
        c = lib.Context()
        try:
            s = c.socket(getattr(lib, kind))
            assert s.getsockopt(lib.THREAD_SAFE) == 0
            with pytest.raises(lib.ZMQError) as info:
                s.setsockopt(lib.THREAD_SAFE, 1)
            assert info.value.errno == errno.EINVAL
            s.close()
        finally:
            c.term()
