"""The import graph of gateway/ (every import, TYPE_CHECKING ones too) has no cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import gateway

ROOT = Path(gateway.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the gateway modules it imports (``from gateway.x import y`` counts as
    gateway.x.y when that is a module, else gateway.x)."""
    modules = {module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    targets.add(full if full in modules else base)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_the_smtp_edge_and_the_daemon_have_no_import_cycles() -> None:
    """Others may remain elsewhere (gateway/sip has some); none may run through these."""
    graph = import_graph()
    assert "gateway.smtp.handler" not in graph["gateway.smtp.protocol"]
    assert "gateway.daemon" not in graph["gateway.reload"]
    tangled = {module for group in cycles(graph) for module in group}
    assert not tangled & {
        "gateway.smtp.handler",
        "gateway.smtp.protocol",
        "gateway.smtp.auth",
        "gateway.smtp.server",
        "gateway.routing",
        "gateway.daemon",
        "gateway.reload",
    }


def test_routing_is_pure_domain() -> None:
    """Recipient resolution reaches the store through the protocol passed in, and knows
    nothing of SMTP."""
    graph = import_graph()
    edges = {m for m in graph["gateway.routing"] if m.startswith(("gateway.smtp", "gateway.store"))}
    assert not edges
    source = (ROOT / "routing.py").read_text()
    assert "aiosmtpd" not in source


def test_the_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
