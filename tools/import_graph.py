"""The import graph of bayesgmm: cycles among module-level imports, and every function-level import.

Reads the sources with :mod:`ast` (nothing is imported). Usage, from the repository root::

    python tools/import_graph.py            # report; exit status 1 if a module-level cycle exists
    python tools/import_graph.py --edges    # also list every module-level edge
    python tools/import_graph.py --root ../other-checkout   # another checkout's sources

An edge ``a -> b`` means that module ``a`` names module ``b`` in an import statement
(``import bayesgmm.b``, ``from . import b``, ``from .b import name``, ``from .pkg import b``). The
implicit import of parent packages (``bayesgmm.core`` before ``bayesgmm.core.params``) is not an
edge: a package that is being initialised is already in ``sys.modules``.

*Module-level* imports are those run when the module is imported: statements at the top of the
module, also inside ``if`` / ``try`` blocks there (``if TYPE_CHECKING:`` blocks are skipped).
*Function-level* imports are inside a ``def`` (or a class body): they run at call time. Each is
listed with the *heavy* packages it defers: those that importing its target loads (through
module-level imports, including its parent packages') and the importing module does not already
load -- numpyro, arviz, matplotlib, optax, and pandas and xarray, which ArviZ brings (see
tests/test_startup.py). Deferring them is the one good reason for a function-level import
between bayesgmm modules. The last section lists the cycles that appear once the function-level
imports that defer nothing heavy are counted as edges: the cycles such imports only hide.
"""

from __future__ import annotations

import argparse
import ast
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = "bayesgmm"
#: Third-party packages whose import is deferred on purpose (slow, or optional).
HEAVY = ("numpyro", "arviz", "arviz_stats", "matplotlib", "optax", "pandas", "xarray")


def module_files(root: pathlib.Path = ROOT, package: str = PACKAGE) -> dict[str, pathlib.Path]:
    """``{dotted module name: path}`` of every module of the package."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module):
    """``(node, module_level)`` for every import statement of a module."""

    def walk(nodes, module_level):
        for node in nodes:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                yield node, module_level
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
                yield from walk(ast.iter_child_nodes(node), False)
            elif isinstance(node, ast.If) and _is_type_checking(node.test):
                continue
            else:
                yield from walk(ast.iter_child_nodes(node), module_level)

    yield from walk(tree.body, True)


def _resolve(name: str, node, modules: dict) -> list[tuple[str, list[str]]]:
    """``[(target module, [names])]`` that one import statement in module ``name`` refers to."""
    is_pkg = modules[name].name == "__init__.py"
    if isinstance(node, ast.Import):
        return [(alias.name, []) for alias in node.names]
    if node.level:
        base = name.split(".") if is_pkg else name.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        mod = ".".join(base + ([node.module] if node.module else []))
    else:
        mod = node.module or ""
    names = [alias.name for alias in node.names]
    plain = [n for n in names if f"{mod}.{n}" not in modules]
    out = [(mod, plain)] if plain else []  # ``from pkg import submodule`` names only the submodule
    out += [(f"{mod}.{n}", []) for n in names if f"{mod}.{n}" in modules]
    return out


def build(root: pathlib.Path = ROOT, package: str = PACKAGE):
    """``(modules, edges, lazy, external)``.

    edges : {module: {target module: line}} of module-level imports within the package
    lazy : [(module, line, target, names)] of function-level imports within the package
    external : {module: set of top-level third-party packages imported at module level}
    """
    modules = module_files(root, package)
    edges = {m: {} for m in modules}
    lazy = []
    external = {m: set() for m in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node, module_level in _imports(tree):
            for target, names in _resolve(name, node, modules):
                if target.split(".")[0] != package:
                    if module_level:
                        external[name].add(target.split(".")[0])
                    continue
                # the nearest module (an import of an attribute of a module names that module)
                while target not in modules and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target == name:
                    continue
                if module_level:
                    edges[name].setdefault(target, node.lineno)
                else:
                    lazy.append((name, node.lineno, target, names))
    return modules, edges, lazy, external


def cycles(edges: dict) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(edges):
        if v not in index:
            strong(v)
    return sorted(out)


def a_cycle(component: list[str], edges: dict) -> list[str]:
    """One closed path through the first module of a strongly connected component."""
    start = component[0]
    inside = set(component)
    # breadth-first search back to start
    prev = {start: None}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(edges.get(v, ())):
            if w not in inside:
                continue
            if w == start:
                path = [v]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                return [start] + path[::-1][1:] + [start] if len(path) > 1 else [start, v, start]
            if w not in prev:
                prev[w] = v
                queue.append(w)
    return component


def heavy_closure(edges: dict, external: dict) -> dict[str, set]:
    """Per module, the heavy third-party packages that importing it loads (through module-level
    imports, its own and those of its parent packages)."""
    memo = {}

    def visit(m, seen):
        if m in memo:
            return memo[m]
        out = set(external.get(m, ())) & set(HEAVY)
        # importing a.b.c first runs the packages a and a.b
        parents = [m.rsplit(".", i)[0] for i in range(1, m.count(".") + 1)]
        for t in list(edges.get(m, ())) + [p for p in parents if p in edges]:
            if t not in seen:
                out |= visit(t, seen | {t})
        memo[m] = out
        return out

    return {m: visit(m, {m}) for m in edges}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edges", action="store_true", help="list every module-level edge")
    parser.add_argument("--root", type=pathlib.Path, default=ROOT, help="repository root (default: this one)")
    args = parser.parse_args(argv)
    modules, edges, lazy, external = build(args.root.resolve())
    heavy = heavy_closure(edges, external)
    n_edges = sum(len(t) for t in edges.values())
    print(f"{len(modules)} modules, {n_edges} module-level import edges within {PACKAGE}")
    if args.edges:
        for m in sorted(edges):
            for t, line in sorted(edges[m].items()):
                print(f"  {m}:{line} -> {t}")
    found = cycles(edges)
    print(f"\nmodule-level import cycles: {len(found)}")
    for comp in found:
        print("  " + " -> ".join(a_cycle(comp, edges)) + f"   (component: {', '.join(comp)})")
    print(f"\nfunction-level imports within {PACKAGE}: {len(lazy)}")
    n_light = 0
    for m, line, target, names in sorted(lazy):
        deferred = sorted(heavy.get(target, set()) - heavy.get(m, set()))
        n_light += not deferred
        why = f"defers {', '.join(deferred)}" if deferred else "defers nothing heavy"
        what = f" ({', '.join(names)})" if names else ""
        print(f"  {m}:{line} -> {target}{what}   [{why}]")
    print(f"  ({n_light} defer nothing heavy)")
    # a function-level import that defers nothing heavy only hides a cycle (or nothing)
    light = {m: dict(t) for m, t in edges.items()}
    for m, line, target, _ in lazy:
        if not heavy.get(target, set()) - heavy.get(m, set()):
            light[m].setdefault(target, line)
    hidden = cycles(light)
    print(f"\ncycles once function-level imports that defer nothing heavy count too: {len(hidden)}")
    for comp in hidden:
        print("  " + " -> ".join(a_cycle(comp, light)) + f"   (component: {', '.join(comp)})")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
