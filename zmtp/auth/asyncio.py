"""pyzmq's ``zmq.auth.asyncio``: a ZAP handler running as a task of the
current asyncio loop (start it from a coroutine, or with a loop set).

Layering: imports ``zmtp``, ``zmtp.asyncio`` and ``zmtp.auth.base``.
"""

from __future__ import annotations

import asyncio
import warnings
from typing import Any, Optional

import zmtp
from zmtp.asyncio import Poller
from zmtp.auth.base import Authenticator

__all__ = ["AsyncioAuthenticator"]


class AsyncioAuthenticator(Authenticator):
    """An :class:`~zmtp.auth.Authenticator` answering in an asyncio task."""

    def __init__(self, context: Optional["zmtp.Context"] = None, loop: Any = None,
                 encoding: str = "utf-8", log: Any = None) -> None:
        super().__init__(context, encoding, log)
        if loop is not None:
            warnings.warn(f"{self.__class__.__name__}(loop) is deprecated and ignored",
                          DeprecationWarning, stacklevel=2)
        self.__poller: Optional[Poller] = None
        self.__task: Optional["asyncio.Future[None]"] = None

    async def __handle_zap(self) -> None:
        try:
            while self.__poller is not None:
                events = await self.__poller.poll()
                if self.zap_socket is not None and self.zap_socket in dict(events):
                    await self.handle_zap_message(self.zap_socket.recv_multipart())
        except zmtp.ZMQError as exc:  # the context was terminated under the task: end quietly
            if not (isinstance(exc, zmtp.ContextTerminated) or exc.errno in (zmtp.ETERM, zmtp.ENOTSOCK)):
                raise

    def start(self) -> None:
        """Bind the ZAP socket and start answering in a task of the current loop."""
        super().start()
        self.__poller = Poller()
        self.__poller.register(self.zap_socket, zmtp.POLLIN)
        self.__task = asyncio.ensure_future(self.__handle_zap())

    def stop(self) -> None:
        """Cancel the task and close the ZAP socket."""
        if self.__task is not None:
            self.__task.cancel()
            self.__task = None
        if self.__poller is not None:
            self.__poller.unregister(self.zap_socket)
            self.__poller = None
        super().stop()
