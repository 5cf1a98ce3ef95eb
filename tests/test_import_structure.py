"""Issue 16.8: the package's import graph has no circles, and no module imports another's private
names (read from the sources: nothing is imported)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "dspo_ray"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[tuple[str, list[str], int]]:
    """(module imported, names imported from it, line) for every import, lazy ones included."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, [a.name for a in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names]
    return out


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for target, names, _ in imports_of(path):
            # "from dspo_ray.data import shipping" imports the module dspo_ray.data.shipping
            for candidate in [f"{target}.{n}" for n in names] + [target]:
                if candidate in modules and candidate != name:
                    edges[name].add(candidate)
                    break
    return edges


def test_no_import_circles_between_modules():
    edges = graph()  # lazy imports count: an import inside a function still closes a circle
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target, stack + [target])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import circles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_two_old_circles_stay_broken():
    edges = graph()
    assert not any(t.startswith("dspo_ray.baselines") for t in edges["dspo_ray.policies"])
    assert "dspo_ray.data.shipping" not in edges["dspo_ray.data.dsrl"]


def test_no_private_names_imported_across_modules():
    found = []
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        for target, names, line in imports_of(path):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            private += [p for p in target.split(".") if p.startswith("_") and not p.startswith("__")]
            if private:
                found.append(f"{path.name}:{line} {target} {private}")
        if "._private" in text:
            found.append(f"{path.name}: uses a library's _private module")
    assert not found, found


def test_only_the_distributed_package_imports_ray():
    """The algorithm runs without Ray: Ray is imported in dspo_ray/distributed/ only."""
    found = [f"{path.relative_to(PACKAGE)}:{line}"
             for path in PACKAGE.rglob("*.py") if "distributed" not in path.relative_to(PACKAGE).parts
             for target, _, line in imports_of(path) if target.split(".")[0] == "ray"]
    assert not found, found
