"""Backend choice at import: ZMTP_BACKEND forces one; otherwise the best that works."""

from __future__ import annotations

import os
import subprocess
import tempfile
import sys

import pytest

from zmtp import _zmtp

SHOW = "import zmtp; i = zmtp.backend_info(); print(zmtp.backend_name(), i['forced'], '|', i['reason'])"


def run(env_value):
    env = dict(os.environ)
    env.pop("ZMTP_BACKEND", None)
    if env_value is not None:
        env["ZMTP_BACKEND"] = env_value
    return subprocess.run([sys.executable, "-c", SHOW], env=env, capture_output=True, text=True, timeout=60, cwd=tempfile.gettempdir())


@pytest.mark.parametrize("name", ["io_uring", "epoll"])
def test_forced_backend(name):
    usable, reason = _zmtp._probe_backend(name)
    if not usable:
        pytest.skip(f"{name} unavailable here: {reason}")
    out = run(name)
    assert out.returncode == 0, out.stderr
    got, forced, _ = out.stdout.split(" ", 2)
    assert (got, forced) == (name, name)


def test_default_is_io_uring_when_it_works_else_epoll():
    out = run(None)
    assert out.returncode == 0, out.stderr
    usable, reason = _zmtp._probe_backend("io_uring")
    expected = "io_uring" if usable else "epoll"
    assert out.stdout.split()[0] == expected
    assert out.stdout.split("|", 1)[1].strip()  # the reason is kept


def test_unknown_backend_is_an_error():
    out = run("kqueue")
    assert out.returncode != 0
    assert "ZMTP_BACKEND" in out.stderr and "kqueue" in out.stderr


def test_set_backend_rejects_unknown_names():
    with pytest.raises(ValueError):
        _zmtp._set_backend("select")
