"""``python -m zmtp.compat``: run a pyzmq program with ``import zmq`` routed to zmtp.

::

    python -m zmtp.compat -m module [args...]     # like python -m module args...
    python -m zmtp.compat script.py [args...]     # like python script.py args...
    python -m zmtp.compat -c "code" [args...]     # like python -c "code" args...

Installs :func:`zmtp.compat.install` and then runs the program as Python
would: as ``__main__``, with ``sys.argv`` set as Python sets it (the
module's file / the script / ``-c``, then the arguments), and for a script
its directory first on ``sys.path``.  The exit status is the program's.  A
Jupyter kernel on zmtp: ``python -m zmtp.compat -m ipykernel_launcher -f
{connection_file}`` in a kernel spec's argv.

Layering: imports ``zmtp.compat``; run by the interpreter only.
"""

from __future__ import annotations

import os
import runpy
import sys
from typing import List, Optional

from zmtp.compat import install

USAGE = (
    "usage: python -m zmtp.compat -m module [args...]\n"
    "       python -m zmtp.compat script.py [args...]\n"
    "       python -m zmtp.compat -c code [args...]\n"
    "Runs a pyzmq program with `import zmq` resolved to zmtp (zmtp.compat.install())."
)


def main(argv: Optional[List[str]] = None) -> None:
    """Parse ``argv`` (default ``sys.argv[1:]``), install the alias and run the program."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE, file=sys.stdout if args else sys.stderr)
        raise SystemExit(0 if args else 2)
    if args[0] in ("-m", "-c") and len(args) < 2:
        print(f"zmtp.compat: option {args[0]} needs an argument\n{USAGE}", file=sys.stderr)
        raise SystemExit(2)
    install()
    if args[0] == "-m":
        # run_module's alter_sys puts the module's file in argv[0], as `python -m` does.
        sys.argv[:] = [args[1], *args[2:]]
        runpy.run_module(args[1], run_name="__main__", alter_sys=True)
    elif args[0] == "-c":
        sys.argv[:] = ["-c", *args[2:]]
        code = compile(args[1], "<string>", "exec")
        main_globals = {"__name__": "__main__", "__builtins__": __builtins__}
        exec(code, main_globals)
    else:
        script = args[0]
        sys.argv[:] = [script, *args[1:]]
        # `python script.py` puts the script's directory first on sys.path (not the cwd).
        sys.path[0] = os.path.dirname(os.path.realpath(script))
        runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
