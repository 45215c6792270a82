"""The layout of the ``zmtp`` package: no import cycles.

Every ``import`` / ``from ... import`` statement of every module under
``zmtp/`` counts, wherever it is: at the top, inside a function, or under
``if TYPE_CHECKING:`` (a cycle through type hints is still two modules
that each need the other to be read).  The C extension (``zmtp._zmtp``,
typed by ``_zmtp.pyi``) is a leaf.  A package's ``__init__`` is the module
named after the package; a submodule's implicit import of its parent
package is not an edge (Python's own order, not the code's).
"""

from __future__ import annotations

import ast
import pathlib
from typing import Dict, List, Optional, Set

import zmtp

PACKAGE_DIR = pathlib.Path(zmtp.__file__).resolve().parent


def modules(package_dir: pathlib.Path) -> Dict[str, pathlib.Path]:
    """Dotted module name -> source file, for every ``.py`` under
    `package_dir` and every extension module (its ``.pyi`` stub or its
    ``.so``: a leaf)."""
    found: Dict[str, pathlib.Path] = {}
    for path in sorted(package_dir.rglob("*")):
        if path.suffix not in (".py", ".pyi", ".so") or "__pycache__" in path.parts:
            continue
        relative = path.relative_to(package_dir.parent)
        parts = [*relative.parts[:-1], relative.name.split(".")[0]]
        if parts[-1] == "__init__":
            parts.pop()
        found.setdefault(".".join(parts), path)
    return found


def _owner(name: str, known: Dict[str, pathlib.Path]) -> Optional[str]:
    """The module of `known` that `name` (a module or a name in one) is in."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(package_dir: pathlib.Path) -> Dict[str, Set[str]]:
    """Module -> the modules of the same package that it imports."""
    known = modules(package_dir)
    graph: Dict[str, Set[str]] = {}
    for name, path in known.items():
        is_package = path.name == "__init__.py"
        here = name if is_package else name.rpartition(".")[0]
        targets: Set[Optional[str]] = set()
        source_text = path.read_text(encoding="utf-8") if path.suffix == ".py" else ""
        tree = ast.parse(source_text)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets.update(_owner(alias.name, known) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: from . import x, from ..a import b
                    base = here.split(".")[: len(here.split(".")) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                for alias in node.names:
                    # "from zmtp import codec" imports the module zmtp.codec;
                    # "from zmtp import Socket" a name of zmtp/__init__.py.
                    full = f"{source}.{alias.name}"
                    targets.add(full if full in known else _owner(source, known))
        graph[name] = {t for t in targets if t is not None and t != name}
    return graph


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """The strongly connected components of more than one module (Tarjan,
    iterative), each sorted; a module importing itself is not counted."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_zmtp_has_no_import_cycle() -> None:
    """No two modules of zmtp import each other, directly or around a loop."""
    graph = import_graph(PACKAGE_DIR)
    assert "zmtp.socket" in graph and "zmtp._zmtp" in graph, sorted(graph)
    found = cycles(graph)
    detail = "; ".join(" <-> ".join(c) + f" ({', '.join(f'{m} imports {sorted(graph[m] & set(c))}' for m in c)})" for c in found)
    assert not found, f"import cycles in zmtp/: {detail}"


def test_checker_sees_a_cycle_under_type_checking(tmp_path: pathlib.Path) -> None:
    """The checker itself: a cycle closed only by an ``if TYPE_CHECKING:``
    import inside a subpackage (as zmtp/_inproc.py and zmtp/socket.py had)
    is found; the same package without that import has none."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from pkg.a import A\n")
    (pkg / "a.py").write_text("from pkg.sub import b\nclass A: pass\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..a import A\n"
    )
    assert cycles(import_graph(pkg)) == [["pkg.a", "pkg.sub.b"]]
    (pkg / "sub" / "b.py").write_text("import os\n")
    assert cycles(import_graph(pkg)) == []
