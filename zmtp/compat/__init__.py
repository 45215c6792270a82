"""Run a pyzmq program on zmtp without editing it: ``import zmq`` becomes ``zmtp``.

::

    import zmtp.compat
    zmtp.compat.install()      # before anything imports zmq
    import zmq                 # zmtp itself
    import zmq.asyncio         # zmtp.asyncio itself

or, from a shell, ``python -m zmtp.compat -m module args...`` /
``python -m zmtp.compat script.py args...`` (:mod:`zmtp.compat.__main__`).

:func:`install` puts a finder first on ``sys.meta_path`` that answers every
``zmq`` and ``zmq.X`` import with the module ``zmtp`` / ``zmtp.X``: the
same module objects (``zmq.Socket is zmtp.Socket``, so ``isinstance`` and
``except zmq.ZMQError`` agree whichever name a library used).  A ``zmq.X``
zmtp lacks raises ``ModuleNotFoundError`` naming zmtp and the missing
module (never pyzmq's file found through zmtp's ``__path__``).  It refuses
with :class:`CompatError` when pyzmq's ``zmq`` is already imported in the
process (two ``zmq`` modules in one process would mix sockets of both).

Layering: imports the standard library only (``zmtp``, its parent package,
is imported first by Python, and the finder imports ``zmtp.X`` on demand);
nothing in ``zmtp`` imports it.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from typing import Optional, Sequence

__all__ = ["CompatError", "ZmtpAliasFinder", "install", "installed", "uninstall"]

#: the name programs import
ALIAS = "zmq"
#: the package it resolves to
TARGET = "zmtp"


class CompatError(RuntimeError):
    """:func:`install` cannot route ``zmq`` to zmtp (pyzmq's ``zmq`` is
    already imported in this process)."""


def _target_name(fullname: str) -> Optional[str]:
    """``zmtp.X`` for ``zmq.X`` (``zmtp`` for ``zmq``); None for other names."""
    if fullname == ALIAS:
        return TARGET
    if fullname.startswith(ALIAS + "."):
        return TARGET + fullname[len(ALIAS):]
    return None


def _is_zmtp_module(module: object) -> bool:
    """True for ``zmtp`` and its submodules (what an alias may point to)."""
    name = getattr(module, "__name__", None)
    return isinstance(name, str) and (name == TARGET or name.startswith(TARGET + "."))


class _AliasLoader(importlib.abc.Loader):
    """Hands the import system the already-imported zmtp module; runs nothing.

    The import system sets the module's ``__spec__`` to the alias's spec
    (unconditionally, between create_module and exec_module): exec_module
    puts zmtp's own back, so ``zmtp.__spec__.name`` stays ``"zmtp"``."""

    def __init__(self, module: types.ModuleType) -> None:
        self._module = module
        self._spec = getattr(module, "__spec__", None)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        """The zmtp module itself (its ``__name__``/``__spec__`` stay zmtp's)."""
        return self._module

    def exec_module(self, module: types.ModuleType) -> None:
        """Restores zmtp's ``__spec__``; the module ran when it was imported under its own name."""
        module.__spec__ = self._spec


class ZmtpAliasFinder(importlib.abc.MetaPathFinder):
    """The ``sys.meta_path`` entry :func:`install` adds: ``zmq[.X]`` -> ``zmtp[.X]``."""

    def find_spec(
        self,
        fullname: str,
        path: Optional[Sequence[str]] = None,
        target: Optional[types.ModuleType] = None,
    ) -> Optional[importlib.machinery.ModuleSpec]:
        """A spec whose loader returns ``zmtp[.X]``; None for names outside ``zmq``."""
        real = _target_name(fullname)
        if real is None:
            return None
        try:
            module = importlib.import_module(real)
        except ModuleNotFoundError as exc:
            if exc.name != real:  # zmtp.X exists but itself imports something missing
                raise
            raise ModuleNotFoundError(
                f"No module named {fullname!r}: zmq is zmtp here (zmtp.compat), and zmtp has no "
                f"module {real!r} (pyzmq's {fullname} is not implemented by zmtp)",
                name=fullname,
            ) from None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(module), is_package=hasattr(module, "__path__"))


def _foreign_zmq() -> Optional[str]:
    """The name of a ``zmq``/``zmq.X`` module in ``sys.modules`` that is not zmtp's, else None."""
    for name, module in list(sys.modules.items()):
        if _target_name(name) is not None and module is not None and not _is_zmtp_module(module):
            return name
    return None


def installed() -> bool:
    """True when :func:`install` has routed ``zmq`` to zmtp in this process."""
    return any(isinstance(f, ZmtpAliasFinder) for f in sys.meta_path)


def install() -> None:
    """Route ``import zmq`` and every ``import zmq.X`` of this process to
    ``zmtp`` / ``zmtp.X`` (the same module objects).  Call it before anything
    imports ``zmq``; calling it again does nothing.

    Raises :class:`CompatError` when pyzmq's ``zmq`` (or one of its
    submodules) is already imported: objects of that module would not be
    zmtp's, and a second ``zmq`` cannot replace it for the code holding it.
    """
    foreign = _foreign_zmq()
    if foreign is not None:
        where = getattr(sys.modules[foreign], "__file__", None) or "?"
        raise CompatError(
            f"zmtp.compat.install(): pyzmq's {foreign!r} is already imported in this process (from {where}); "
            "call install() before anything imports zmq, or run the program with "
            "`python -m zmtp.compat -m module ...` / `python -m zmtp.compat script.py ...`"
        )
    if installed():
        return
    sys.meta_path.insert(0, ZmtpAliasFinder())
    # `import zmq` must find the finder's answer, not a path entry's (pyzmq).
    importlib.invalidate_caches()


def uninstall() -> None:
    """Undo :func:`install`: remove the finder and the ``zmq``/``zmq.X``
    entries of ``sys.modules`` that are zmtp modules.  Objects already made
    through the ``zmq`` name stay zmtp objects."""
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, ZmtpAliasFinder)]
    for name, module in list(sys.modules.items()):
        if _target_name(name) is not None and _is_zmtp_module(module):
            del sys.modules[name]
