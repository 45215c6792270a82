"""CURVE certificate files, pyzmq's ``zmq.auth.certs``.

The format is pyzmq's (and czmq's ``zcert``): ``#`` comment lines, a
``metadata`` section of indented ``name = value`` lines, and a ``curve``
section with ``public-key = "<40 Z85 chars>"`` and, in the secret file
only, ``secret-key = "..."``.  ``create_certificates(dir, name)`` writes
``name.key`` (public) and ``name.key_secret`` (public and secret), so files
written by pyzmq load here and the reverse.  One difference: the secret
file is created readable by its owner only (mode 0600); pyzmq leaves it to
the umask.

Layering: imports ``zmtp`` (for ``zmtp.curve_keypair``, looked up at call
time) and the standard library.
"""

from __future__ import annotations

import datetime
import glob
import os
from typing import Dict, Mapping, Optional, Tuple, Union

import zmtp

__all__ = ["create_certificates", "load_certificate", "load_certificates"]

_PathLike = Union[str, "os.PathLike[str]"]

_SECRET_BANNER = """#   ****  Generated on {0} by zmtp  ****
#   ZeroMQ CURVE **Secret** Certificate
#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.

"""

_PUBLIC_BANNER = """#   ****  Generated on {0} by zmtp  ****
#   ZeroMQ CURVE Public Certificate
#   Exchange securely, or use a secure mechanism to verify the contents
#   of this file after exchange. Store public certificates in your home
#   directory, in the .curve subdirectory.

"""


def _text(value: Union[str, bytes], encoding: str = "utf-8") -> str:
    return value.decode(encoding) if isinstance(value, bytes) else value


def _write_key_file(
    filename: _PathLike,
    banner: str,
    public_key: Union[str, bytes],
    secret_key: Optional[Union[str, bytes]] = None,
    metadata: Optional[Mapping[Union[str, bytes], Union[str, bytes]]] = None,
) -> None:
    """Write one certificate file (mode 0600 when it holds a secret key)."""
    mode = 0o600 if secret_key else 0o644
    fd = os.open(filename, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with open(fd, "w", encoding="utf8") as f:
        if secret_key:
            os.fchmod(fd, mode)  # an existing file keeps its mode through O_CREAT: narrow it
        f.write(banner)
        f.write("metadata\n")
        for k, v in (metadata or {}).items():
            f.write(f"    {_text(k)} = {_text(v)}\n")
        f.write("curve\n")
        f.write(f'    public-key = "{_text(public_key)}"\n')
        if secret_key:
            f.write(f'    secret-key = "{_text(secret_key)}"\n')


def create_certificates(
    key_dir: _PathLike,
    name: str,
    metadata: Optional[Mapping[Union[str, bytes], Union[str, bytes]]] = None,
) -> Tuple[str, str]:
    """Create a new CURVE key pair and write it as ``key_dir/name.key``
    (public) and ``key_dir/name.key_secret`` (public and secret, with the
    optional ``metadata``).  Returns the two paths (public, secret).

    The keys come from ``zmtp.curve_keypair()``.
    """
    public_key, secret_key = zmtp.curve_keypair()
    base = os.path.join(key_dir, name)
    public_file = f"{base}.key"
    secret_file = f"{base}.key_secret"
    now = datetime.datetime.now()
    _write_key_file(public_file, _PUBLIC_BANNER.format(now), public_key)
    _write_key_file(secret_file, _SECRET_BANNER.format(now), public_key, secret_key=secret_key, metadata=metadata)
    return public_file, secret_file


def _value(line: bytes) -> bytes:
    return line.split(b"=", 1)[1].strip(b" \t'\"")


def load_certificate(filename: _PathLike) -> Tuple[bytes, Optional[bytes]]:
    """Read ``(public_key, secret_key)`` (Z85 bytes) from a certificate file;
    ``secret_key`` is None for a public certificate.

    Raises OSError when the file does not exist and ValueError when it has
    no public key.
    """
    if not os.path.exists(filename):
        raise OSError(f"Invalid certificate file: {os.fspath(filename)}")
    public_key: Optional[bytes] = None
    secret_key: Optional[bytes] = None
    with open(filename, "rb") as f:
        for raw in f:
            line = raw.strip()
            if line.startswith(b"#") or b"=" not in line:
                continue
            if line.startswith(b"public-key"):
                public_key = _value(line)
            elif line.startswith(b"secret-key"):
                secret_key = _value(line)
            if public_key and secret_key:
                break
    if public_key is None:
        raise ValueError(f"No public key found in {os.fspath(filename)}")
    return public_key, secret_key


def load_certificates(directory: _PathLike = ".") -> Dict[bytes, bool]:
    """The public keys of every ``*.key`` certificate in ``directory``, as
    ``{z85_public_key: True}``.  Raises OSError when it is not a directory."""
    if not os.path.isdir(directory):
        raise OSError(f"Invalid certificate directory: {os.fspath(directory)}")
    certs: Dict[bytes, bool] = {}
    for cert_file in glob.glob(os.path.join(glob.escape(os.fspath(directory)), "*.key")):
        public_key, _ = load_certificate(cert_file)
        if public_key:
            certs[public_key] = True
    return certs
