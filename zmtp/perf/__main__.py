"""``python -m zmtp.perf``: the table, the ``lat``/``thr`` tools and the
table's own ``_peer`` processes (see ``zmtp/perf/__init__.py``).

Layering: imports ``zmtp.perf.cli`` only; nothing imports it.
"""

import sys

from zmtp.perf.cli import main

if __name__ == "__main__":
    sys.exit(main())
