"""Backend choice: io_uring when the kernel allows it, epoll otherwise.

``ZMTP_BACKEND=io_uring|epoll`` forces one; a forced backend that cannot start
is an error at import, not a silent fallback.

Layering: imports the C module only; imported by ``zmtp/__init__`` at import
time, before any socket exists.
"""

from __future__ import annotations

import os
from typing import Dict

from zmtp import _zmtp

_info: Dict[str, str] = {}


def _select() -> None:
    forced = os.environ.get("ZMTP_BACKEND", "").strip()
    if forced not in ("", "io_uring", "epoll"):
        raise ImportError(f"ZMTP_BACKEND={forced!r}: use 'io_uring' or 'epoll'")
    try:
        name, reason = _zmtp._set_backend(forced)
    except Exception as exc:  # a forced backend that cannot start
        raise ImportError(f"ZMTP_BACKEND={forced}: backend unavailable: {exc}") from exc
    _info.clear()
    _info.update(
        name=name,
        forced=forced,
        reason=reason or (f"forced by ZMTP_BACKEND={forced}" if forced else "io_uring probed OK"),
    )


def backend_name() -> str:
    """The I/O backend sockets use: ``"io_uring"`` or ``"epoll"``."""
    return _info["name"]


def backend_info() -> Dict[str, str]:
    """Which backend, whether it was forced, and why (e.g. why not io_uring)."""
    return dict(_info)


_select()
