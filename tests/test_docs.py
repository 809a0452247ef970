"""The README quickstart and the docstring examples run as written (doctest).

Every module of the package whose source has a ``>>>`` example is doctested: the modules are found
by walking the package (without importing it), so a new module with examples is covered without
editing this file.
"""

import doctest
import importlib
import importlib.util
import pathlib
import pkgutil

import pytest

import bayesgmm

ROOT = pathlib.Path(__file__).resolve().parents[1]
OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def modules_with_examples(package=bayesgmm):
    """Dotted names of the package's modules whose source contains ``>>>``, sorted."""
    names = [package.__name__]
    names += [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
    found = []
    for name in names:
        origin = importlib.util.find_spec(name).origin
        if origin and origin.endswith(".py") and ">>>" in pathlib.Path(origin).read_text(encoding="utf-8"):
            found.append(name)
    return sorted(found)


MODULES = modules_with_examples()


def test_readme_examples_run():
    result = doctest.testfile(str(ROOT / "README.md"), module_relative=False, optionflags=OPTIONS)
    assert result.attempted > 5
    assert result.failed == 0


def test_modules_with_examples_are_found():
    # the walk reaches subpackages (a walk that found nothing would pass every doctest vacuously)
    assert {"bayesgmm.estimator", "bayesgmm.selection", "bayesgmm.core.prior", "bayesgmm.infer.nuts",
            "bayesgmm.posterior.clusters", "bayesgmm.datasets._csv"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=OPTIONS)
    assert result.attempted > 0, f"{name} has '>>>' outside its docstrings or only skipped examples"
    assert result.failed == 0
