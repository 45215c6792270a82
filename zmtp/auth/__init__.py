"""ZAP authentication (ZeroMQ RFC 27) and CURVE certificates, pyzmq's ``zmq.auth``.

* :class:`Authenticator`: the policies (allow/deny by address, PLAIN
  passwords, CURVE certificates or ``CURVE_ALLOW_ANY``, a CURVE callback);
* :class:`zmtp.auth.thread.ThreadAuthenticator`: answering in a thread;
* :class:`zmtp.auth.asyncio.AsyncioAuthenticator`: answering in an asyncio task;
* :func:`create_certificates`, :func:`load_certificate`,
  :func:`load_certificates`: pyzmq's (and czmq's) certificate files.

See docs/auth.md.

Layering: imports ``zmtp.auth.base`` and ``zmtp.auth.certs`` (not the
thread and asyncio modules: import those by name, as with pyzmq).
"""

from zmtp.auth.base import CURVE_ALLOW_ANY, VERSION, ZAP_ENDPOINT, Authenticator
from zmtp.auth.certs import create_certificates, load_certificate, load_certificates

__all__ = [
    "Authenticator",
    "CURVE_ALLOW_ANY",
    "VERSION",
    "ZAP_ENDPOINT",
    "create_certificates",
    "load_certificate",
    "load_certificates",
]
