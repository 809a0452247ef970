"""Public functions that the rest of the suite reaches only through methods, called by name.

``bayesgmm.io.save_estimator`` / ``save_posterior`` (behind ``.save``), ``plot_comparison`` /
``plot_criteria`` (behind ``Comparison.plot`` / ``Selection.plot``), ``full_covariances``,
``density_threshold``, ``load_csv``'s ``CSVData``, ``Posterior.extend`` and
``CollapsedComponentWarning``: each is checked against what it is documented to equal. Small
and fast, so that the Python 3.13 subset (tests/py313_subset.txt) runs it.
"""

import warnings

import numpy as np
import pytest

import bayesgmm
from bayesgmm import CollapsedComponentWarning, GaussianMixture
from bayesgmm.anomaly import density_threshold
from bayesgmm.comparison import full_covariances
from bayesgmm.datasets import CSVData, load_csv, load_faithful
from bayesgmm.io import save_estimator, save_posterior

mpl = pytest.importorskip("matplotlib")
mpl.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bayesgmm.plotting import plot_comparison, plot_criteria  # noqa: E402


@pytest.fixture(scope="module")
def faithful():
    X, names = load_faithful()
    gm = GaussianMixture(2, random_state=0).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short chains: R-hat / ESS warnings
        # the sampler settings of the command line's report (tests/test_cli.py): one NUTS program
        post = gm.fit_posterior(X, num_warmup=100, num_samples=100, num_chains=2, random_state=1,
                                progress_bar=False)
    post.feature_names = list(names)
    return X, gm, post


def test_load_csv_returns_csvdata(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b,c\n1,2,x\n3,4.5,y\n")
    data = load_csv(path, columns="b,a")
    assert isinstance(data, CSVData)
    assert data.feature_names == ("b", "a")
    np.testing.assert_array_equal(data.X, [[2.0, 1.0], [4.5, 3.0]])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_collapsed_component_warning_is_raised_for_a_singular_fit():
    x = np.random.default_rng(0).normal(size=(6, 10))  # fewer points than features
    with pytest.warns(CollapsedComponentWarning):
        gm = GaussianMixture(2, prior=None, random_state=0).fit(x)
    assert gm.collapsed_components_.size > 0 and np.all(np.isfinite(gm.covariances_))


def test_full_covariances_expands_every_covariance_type():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 2, 2))
    full = a @ np.swapaxes(a, -1, -2) + np.eye(2)  # (K, D, D)
    np.testing.assert_array_equal(full_covariances(full, "full", 3, 2), full)
    tied = full_covariances(full[0], "tied", 3, 2)  # (D, D): one matrix for every component
    assert tied.shape == (3, 2, 2) and all(np.array_equal(tied[k], full[0]) for k in range(3))
    var = rng.uniform(0.5, 2.0, size=(3, 2))  # diag: (K, D) variances
    np.testing.assert_array_equal(full_covariances(var, "diag", 3, 2), [np.diag(v) for v in var])
    sph = rng.uniform(0.5, 2.0, size=3)  # spherical: (K,) variances
    np.testing.assert_array_equal(full_covariances(sph, "spherical", 3, 2), [s * np.eye(2) for s in sph])


def test_density_threshold_is_the_percentile_of_score_samples(faithful):
    X, gm, _ = faithful
    t = density_threshold(gm, X, percentile=10)
    assert t == pytest.approx(np.percentile(gm.score_samples(X), 10))
    assert 0.08 <= np.mean(gm.score_samples(X) < t) <= 0.12


def test_save_functions_equal_the_save_methods(tmp_path, faithful):
    X, gm, post = faithful
    save_estimator(gm, tmp_path / "m.npz")
    loaded = bayesgmm.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded.means_, gm.means_)
    np.testing.assert_array_equal(loaded.predict_proba(X), gm.predict_proba(X))
    save_posterior(post, tmp_path / "p.nc")
    restored = bayesgmm.load_posterior(tmp_path / "p.nc")
    np.testing.assert_array_equal(restored.draws.means, post.draws.means)
    np.testing.assert_array_equal(restored.raw_draws.weights, post.raw_draws.weights)
    # the NUTS sampler state that extend continues from survives the round trip
    from bayesgmm.infer.state import flatten_state

    a, b = flatten_state(post.sampler_state), flatten_state(restored.sampler_state)
    assert a.paths == b.paths and all(np.array_equal(u, v) for u, v in zip(a.leaves, b.leaves))


def test_extend_continues_the_chains(faithful):
    X, gm, post = faithful
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        longer = post.extend(20)
    assert longer.draws.means.shape == (2, 120, 2, 2)
    np.testing.assert_array_equal(longer.raw_draws.means[:, :100], post.raw_draws.means)
    assert np.all(np.isfinite(longer.draws.means[:, 100:]))


def test_plot_comparison_and_plot_criteria_equal_the_methods(faithful):
    X, gm, post = faithful
    cmp = bayesgmm.compare(gm, post, partition_loss=None)
    ax = plot_comparison(cmp)
    n_rows = len(cmp.table)
    assert [t.get_text() for t in ax.get_yticklabels()] == list(cmp.table.index) and n_rows == 2 + 4 + 6
    plt.close(ax.figure)
    sel = bayesgmm.select(X, n_components=[1, 2], covariance_types=["full"], progress_bar=False)
    ax = plot_criteria(sel)
    ys = sorted(float(y) for line in ax.get_lines() for y in np.atleast_1d(line.get_ydata()))
    bic = np.sort(sel.table["bic"].to_numpy(float))
    assert all(np.any(np.isclose(ys, b)) for b in bic)  # every BIC of the grid is drawn
    plt.close(ax.figure)
