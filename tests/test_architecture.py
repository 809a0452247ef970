"""The import structure of docs/ARCHITECTURE.md, checked from the sources (tools/import_graph.py)."""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def graph():
    spec = importlib.util.spec_from_file_location("_import_graph", ROOT / "tools" / "import_graph.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    modules, edges, lazy, external = module.build(ROOT)
    heavy = module.heavy_closure(edges, external)
    return module, modules, edges, lazy, heavy


def _light(lazy, heavy):
    """Function-level imports between bayesgmm modules that defer no heavy package."""
    return sorted(
        (m, line, target) for m, line, target, _ in lazy if not heavy.get(target, set()) - heavy.get(m, set())
    )


def test_no_module_level_import_cycle(graph):
    module, _, edges, _, _ = graph
    assert module.cycles(edges) == []


def test_function_level_imports_only_defer_heavy_packages(graph):
    """A function-level import of a light bayesgmm module only hides a cycle; the allowed ones
    defer NumPyro, ArviZ/xarray or matplotlib (import-time cost, tests/test_startup.py)."""
    _, _, _, lazy, heavy = graph
    assert _light(lazy, heavy) == []


def test_the_core_imports_no_numpyro_arviz_sklearn_or_matplotlib(graph):
    module, modules, edges, _, _ = graph
    _, _, _, external = module.build(ROOT)
    for name in modules:
        if name.startswith("bayesgmm.core"):
            assert not external[name] & {"numpyro", "arviz", "sklearn", "matplotlib", "optax", "pandas"}, name
            assert all(t.startswith("bayesgmm.core") for t in edges[name]), (name, sorted(edges[name]))


def test_numpyro_internals_only_in_the_bridge():
    """`numpyro.<sub>._private` names appear only in bayesgmm/infer/_numpyro.py."""
    import re

    pattern = re.compile(r"numpyro(\.\w+)*\._\w+")
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "bayesgmm").rglob("*.py")
        if p.name != "_numpyro.py" and pattern.search(p.read_text())
    ]
    assert offenders == []
