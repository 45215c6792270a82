"""CURVE (issue 17): libsodium loaded at run time, keys as pyzmq's, the C
Z85 codec (RFC 32), the CURVE socket options.

Keys are checked against pyzmq's (libzmq 4.3.5 over libsodium) in both
directions; zmtp without libsodium is a subprocess with ZMTP_LIBSODIUM
naming a missing library.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import zmq

import zmtp
from zmtp import _zmtp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# RFC 32's test vector.
RFC32_BYTES = bytes([0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B])
RFC32_TEXT = b"HelloWorld"


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    """``python -c code`` with this worktree's zmtp and extra environment."""
    full = dict(os.environ, PYTHONPATH=ROOT, **env)
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=60)


def test_libsodium_loaded():
    assert _zmtp._curve_unavailable() is None


def test_z85_rfc32_vector():
    assert _zmtp._z85_encode(RFC32_BYTES) == RFC32_TEXT
    assert _zmtp._z85_decode(RFC32_TEXT) == RFC32_BYTES


@pytest.mark.parametrize("n", [0, 4, 32, 64])
def test_z85_round_trip_as_pyzmq(n):
    import zmq.utils.z85

    data = os.urandom(n)
    text = _zmtp._z85_encode(data)
    assert text == zmq.utils.z85.encode(data)
    assert _zmtp._z85_decode(text) == data


@pytest.mark.parametrize("bad", [b"Hell", b"HelloWorl~", b"%nSc1" * 2 + b"#####"])
def test_z85_decode_refuses(bad):
    # a length not a multiple of 5, a character outside the alphabet, a
    # group above 2^32 - 1 ("#####" is 85^5 - 1)
    with pytest.raises(ValueError):
        _zmtp._z85_decode(bad)


def test_z85_encode_refuses_odd_length():
    with pytest.raises(ValueError):
        _zmtp._z85_encode(b"abc")


def test_keypair_interoperates_with_pyzmq():
    public, secret = zmtp.curve_keypair()
    assert len(public) == len(secret) == 40 and public != secret
    assert zmq.curve_public(secret) == public
    assert zmtp.curve_public(secret) == public
    p2, s2 = zmq.curve_keypair()
    assert zmtp.curve_public(s2) == p2
    assert zmtp.curve_keypair()[1] != secret  # fresh randomness


@pytest.mark.parametrize("bad", [b"x" * 39, b"x" * 41, b"\0" * 32])
def test_curve_public_refuses_as_pyzmq(bad):
    with pytest.raises(ValueError, match="secret key must be a 40 byte z85 encoded string"):
        zmtp.curve_public(bad)
    with pytest.raises(ValueError):
        zmq.curve_public(bad)


@pytest.mark.parametrize("bad", [b"~" * 40, b"#" * 40])
def test_curve_public_refuses_bad_z85_as_pyzmq(bad):
    with pytest.raises(zmtp.ZMQError) as e:
        zmtp.curve_public(bad)
    assert e.value.errno == zmq.EINVAL and bad.decode() not in str(e.value)
    with pytest.raises(zmq.ZMQError) as pe:
        zmq.curve_public(bad)
    assert pe.value.errno == zmq.EINVAL


def test_curve_keygen_prints_a_pair():
    r = subprocess.run([sys.executable, "-m", "zmtp.curve_keygen"], env=dict(os.environ, PYTHONPATH=ROOT),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "== CURVE PUBLIC KEY ==" and lines[2] == "== CURVE SECRET KEY =="
    assert zmq.curve_public(lines[3].encode()) == lines[1].encode()


def test_without_libsodium_says_what_to_install():
    code = (
        "import zmtp\n"
        "print(zmtp.has('curve'))\n"
        "for f, a in ((zmtp.curve_keypair, ()), (zmtp.curve_public, (b'x' * 40,))):\n"
        "    try:\n"
        "        f(*a)\n"
        "    except RuntimeError as e:\n"
        "        print(e)\n"
    )
    r = run_python(code, ZMTP_LIBSODIUM="/nonexistent/libsodium.so")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "False"
    assert len(lines) == 3
    for line in lines[1:]:
        assert "libsodium" in line and "apt-get install libsodium23" in line and "wheel" in line
    r = run_python("import sys, zmtp.curve_keygen as k; sys.exit(k.main())", ZMTP_LIBSODIUM="/nonexistent/x.so")
    assert r.returncode == 1 and "libsodium" in r.stderr


def test_wheel_copy_of_libsodium_is_loaded_first(tmp_path):
    # a wheel ships zmtp/_sodium/libsodium.so: a copy of the package with the
    # system's library there loads that file (the loader's log says which)
    import shutil

    def loaded(stderr: str) -> list:
        # the loader runs the init of each library it really loads
        return [line.split("calling init: ")[1].strip() for line in stderr.splitlines()
                if "calling init: " in line and "libsodium" in os.path.basename(line)]

    system = loaded(run_python("import zmtp; zmtp.curve_keypair()", LD_DEBUG="files").stderr)
    assert len(system) == 1 and "/zmtp/_sodium/" not in system[0], system
    shutil.copytree(os.path.join(ROOT, "zmtp"), tmp_path / "zmtp", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "zmtp" / "_sodium").mkdir()
    shutil.copy(system[0], tmp_path / "zmtp" / "_sodium" / "libsodium.so")
    env = dict(os.environ, PYTHONPATH=str(tmp_path), LD_DEBUG="files")
    r = subprocess.run([sys.executable, "-c", "import zmtp; zmtp.curve_keypair()"], env=env, capture_output=True,
                       text=True, timeout=60, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr[-2000:]
    assert loaded(r.stderr) == ["%s/zmtp/_sodium/libsodium.so" % tmp_path]
