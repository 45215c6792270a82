"""zmtp.log.handlers.PUBHandler beside pyzmq's (issue 18, item 2): the
same records give the same frames at a pyzmq SUB, over tcp and ipc, for
pyzmq's test_log cases (root topic and a blank one, per-level and global
formatters, the formatters dict, unicode and "sub::msg" subtopics, a
message object, the interface / socket / context arguments).  More in
tests/test_jupyter_names.py (zmtp binding and connecting, TopicLogger)."""

from __future__ import annotations

import itertools
import logging
from typing import Any, Callable, List

import pytest
import zmq
import zmq.log.handlers

import zmtp
import zmtp.log.handlers
from helpers import DEADLINE_S, psock, wait_for

_names = itertools.count()


class _Msg:
    """A message object (pyzmq's test_custom_message_type)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


def _publish(lib: Any, ctx: Any, zctx: Any, endpoint: str, setup: Callable[[Any], None],
             emit: Callable[[logging.Logger], None], count: int) -> List[List[bytes]]:
    """Bind lib's PUBHandler at ``endpoint`` (the interface-string form,
    with ``ctx``), configure it with ``setup``, join a pyzmq SUB (every
    topic), then ``emit`` records until the first arrives; return the
    ``count`` messages the SUB got from the last emit."""
    handler = lib.log.handlers.PUBHandler(endpoint, ctx)
    assert handler.ctx is ctx and handler.socket.context is ctx
    sub = psock(zctx, zmq.SUB)
    sub.subscribe(b"")
    sub.connect(handler.socket.last_endpoint.decode())
    handler.setLevel(logging.DEBUG)
    setup(handler)
    log = logging.getLogger(f"zmtp-log-handler-{next(_names)}")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    log.addHandler(handler)
    try:
        def arrived() -> bool:
            log.critical("canary")
            return sub.poll(50) != 0

        wait_for(arrived, DEADLINE_S, "the SUB joining the handler's PUB")
        while sub.poll(200):
            sub.recv_multipart()
        emit(log)
        return [sub.recv_multipart() for _ in range(count)]
    finally:
        log.removeHandler(handler)
        handler.socket.close(linger=0)


def _root(topic: Any) -> Callable[[Any], None]:
    def setup(h: Any) -> None:
        h.root_topic = topic
    return setup


def _formatter_dict(h: Any) -> None:
    h.formatters[logging.INFO] = logging.Formatter("%(message)s UNITTEST\n")


def _global_formatter(h: Any) -> None:
    h.setFormatter(logging.Formatter("UNITTEST %(message)s"))


def _debug_formatter(h: Any) -> None:
    h.setFormatter(logging.Formatter("UNITTEST DEBUG %(message)s"), logging.DEBUG)


def _info_debug(log: logging.Logger) -> None:
    log.info("info message")
    log.debug("debug message")


CASES = {
    "root_topic": (_root("zmq"), lambda log: log.info("message"), 1),
    "root_topic_bytes": (_root(b"twoonly"), lambda log: log.info("ignored"), 1),
    "blank_root_topic": (_root(""), _info_debug, 2),
    "unicode_and_subtopic": (_root("zmq"), lambda log: [log.info(m) for m in ("hello", "héllo", "tøpic::héllo")], 3),
    "formatters_dict": (_root("zmq"), lambda log: log.info("info message"), 1),
    "global_formatter": (_global_formatter, _info_debug, 2),
    "debug_formatter": (_debug_formatter, _info_debug, 2),
    "message_object": (_root("zmq"), lambda log: log.info(_Msg("hello")), 1),
    "warning_and_error_formats": (_root(""), lambda log: (log.warning("w %d", 1), log.error("e")), 2),
}
CASES["formatters_dict"] = (lambda h: (_root("zmq")(h), _formatter_dict(h)), CASES["formatters_dict"][1], 1)


def _strip_lines(msgs: List[List[bytes]]) -> List[List[bytes]]:
    """Line numbers in DEBUG/WARNING/ERROR formats differ between the two
    emits (each lib's call site): compare the rest."""
    out = []
    for topic, text in msgs:
        if b".py:" in text:
            head, _, tail = text.partition(b".py:")
            text = head + b".py:N" + tail[tail.find(b" "):]
        out.append([topic, text])
    return out


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_pubhandler_frames_like_pyzmq(case: str, transport: str, backend: str, ctx: Any, zctx: Any, tmp_path: Any) -> None:
    setup, emit, count = CASES[case]
    got = {}
    for lib, c in (("zmtp", ctx), ("pyzmq", zctx)):
        endpoint = "tcp://127.0.0.1:*" if transport == "tcp" else f"ipc://{tmp_path}/log-{lib}.ipc"
        got[lib] = _publish(zmtp if lib == "zmtp" else zmq, c, zctx, endpoint, setup, emit, count)
    assert _strip_lines(got["zmtp"]) == _strip_lines(got["pyzmq"])
    if case == "root_topic":
        assert got["zmtp"] == [[b"zmq.INFO", b"message\n"]]
    if case == "debug_formatter":
        assert got["zmtp"] == [[b"INFO", b"info message\n"], [b"DEBUG", b"UNITTEST DEBUG debug message"]]


def test_interface_without_context_makes_one(zctx: Any) -> None:
    """PUBHandler(interface) with no context makes its own, as pyzmq's."""
    for lib in (zmtp, zmq):
        h = lib.log.handlers.PUBHandler("tcp://127.0.0.1:*")
        try:
            assert isinstance(h.ctx, lib.Context) and h.socket.context is h.ctx
            assert h.socket.type == lib.PUB
        finally:
            h.socket.close(linger=0)
            h.ctx.term()
