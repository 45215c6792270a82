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
from setuptools.command.build_ext import build_ext

debug = os.environ.get("ZMTP_DEBUG", "") not in ("", "0")
sanitize = os.environ.get("ZMTP_SANITIZE", "").strip()

extra_compile_args = ["-std=c11", "-Wall", "-Wextra", "-fvisibility=hidden", "-pthread"]
# -pthread: glibc < 2.28 (manylinux2014) keeps pthread_atfork in libpthread.
extra_link_args = ["-pthread"]
undef_macros = []
define_macros = [("_GNU_SOURCE", None)]

if debug or sanitize:
    extra_compile_args += ["-O0" if debug else "-O1", "-g", "-fno-omit-frame-pointer"]
    undef_macros.append("NDEBUG")
else:
    extra_compile_args += ["-O2"]

if sanitize:
    flag = "-fsanitize=" + sanitize
    # -fno-wrapv: Python's CFLAGS carry -fwrapv, which hides signed overflow
    # from UBSan.
    extra_compile_args += [flag, "-fno-sanitize-recover=all", "-fno-wrapv"]
    extra_link_args += [flag]

if sys.platform != "linux":
    sys.exit("zmtp needs Linux (io_uring and epoll backends)")

sources = sorted(glob("src/*.c"))
# _zmtpmodule.c first, for readable build logs.
sources.sort(key=lambda p: (not p.endswith("_zmtpmodule.c"), p))

class BuildExt(build_ext):
    """Always recompile: build/ may hold objects made with other ZMTP_DEBUG /
    ZMTP_SANITIZE switches, and setuptools only compares file times."""

    def finalize_options(self):
        super().finalize_options()
        self.force = True


setup(
    cmdclass={"build_ext": BuildExt},
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
            # dlopen (sodium.c): in libc since glibc 2.34, libdl before
            libraries=["dl"],
        )
    ],
)
