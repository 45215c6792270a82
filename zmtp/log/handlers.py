"""Logging over a PUB socket, as pyzmq's ``zmq.log.handlers``.

:class:`PUBHandler` publishes each record as a two-frame message: the topic
(``[root_topic.]LEVELNAME[.subtopic]``, UTF-8) and the formatted text.  A
record whose message reads ``"sub.topic::text"`` is published under that
subtopic with ``text`` as its message.  :class:`TopicLogger` is a Logger
whose methods take ``(topic, msg, *args)`` and write that form.  ipykernel's
``EnginePUBHandler`` subclasses PUBHandler.

Layering: imports ``zmtp.socket``, ``zmtp.context`` and ``zmtp.constants``;
nothing in ``zmtp`` imports it.
"""

from __future__ import annotations

import logging
from copy import copy
from typing import Any, Dict, Optional, Union

from zmtp.constants import PUB
from zmtp.context import Context
from zmtp.socket import Socket

__all__ = ["PUBHandler", "TopicLogger", "TOPIC_DELIM"]

#: What separates a subtopic from the message in a record's text.
TOPIC_DELIM = "::"

_DETAILED = "%(levelname)s %(filename)s:%(lineno)d - %(message)s\n"


class PUBHandler(logging.Handler):
    """A logging handler that publishes records on a PUB socket.

    ``interface_or_socket``: a zmtp Socket (used as is; its context is
    ``ctx``) or an address, bound by a new PUB socket of ``context`` (a new
    Context when None).  Each level has its own formatter (``formatters``,
    pyzmq's defaults); :meth:`setFormatter` with no level sets them all.
    """

    formatters: Dict[int, Optional[logging.Formatter]]
    ctx: Any
    socket: Any

    def __init__(self, interface_or_socket: Union[str, Socket], context: Optional[Context] = None, root_topic: str = "") -> None:
        logging.Handler.__init__(self)
        self.root_topic = root_topic
        self.formatters = {
            logging.DEBUG: logging.Formatter(_DETAILED),
            logging.INFO: logging.Formatter("%(message)s\n"),
            logging.WARN: logging.Formatter(_DETAILED),
            logging.ERROR: logging.Formatter("%(levelname)s %(filename)s:%(lineno)d - %(message)s - %(exc_info)s\n"),
            logging.CRITICAL: logging.Formatter(_DETAILED),
        }
        if isinstance(interface_or_socket, Socket):
            self.socket = interface_or_socket
            self.ctx = self.socket.context
        else:
            self.ctx = context or Context()
            self.socket = self.ctx.socket(PUB)
            self.socket.bind(interface_or_socket)

    @property
    def root_topic(self) -> str:
        """Prepended (with a dot) to every topic; '' for none."""
        return self._root_topic

    @root_topic.setter
    def root_topic(self, value: Union[str, bytes]) -> None:
        self.setRootTopic(value)

    def setRootTopic(self, root_topic: Union[str, bytes]) -> None:
        """Set the root topic (bytes are decoded as UTF-8).  Subscribers must
        subscribe to a prefix of it (or to b"") to receive anything."""
        if isinstance(root_topic, bytes):
            root_topic = root_topic.decode("utf8")
        self._root_topic = root_topic

    def setFormatter(self, fmt: Optional[logging.Formatter], level: int = logging.NOTSET) -> None:
        """The formatter of ``level``, or of every level when NOTSET."""
        if level == logging.NOTSET:
            for known in self.formatters:
                self.formatters[known] = fmt
        else:
            self.formatters[level] = fmt

    def format(self, record: logging.LogRecord) -> str:
        """Format a record with its level's formatter."""
        fmt = self.formatters[record.levelno]
        assert fmt is not None
        return fmt.format(record)

    def emit(self, record: logging.LogRecord) -> None:
        """Publish ``[topic, text]`` on the socket."""
        try:
            topic, msg = str(record.msg).split(TOPIC_DELIM, 1)
        except ValueError:
            topic = ""
        else:
            record = copy(record)  # the caller's record stays as it was
            record.msg = msg
        try:
            text = self.format(record).encode("utf8")
        except Exception:
            self.handleError(record)
            return
        parts = [self.root_topic] if self.root_topic else []
        parts.append(record.levelname)
        if topic:
            parts.append(topic)
        self.socket.send_multipart([".".join(parts).encode("utf8", "replace"), text])


class TopicLogger(logging.Logger):
    """A Logger whose methods take a topic before the message:
    ``logger.debug("topic.sub", "msg")`` logs ``"topic.sub::msg"``, which
    PUBHandler publishes under that subtopic."""

    def log(self, level: int, topic: str, msg: str, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Log ``msg % args`` at ``level`` under ``topic``."""
        logging.Logger.log(self, level, f"{topic}{TOPIC_DELIM}{msg}", *args, **kwargs)


# The level methods with the topic argument (pyzmq's: log() with a level each).
def _level_method(level: int, name: str) -> Any:
    def method(self: TopicLogger, topic: str, msg: str, *args: Any, **kwargs: Any) -> None:
        self.log(level, topic, msg, *args, **kwargs)

    method.__name__ = name
    method.__doc__ = f"Log ``msg % args`` at {logging.getLevelName(level)} under ``topic``."
    return method


for _level, _name in ((logging.DEBUG, "debug"), (logging.INFO, "info"), (logging.WARN, "warning"),
                      (logging.WARN, "warn"), (logging.ERROR, "error"), (logging.CRITICAL, "critical"),
                      (logging.CRITICAL, "fatal")):
    setattr(TopicLogger, _name, _level_method(_level, _name))


def _exception(self: TopicLogger, topic: str, msg: str, *args: Any, exc_info: Any = True, **kwargs: Any) -> None:
    """Log ``msg % args`` at ERROR under ``topic``, with the exception being handled."""
    self.log(logging.ERROR, topic, msg, *args, exc_info=exc_info, **kwargs)


TopicLogger.exception = _exception  # type: ignore[method-assign,assignment]
