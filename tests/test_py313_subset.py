"""The Python 3.13 CI subset (tests/py313_subset.txt) calls every public function of bayesgmm.

CI runs the whole suite on Python 3.11 and, on Python 3.13 with the newest jax / NumPyro /
ArviZ 1.x, only the tests listed in ``tests/py313_subset.txt`` (see README, "Testing and CI").
This test keeps that list honest: every listed entry exists, and every public name -- the
``__all__`` of the user-facing modules and the public methods of the estimator, the posterior
and the result objects -- is used by the source of at least one listed test.
"""

import ast
import importlib
import inspect
import pathlib
import re

TESTS = pathlib.Path(__file__).resolve().parent
SUBSET = TESTS / "py313_subset.txt"

#: Modules whose ``__all__`` is the public API (the layers below -- core, infer, models -- are
#: reached through these and tested directly by the whole suite on 3.11).
PUBLIC_MODULES = [
    "bayesgmm", "bayesgmm.posterior", "bayesgmm.plotting", "bayesgmm.datasets", "bayesgmm.io",
    "bayesgmm.selection", "bayesgmm.comparison", "bayesgmm.anomaly",
]
#: Classes whose public methods and properties count as public functions.
PUBLIC_CLASSES = [
    "bayesgmm.GaussianMixture", "bayesgmm.Posterior", "bayesgmm.comparison.Comparison",
    "bayesgmm.selection.Selection",
]


def entries():
    lines = [line.strip() for line in SUBSET.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def _source_of(entry):
    """The source text of a listed file, or of the listed test function (``file::test``)."""
    path, _, name = entry.partition("::")
    file = TESTS.parent / path
    assert file.is_file(), f"{SUBSET.name}: no file {path}"
    text = file.read_text()
    if not name:
        return text
    name = name.split("[")[0]
    tree = ast.parse(text)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return ast.get_source_segment(text, node)
    raise AssertionError(f"{SUBSET.name}: no test {name} in {path}")


def public_names():
    names = set()
    for mod in PUBLIC_MODULES:
        module = importlib.import_module(mod)
        for name in module.__all__:
            obj = getattr(module, name)
            if callable(obj) and not name.startswith("_"):
                names.add(name)
    for qual in PUBLIC_CLASSES:
        mod, _, cls = qual.rpartition(".")
        klass = getattr(importlib.import_module(mod), cls)
        for name, member in vars(klass).items():
            if name.startswith("_"):
                continue
            if inspect.isfunction(member) or isinstance(member, (property, classmethod, staticmethod)) or (
                    hasattr(member, "__get__") and hasattr(member, "func")):  # functools.cached_property
                names.add(name)
    return names


def test_the_subset_exists_and_calls_every_public_function():
    listed = entries()
    assert listed, f"{SUBSET.name} lists no tests"
    assert "tests/test_py313_subset.py" in listed
    source = "\n".join(_source_of(e) for e in listed)
    missing = sorted(n for n in public_names() if not re.search(rf"\b{re.escape(n)}\b", source))
    assert not missing, f"no test in {SUBSET.name} uses {missing}"
    # the main job runs in CI on 3.13 as `bayesgmm fit`; its code paths are tested here too
    assert re.search(r"\bmain\(|\"fit\"|'fit'", source)


def test_the_check_sees_a_missing_name():
    assert "plot_trace" in public_names() and "fit_posterior" in public_names()
    assert not re.search(r"\bno_such_public_function\b", "\n".join(_source_of(e) for e in entries()))
