"""The ZAP handler (ZeroMQ RFC 27), pyzmq's ``zmq.auth.base.Authenticator``.

An Authenticator binds a REP socket at ``inproc://zeromq.zap.01`` in its
Context and answers the ZAP requests the Context's sockets send while a
peer authenticates: ``[version, request_id, domain, address, identity,
mechanism, *credentials]`` -> ``[version, request_id, status_code,
status_text, user_id, metadata]``.  The rules and every reply are pyzmq
27.3's (allow/deny by address, PLAIN passwords per domain, CURVE keys from
a certificate directory, CURVE_ALLOW_ANY, or a callback), except where
docs/auth.md "What differs from pyzmq" says: a request of fewer than two
frames gets a 400 reply (pyzmq sends none and its REP socket then waits
forever), an exception in a credentials callback gets a 500 reply and is
logged (pyzmq's handler dies), a CURVE key that is not 32 bytes is
"Invalid credentials" (pyzmq's handler dies on most of them), passwords are never logged, and
``configure_gssapi`` raises NotImplementedError (zmtp has no GSSAPI).

This class does no I/O of its own after ``start()``: drive it with
``await auth.handle_zap_message(auth.zap_socket.recv_multipart())``, or use
:class:`zmtp.auth.thread.ThreadAuthenticator` /
:class:`zmtp.auth.asyncio.AsyncioAuthenticator`.

Layering: imports ``zmtp``, ``zmtp.utils.z85`` and ``zmtp.auth.certs``.
"""

from __future__ import annotations

import inspect
import logging
import os
from typing import Any, Dict, List, Optional, Set, Tuple, Union

import zmtp
from zmtp.auth.certs import load_certificates
from zmtp.utils import z85

__all__ = ["Authenticator", "CURVE_ALLOW_ANY", "VERSION", "ZAP_ENDPOINT"]

#: ``configure_curve(domain, CURVE_ALLOW_ANY)`` accepts every client key
CURVE_ALLOW_ANY = "*"
#: the ZAP version this handler speaks (RFC 27)
VERSION = b"1.0"
#: where libzmq (and zmtp) sockets send their ZAP requests
ZAP_ENDPOINT = "inproc://zeromq.zap.01"


