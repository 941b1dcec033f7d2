"""The layering rules of DESIGN.md section 5, read from the source with `ast` (nothing is
imported): no import cycles inside the package, and a sans-IO `protocol/`.

Every import statement counts, wherever it is: inside a function, or under
`if TYPE_CHECKING:` (a cycle for the type checker is a cycle of the design all the same)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "rustelixir"

# What the sans-IO protocol package must never reach for.
PROTOCOL_FORBIDDEN = ("asyncio", "socket", "rustelixir.node", "rustelixir.transport", "rustelixir.dispatcher")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every module `name` imports (absolute names; `from a import b` counts as `a.b` when
    `a.b` is a module of the package, else as `a`)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                found.add(submodule if submodule in known else source)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def test_the_import_graph_is_read() -> None:
    graph = _graph()
    assert "rustelixir.transport" in graph["rustelixir.node"]
    assert "rustelixir.protocol.control" in graph["rustelixir.node"]
    assert "rustelixir.protocol.flags" in graph["rustelixir.protocol.handshake"]


def test_no_module_imports_a_module_that_imports_it() -> None:
    graph = _graph()
    package = {name: {m for m in deps if m in graph and m != name} for name, deps in graph.items()}
    cycles: list[list[str]] = []
    state: dict[str, str] = {}  # name -> "open" (on the current path) | "done"
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = "open"
        path.append(name)
        for dep in sorted(package[name]):
            if state.get(dep) == "open":
                cycles.append(path[path.index(dep) :] + [dep])
            elif dep not in state:
                visit(dep)
        path.pop()
        state[name] = "done"

    for name in sorted(package):
        if name not in state:
            visit(name)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(cycle) for cycle in cycles)


def test_protocol_is_sans_io() -> None:
    graph = _graph()
    protocol = {name: deps for name, deps in graph.items() if name.startswith("rustelixir.protocol")}
    assert "rustelixir.protocol.handshake" in protocol
    offences = {
        name: sorted(dep for dep in deps if any(dep == f or dep.startswith(f + ".") for f in PROTOCOL_FORBIDDEN))
        for name, deps in protocol.items()
    }
    assert not {name: deps for name, deps in offences.items() if deps}


def test_the_transport_does_not_know_the_node() -> None:
    # It reports to the node through the ConnectionHost interface the node implements.
    assert "rustelixir.node" not in _graph()["rustelixir.transport"]
