"""Numerics and reproducibility: float32 on ill-conditioned data, the collapse policy, real 1-D
data with ties, bit-identical results across processes on CPU."""

import json
import pathlib
import subprocess
import sys
import warnings

import jax
import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from bayesgmm import CollapsedComponentWarning, GaussianMixture
from bayesgmm.datasets import load_acidity, load_enzyme, load_galaxies

ROOT = pathlib.Path(__file__).resolve().parents[1]


# --- float32 on ill-conditioned data ---------------------------------------------------------------
def _ill_conditioned(seed=0, n=200):
    """Two clusters; within each, correlation 0.9999; the features' scales are 1e6 apart."""
    rng = np.random.default_rng(seed)
    cov = np.array([[1.0, 0.9999], [0.9999, 1.0]])
    z = np.vstack([
        rng.multivariate_normal([-4.0, -4.0], cov, n // 2),
        rng.multivariate_normal([4.0, 4.5], cov, n - n // 2),
    ])
    return z * np.array([1e4, 1e-2]) + np.array([3e4, -1.0])


def _fit(X, ct, prior, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return GaussianMixture(2, covariance_type=ct, prior=prior, random_state=0, tol=1e-5,
                               max_iter=500, **kw).fit(X)


def _positive_definite(gm):
    cov = gm.covariances_
    if gm.covariance_type in ("full", "tied"):
        cov = cov.reshape((-1,) + cov.shape[-2:])
        return np.all(np.isfinite(cov)) and np.all(np.linalg.eigvalsh(cov) > 0)
    return np.all(np.isfinite(cov)) and np.all(cov > 0)


@pytest.mark.slow
@pytest.mark.parametrize("prior", ["default", None], ids=["prior", "ml"])
@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical"])
def test_float32_ill_conditioned_matches_float64(ct, prior):
    X = _ill_conditioned()
    f32 = _fit(X, ct, prior)
    with jax.enable_x64(True):
        f64 = _fit(X, ct, prior)
        ll64 = f64.score_samples(X)
    ll32 = f32.score_samples(X)
    assert _positive_definite(f32) and _positive_definite(f64)
    assert np.all(np.isfinite(ll32))
    assert f32.converged_ and f64.converged_
    total32, total64 = ll32.sum(), ll64.sum()
    assert abs(total32 - total64) <= 1e-3 * abs(total64), (total32, total64)
    # pointwise, the tail densities move by a few 1e-3 (float32 sums over 200 points)
    np.testing.assert_allclose(ll32, ll64, rtol=1e-2, atol=1e-2)


# --- the collapse policy -----------------------------------------------------------------------
def _with_duplicated_cluster(n_dup):
    rng = np.random.default_rng(1)
    X = np.vstack([rng.normal(-3.0, 1.0, (80, 2)), rng.normal(3.0, 1.0, (80, 2))])
    return np.vstack([X, np.repeat([[0.5, -0.3]], n_dup, axis=0)])


def test_ml_collapse_on_duplicated_points_is_pruned_and_reported():
    X = _with_duplicated_cluster(12)
    with pytest.warns(CollapsedComponentWarning, match=r"collapsed.*Pruned \[\d\].*reg_covar") as rec:
        gm = GaussianMixture(3, covariance_type="full", prior=None, random_state=0).fit(X)
    assert "collapsed_components_" in str(rec[0].message)
    (k,) = gm.collapsed_components_
    assert gm.weights_[k] == 0.0
    assert np.all(np.isfinite(gm.covariances_)) and np.all(np.isfinite(gm.weights_))
    assert np.isclose(gm.weights_.sum(), 1.0)
    assert np.all(gm.predict(X) != k)  # pruned: it takes no point
    np.testing.assert_array_equal(gm.predict_proba(X)[:, k], 0.0)
    # the remaining two components are a converged 2-component ML fit: EM started there stays
    w_rest = np.delete(gm.weights_, k)
    rest = dict(weights_init=w_rest / w_rest.sum(), means_init=np.delete(gm.means_, k, axis=0),
                precisions_init=np.delete(gm.precisions_, k, axis=0))
    two = GaussianMixture(2, covariance_type="full", prior=None, tol=1e-8, max_iter=1000, **rest).fit(X)
    np.testing.assert_allclose(two.means_, rest["means_init"], atol=0.05)
    assert abs(two.lower_bound_ - gm.lower_bound_) < 1e-3
    # before pruning, the spike on the duplicated point had the (degenerate) higher likelihood
    assert gm.lower_bound_ * X.shape[0] < np.max(gm.map_result_.restart_objectives)


def test_default_prior_does_not_collapse_on_duplicated_points():
    """A few (3) duplicated points: the log-normal scale prior keeps the MAP (best of 5 starts)
    away from a spike on them. From about 4 exact duplicates on the highest posterior density is a
    spike on them; without the covariance floor its variance shrinks fast with their number (7e-7
    at 4, 7e-11 at 5, for data of variance ~10), with it the spike is a bounded MAP whose variances
    stay above about Psi / n_k."""
    X = _with_duplicated_cluster(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CollapsedComponentWarning)
        gm = GaussianMixture(3, covariance_type="full", n_init=5, random_state=0).fit(X)
    assert gm.collapsed_components_.size == 0 and gm.n_empty_ == 0
    assert _positive_definite(gm)
    assert np.linalg.eigvalsh(gm.covariances_).min() > 1e-3 * X.var(axis=0).min()


def test_spike_on_duplicated_points_is_held_by_the_floor_and_pruned_when_it_is_the_floor_alone():
    """Under the covariance floor a spike on duplicated points is a real (finite) MAP: its variance
    is about Psi / n_k, not 0. On 5 duplicates it still takes spread from the neighbouring points in
    one direction and is kept (a legitimate component of the model); on 12 its covariance is the
    floor alone in every direction -- a point mass that describes no spread of the data -- and the
    collapse policy prunes it, as it prunes an ML collapse."""
    X = _with_duplicated_cluster(5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CollapsedComponentWarning)
        few = GaussianMixture(3, covariance_type="full", random_state=0).fit(X)
    psi = few.map_result_.prior.covariance_floor
    spike = int(np.argmin(few.weights_))
    n_k = few.weights_[spike] * X.shape[0]
    assert abs(n_k - 5) < 0.5  # the component sits on the 5 duplicates
    lam = np.linalg.eigvalsh(few.covariances_[spike] / np.sqrt(np.outer(psi, psi)))  # against Psi
    assert lam[0] * n_k > 1.0 and lam[0] * n_k < 3.0  # floor-dominated in one direction ...
    assert lam[-1] * n_k > 3.0  # ... not in every direction: kept

    many_X = _with_duplicated_cluster(12)
    with pytest.warns(CollapsedComponentWarning, match="Pruned"):
        many = GaussianMixture(3, covariance_type="full", random_state=0).fit(many_X)
    (k,) = many.collapsed_components_
    assert many.weights_[k] == 0.0 and _positive_definite(many)
    # before pruning the spike was a finite MAP with the higher posterior density
    before = np.max(many.map_result_.restart_objectives)
    assert np.isfinite(before) and many.lower_bound_ * many_X.shape[0] < before


def test_every_component_collapsed_is_kept_and_reported():
    X = np.repeat([[1.0, 2.0]], 10, axis=0)
    with pytest.warns(CollapsedComponentWarning, match=r"Kept \[0\]"):
        gm = GaussianMixture(1, prior=None).fit(X)
    np.testing.assert_array_equal(gm.collapsed_components_, [0])
    np.testing.assert_allclose(gm.means_, [[1.0, 2.0]])
    np.testing.assert_allclose(np.diag(gm.covariances_[0]), gm.reg_covar, rtol=1e-3)


# --- real 1-D data with ties ------------------------------------------------------------------------
def _real_1d():
    # the copies embedded in the package (no file outside the repository is read)
    for load in (load_acidity, load_enzyme, load_galaxies):  # acidity and enzyme share compiled programs
        X, _ = load()
        if load is not load_galaxies:  # this copy of galaxies has 82 distinct values
            assert len(np.unique(X)) < 0.9 * len(X)  # many repeated values
        for k in range(1, 7):
            yield X, k


@pytest.mark.slow
def test_real_1d_data_with_ties_fit_with_default_prior():
    """One test for the three data sets, K = 1..6 (so that the compiled programs are shared)."""
    for X, k in _real_1d():
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            gm = GaussianMixture(k, covariance_type="diag", random_state=0).fit(X)
        kinds = {r.category for r in rec}
        assert CollapsedComponentWarning not in kinds, [str(r.message) for r in rec]
        assert gm.converged_ or ConvergenceWarning in kinds
        assert gm.collapsed_components_.size == 0 and gm.n_empty_ == 0
        assert np.all(np.isfinite(gm.covariances_)) and np.all(gm.covariances_ > 0)
        assert np.all(np.isfinite(gm.score_samples(X)))
        # no spike: every component is at least 1e-3 of the data's standard deviation wide
        assert np.sqrt(gm.covariances_.min()) > 1e-3 * X.std()


# --- reproducibility -----------------------------------------------------------------------------
_SCRIPT = r"""
import hashlib, json, sys
import numpy as np
from bayesgmm import GaussianMixture
from bayesgmm.datasets import load_faithful
X, _ = load_faithful()
seed = int(sys.argv[1])
gm = GaussianMixture(2, covariance_type="diag", random_state=seed, n_init=2).fit(X)
post = gm.fit_posterior(X, num_warmup=20, num_samples=10, num_chains=1, progress_bar=False)
h = lambda *a: hashlib.sha256(b"".join(np.ascontiguousarray(x).tobytes() for x in a)).hexdigest()
draws = post.idata.posterior
print(json.dumps({
    "em": h(gm.weights_, gm.means_, gm.covariances_, gm.lower_bounds_),
    "nuts": h(*(np.asarray(draws[v].values) for v in sorted(draws.data_vars))),
}))
"""


def _run_processes(seeds):
    procs = [
        subprocess.Popen([sys.executable, "-c", _SCRIPT, str(s)], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for s in seeds
    ]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr[-2000:]
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


@pytest.mark.slow
def test_same_seed_is_bit_identical_across_processes():
    a, b = _run_processes([7, 7])
    assert a == b  # EM parameters and NUTS draws, byte for byte


def test_different_seeds_give_different_starts():
    X = _with_duplicated_cluster(0)
    starts = []
    for seed in (0, 1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            gm = GaussianMixture(3, covariance_type="diag", init_params="random_from_data",
                                 max_iter=1, random_state=seed).fit(X)
        starts.append(gm.map_result_.history[0])
    assert starts[0] != starts[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        again = GaussianMixture(3, covariance_type="diag", init_params="random_from_data",
                                max_iter=1, random_state=0).fit(X)
    assert again.map_result_.history[0] == starts[0]