class Authenticator:
    """A ZAP handler with pyzmq's policies.

    Until a policy is added, NULL connections are allowed (classic ZeroMQ
    behaviour) and PLAIN and CURVE connections are denied.  ``allow`` and
    ``deny`` filter by the peer's IP address before any mechanism check.
    """

    context: "zmtp.Context"
    encoding: str
    allow_any: bool
    credentials_providers: Dict[str, Any]
    zap_socket: Any
    passwords: Dict[str, Dict[str, str]]
    certs: Dict[str, Dict[bytes, Any]]
    log: Any

    def __init__(self, context: Optional["zmtp.Context"] = None, encoding: str = "utf-8", log: Any = None) -> None:
        self.context = context or zmtp.Context.instance()
        self.encoding = encoding
        self.allow_any = False
        self.credentials_providers = {}
        self.zap_socket = None
        self._allowed: Set[str] = set()
        self._denied: Set[str] = set()
        # domain -> {username: password}
        self.passwords = {}
        # domain -> {z85 public key: True}
        self.certs = {}
        self.log = log or logging.getLogger("zmtp.auth")

    def start(self) -> None:
        """Create the ZAP socket and bind it at ``inproc://zeromq.zap.01``."""
        self.zap_socket = self.context.socket(zmtp.REP, socket_class=zmtp.Socket)
        self.zap_socket.linger = 1
        self.zap_socket.bind(ZAP_ENDPOINT)
        self.log.debug("Starting")

    def stop(self) -> None:
        """Close the ZAP socket (a closed or terminated one is left as is)."""
        if self.zap_socket is not None and not self.zap_socket.closed:
            self.zap_socket.close()
        self.zap_socket = None

    def allow(self, *addresses: str) -> None:
        """Allow these IP addresses and refuse every other one (for NULL:
        accepted; for PLAIN and CURVE: they go on to authenticate).
        Exclusive with :meth:`deny` (ValueError)."""
        if self._denied:
            raise ValueError("Only use allow or deny, not both")
        self.log.debug("Allowing %s", ",".join(addresses))
        self._allowed.update(addresses)

    def deny(self, *addresses: str) -> None:
        """Refuse these IP addresses; every other one goes on to
        authenticate.  Exclusive with :meth:`allow` (ValueError)."""
        if self._allowed:
            raise ValueError("Only use a allow or deny, not both")
        self.log.debug("Denying %s", ",".join(addresses))
        self._denied.update(addresses)

    def configure_plain(self, domain: str = "*", passwords: Optional[Dict[str, str]] = None) -> None:
        """PLAIN: accept these ``{username: password}`` in ``domain`` ("*":
        requests without a domain).  An empty or None dict changes nothing."""
        if passwords:
            self.passwords[domain] = passwords
        self.log.debug("Configure plain: %s", domain)

    def configure_curve(self, domain: str = "*", location: Union[str, "os.PathLike[str]"] = ".") -> None:
        """CURVE: accept the client keys of the ``*.key`` certificates in the
        directory ``location`` (read now: call again after changing it), or
        every key when ``location`` is :data:`CURVE_ALLOW_ANY`.  A directory
        that cannot be read is logged as an error, as pyzmq."""
        self.log.debug("Configure curve: %s[%s]", domain, location)
        if location == CURVE_ALLOW_ANY:
            self.allow_any = True
        else:
            self.allow_any = False
            try:
                self.certs[domain] = load_certificates(location)
            except Exception as e:
                self.log.error("Failed to load CURVE certs from %s: %s", location, e)

    def configure_curve_callback(self, domain: str = "*", credentials_provider: Any = None) -> None:
        """CURVE: ask ``credentials_provider.callback(domain, z85_key)``
        (a truthy value, or an awaitable of one, accepts) for each client
        key in ``domain``."""
        self.allow_any = False
        if credentials_provider is not None:
            self.credentials_providers[domain] = credentials_provider
        else:
            self.log.error("None credentials_provider provided for domain:%s", domain)

    def curve_user_id(self, client_public_key: bytes) -> str:
        """The User-Id of an accepted CURVE client: its Z85 public key.
        Override to map keys to other names."""
        return z85.encode(client_public_key).decode("ascii")

    def configure_gssapi(self, domain: str = "*", location: Optional[str] = None) -> None:
        """GSSAPI: not available (zmtp has no GSSAPI mechanism; pyzmq's is a
        no-op that libzmq builds without GSSAPI never reach)."""
        raise NotImplementedError("zmtp has no GSSAPI mechanism: use CURVE or PLAIN (see docs/auth.md)")

    async def handle_zap_message(self, msg: List[bytes]) -> None:
        """Answer one ZAP request (the frames received on ``zap_socket``)."""
        if len(msg) < 6:
            self.log.error("Invalid ZAP message, not enough frames: %r", msg)
            if len(msg) < 2:
                self.log.error("Not enough information to reply")
                # reply anyway, or the REP socket would wait for a reply forever
                self._send_zap_reply(b"", b"400", b"Not enough frames")
            else:
                self._send_zap_reply(msg[1], b"400", b"Not enough frames")
            return

        version, request_id, raw_domain, raw_address, identity, mechanism = msg[:6]
        credentials = msg[6:]
        domain = raw_domain.decode(self.encoding, "replace")
        address = raw_address.decode(self.encoding, "replace")

        if version != VERSION:
            self.log.error("Invalid ZAP version: %r", msg)
            self._send_zap_reply(request_id, b"400", b"Invalid version")
            return

        self.log.debug(
            "version: %r, request_id: %r, domain: %r, address: %r, identity: %r, mechanism: %r",
            version, request_id, domain, address, identity, mechanism,
        )
        allowed, denied, reason = self._check_address(address)

        username = "anonymous"
        if not denied:
            if mechanism == b"NULL" and not allowed:
                self.log.debug("ALLOWED (NULL)")
                allowed = True
            elif mechanism in (b"PLAIN", b"CURVE", b"GSSAPI"):
                # even an allowed address must authenticate
                want = 2 if mechanism == b"PLAIN" else 1
                if len(credentials) != want or (mechanism == b"CURVE" and len(credentials[0]) != 32):
                    self.log.error("Invalid %s credentials: %r", mechanism.decode(), _shown(mechanism, credentials))
                    self._send_zap_reply(request_id, b"400", b"Invalid credentials")
                    return
                try:
                    allowed, reason, username = await self._authenticate(mechanism, domain, credentials)
                except Exception:
                    self.log.exception("ZAP handler failed on a %s request", mechanism.decode())
                    self._send_zap_reply(request_id, b"500", b"Internal error")
                    return

        if allowed:
            self._send_zap_reply(request_id, b"200", b"OK", username)
        else:
            self._send_zap_reply(request_id, b"400", reason)

    def _check_address(self, address: str) -> Tuple[bool, bool, bytes]:
        """(allowed, denied, reason) from the allow / deny lists."""
        if self._allowed:
            if address in self._allowed:
                self.log.debug("PASSED (allowed) address=%s", address)
                return True, False, b"NO ACCESS"
            self.log.debug("DENIED (not allowed) address=%s", address)
            return False, True, b"Address not allowed"
        if self._denied:
            if address in self._denied:
                self.log.debug("DENIED (denied) address=%s", address)
                return False, True, b"Address denied"
            self.log.debug("PASSED (not denied) address=%s", address)
            return True, False, b"NO ACCESS"
        return False, False, b"NO ACCESS"

    async def _authenticate(self, mechanism: bytes, domain: str, credentials: List[bytes]) -> Tuple[bool, bytes, str]:
        """(allowed, reason, user id) for PLAIN, CURVE or GSSAPI credentials."""
        if mechanism == b"PLAIN":
            username, password = (c.decode(self.encoding, "replace") for c in credentials)
            allowed, reason = self._authenticate_plain(domain, username, password)
            return allowed, reason, username
        if mechanism == b"CURVE":
            key = credentials[0]
            allowed, reason = await self._authenticate_curve(domain, key)
            return allowed, reason, (self.curve_user_id(key) if allowed else "anonymous")
        principal = credentials[0]  # GSSAPI: the principal is the user id, as pyzmq
        allowed, reason = self._authenticate_gssapi(domain, principal)
        return allowed, reason, principal.decode(self.encoding, "replace")

    def _authenticate_plain(self, domain: str, username: str, password: str) -> Tuple[bool, bytes]:
        """PLAIN: the password of ``username`` in ``domain`` ("*" when empty)."""
        if not self.passwords:
            self.log.debug("DENIED (PLAIN) %s", b"No passwords defined")
            return False, b"No passwords defined"
        domain = domain or "*"
        allowed = False
        if domain not in self.passwords:
            reason = b"Invalid domain"
        elif username not in self.passwords[domain]:
            reason = b"Invalid username"
        elif password != self.passwords[domain][username]:
            reason = b"Invalid password"
        else:
            allowed, reason = True, b""
        if allowed:
            # the password is never logged (pyzmq logs it at debug level)
            self.log.debug("ALLOWED (PLAIN) domain=%s username=%s", domain, username)
        else:
            self.log.debug("DENIED %s", reason)
        return allowed, reason

    async def _authenticate_curve(self, domain: str, client_key: bytes) -> Tuple[bool, bytes]:
        """CURVE: allow-any, else the domain's callback, else its certificates."""
        if self.allow_any:
            self.log.debug("ALLOWED (CURVE allow any client)")
            return True, b"OK"
        domain = domain or "*"
        if self.credentials_providers:
            if domain not in self.credentials_providers:
                return False, b"Unknown domain"
            z85_client_key = z85.encode(client_key)
            r = self.credentials_providers[domain].callback(domain, z85_client_key)
            if inspect.isawaitable(r):
                r = await r
            allowed = bool(r)
            self.log.debug("%s (CURVE auth_callback) domain=%s client_key=%s",
                           "ALLOWED" if allowed else "DENIED", domain, z85_client_key)
            return allowed, (b"OK" if allowed else b"Unknown key")
        if domain not in self.certs:
            return False, b"Unknown domain"
        z85_client_key = z85.encode(client_key)
        allowed = bool(self.certs[domain].get(z85_client_key))
        self.log.debug("%s (CURVE) domain=%s client_key=%s", "ALLOWED" if allowed else "DENIED", domain, z85_client_key)
        return allowed, (b"OK" if allowed else b"Unknown key")

    def _authenticate_gssapi(self, domain: str, principal: bytes) -> Tuple[bool, bytes]:
        """GSSAPI was checked by the mechanism itself: accept, as pyzmq."""
        self.log.debug("ALLOWED (GSSAPI) domain=%s principal=%s", domain, principal)
        return True, b"OK"

    def _send_zap_reply(self, request_id: bytes, status_code: bytes, status_text: bytes,
                        user_id: str = "anonymous") -> None:
        """Send ``[version, request_id, status_code, status_text, user_id, metadata]``."""
        uid = user_id.encode(self.encoding, "replace") if status_code == b"200" else b""
        self.log.debug("ZAP reply code=%s text=%s", status_code, status_text)
        self.zap_socket.send_multipart([VERSION, request_id, status_code, status_text, uid, b""])


def _shown(mechanism: bytes, credentials: List[bytes]) -> Any:
    """Credentials as logged: PLAIN's are not (a password may be among them)."""
    return f"<{len(credentials)} frames>" if mechanism == b"PLAIN" else credentials
