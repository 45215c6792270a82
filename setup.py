"""Build of zmtp._zmtp from src/*.c.

Environment switches (read at build time):

* ``ZMTP_DEBUG=1``: ``-O0 -g`` with C asserts on (NDEBUG undefined).
* ``ZMTP_SANITIZE=address,undefined``: a sanitizer build for tests and
  fuzzing (``-fsanitize=...``, frame pointers kept, no recovery).  Run it
  with the sanitizer runtime preloaded, see ``scripts/sanitize.sh``.
"""

import os
import sys
from glob import glob

from setuptools import Extension, setup

debug = os.environ.get("ZMTP_DEBUG", "") not in ("", "0")
sanitize = os.environ.get("ZMTP_SANITIZE", "").strip()

extra_compile_args = ["-std=c11", "-Wall", "-Wextra", "-fvisibility=hidden"]
extra_link_args = []
undef_macros = []
define_macros = [("_GNU_SOURCE", None)]

if debug or sanitize:
    extra_compile_args += ["-O0" if debug else "-O1", "-g", "-fno-omit-frame-pointer"]
    undef_macros.append("NDEBUG")
else:
    extra_compile_args += ["-O2"]

if sanitize:
    flag = "-fsanitize=" + sanitize
    extra_compile_args += [flag, "-fno-sanitize-recover=all"]
    extra_link_args += [flag]

if sys.platform != "linux":
    sys.exit("zmtp needs Linux (io_uring and epoll backends)")

sources = sorted(glob("src/*.c"))
# _zmtpmodule.c first, for readable build logs.
sources.sort(key=lambda p: (not p.endswith("_zmtpmodule.c"), p))

setup(
    ext_modules=[
        Extension(
            "zmtp._zmtp",
            sources=sources,
            depends=sorted(glob("src/*.h")),
            include_dirs=["src"],
            define_macros=define_macros,
            undef_macros=undef_macros,
            extra_compile_args=extra_compile_args,
            extra_link_args=extra_link_args,
        )
    ],
)
