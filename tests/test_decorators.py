"""zmtp.decorators (issue 18, item 2): ``context`` and ``socket`` beside
pyzmq's ``zmq.decorators`` doing the same, and a decorated zmtp socket
talking to a pyzmq peer over tcp and ipc."""

from __future__ import annotations

import importlib
import threading
from typing import Any, Dict

import pytest
import zmq

import zmtp
from helpers import TIMEOUT_MS, psock

LIBS = [pytest.param(zmtp, id="zmtp"), pytest.param(zmq, id="pyzmq")]


@pytest.fixture
def dec(request: Any) -> Any:
    """The library under test and its decorators module."""
    lib = request.param
    yield lib, importlib.import_module(lib.__name__ + ".decorators")
    lib.Context.instance().term()  # instance() sockets are closed by then


pytestmark = pytest.mark.parametrize("dec", LIBS, indirect=True)


def test_context_passed_last_or_by_name(dec: Any) -> None:
    lib, d = dec
    seen: Dict[str, Any] = {}

    @d.context()
    def last(foo: int, bar: bool, ctx: Any, baz: Any = None) -> str:
        seen["last"] = ctx
        assert (foo, bar, baz) == (42, True, "mock")
        return "ret"

    assert last(42, True, baz="mock") == "ret"  # the function's result comes back

    @d.context("myctx")
    def positional_name(myctx: Any) -> None:
        seen["positional"] = myctx

    @d.context(name="kwctx")
    def keyword_name(kwctx: Any = None) -> None:
        seen["keyword"] = kwctx

    positional_name()
    keyword_name()
    for key in ("last", "positional", "keyword"):
        assert isinstance(seen[key], lib.Context), key
        assert seen[key].closed, key  # terminated when the function returned
    assert last.__name__ == "last"  # functools.wraps


def test_context_factory_arguments(dec: Any) -> None:
    lib, d = dec

    @d.context("ctx", 3)
    def positional(ctx: Any) -> int:
        return ctx.get(lib.IO_THREADS)

    @d.context(name="ctx", io_threads=2)
    def keyword(ctx: Any) -> int:
        return ctx.get(lib.IO_THREADS)

    assert positional() == 3 and keyword() == 2


def test_context_name_errors(dec: Any) -> None:
    lib, d = dec

    @d.context(name="ctx")
    def wrong_name(other_name: Any) -> None:
        pass

    @d.context(name="ctx")
    def twice(ctx: Any) -> None:
        pass

    with pytest.raises(TypeError):
        wrong_name()
    with pytest.raises(TypeError):
        twice(ctx="mock")


def test_context_per_call_and_thread(dec: Any) -> None:
    lib, d = dec
    got: Dict[str, Any] = {}

    @d.context()
    def f(key: str, ctx: Any) -> None:
        got[key] = ctx

    threads = [threading.Thread(target=f, args=(k,)) for k in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert got["a"] is not got["b"]


def test_socket_context_choice(dec: Any) -> None:
    """The socket's context: the ``context`` keyword, else the first
    Context argument, else Context.instance(); ``context_name`` renames the
    keyword; the socket is closed after the call."""
    lib, d = dec
    seen: Dict[str, Any] = {}

    @d.socket(lib.PUSH)
    def default(push: Any) -> None:
        seen["default"] = push

    @d.context()
    @d.socket(lib.PUSH)
    def from_arg(ctx: Any, push: Any) -> None:
        seen["arg"] = (ctx, push)

    @d.socket("push", lib.PUSH, context_name="c")
    def from_named(c: Any = None, push: Any = None) -> None:
        seen["named"] = (c, push)

    @d.socket(name="pull", socket_type=lib.PULL)
    def from_kw(context: Any = None, pull: Any = None) -> None:
        seen["kw"] = (context, pull)

    default()
    assert seen["default"].context is lib.Context.instance() and seen["default"].closed
    from_arg()
    ctx, push = seen["arg"]
    assert push.context is ctx and push.closed and ctx.closed
    with lib.Context() as c:
        from_named(c=c)
        assert seen["named"][1].context is c and seen["named"][1].type == lib.PUSH
        from_kw(context=c)
        assert seen["kw"][1].context is c and seen["kw"][1].type == lib.PULL
        assert seen["named"][1].closed and seen["kw"][1].closed


def test_socket_arguments_and_multi_assign(dec: Any) -> None:
    lib, d = dec

    @d.socket("s", socket_type=lib.PULL)
    def opts(s: Any) -> int:
        return s.type

    @d.socket("s", lib.PUSH)
    def twice(s: Any) -> None:
        pass

    assert opts() == lib.PULL
    with pytest.raises(TypeError):
        twice(s="mock")


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_decorated_sockets_talk_to_the_other_library(dec: Any, zctx: Any, tmp_path: Any, transport: str) -> None:
    """A decorated REQ (zmtp or pyzmq) asks a pyzmq REP over ``transport``."""
    lib, d = dec
    rep = psock(zctx, zmq.REP)
    endpoint = "tcp://127.0.0.1:*" if transport == "tcp" else f"ipc://{tmp_path}/dec.ipc"
    rep.bind(endpoint)
    endpoint = rep.last_endpoint.decode()

    def serve() -> None:  # ends by itself, so a failing test never closes rep under it
        if rep.poll(2 * TIMEOUT_MS):
            rep.send(rep.recv() + b" ok")

    t = threading.Thread(target=serve)
    t.start()

    @d.context()
    @d.socket(lib.REQ)
    def ask(ctx: Any, req: Any) -> bytes:
        req.rcvtimeo = req.sndtimeo = TIMEOUT_MS
        req.linger = 0
        req.connect(endpoint)
        req.send(b"hello")
        return req.recv()

    try:
        assert ask() == b"hello ok"
    finally:
        t.join(30)
