"""The README quickstart and the docstring examples run as written (doctest)."""

import doctest
import importlib
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODULES = [
    "bayesgmm.estimator",
    "bayesgmm.core.prior",
    "bayesgmm.core.logdensity",
    "bayesgmm.datasets",
    "bayesgmm.datasets._csv",
    "bayesgmm.datasets._synthetic",
]


def test_readme_examples_run():
    result = doctest.testfile(str(ROOT / "README.md"), module_relative=False, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 5
    assert result.failed == 0


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
