"""The prior's covariance factor exp(-tr(Psi Sigma^-1) / 2) (``Prior.covariance_floor``): the MAP
exists when a component holds fewer points than features, the factor is exactly what EM maximises
and what a direct optimiser finds, and ``covariance_floor=0`` is the model without it."""

import warnings

import jax
import numpy as np
import pytest
from conftest import unconstrained, value_and_grad_for_scipy
from scipy.optimize import minimize

from bayesgmm import GaussianMixture, GMMParams, Prior, log_posterior
from bayesgmm.core.programs import run_em
from bayesgmm.core.prior import log_prior, resolve_prior
from bayesgmm.infer import fit_map


def _few_points_per_component(seed=0, k=3, per=5, d=7):
    """``k`` separated clusters of ``per < d`` points each in ``d`` dimensions."""
    rng = np.random.default_rng(seed)
    centres = 8.0 * rng.normal(size=(k, d))
    return np.vstack([c + rng.normal(size=(per, d)) for c in centres])


def _floor_eigenvalues(cov, psi):
    """Generalised eigenvalues of each covariance against diag(psi), ascending, shape (K, D)."""
    r = 1.0 / np.sqrt(psi)
    return np.linalg.eigvalsh(r[:, None] * cov * r[None, :])


# ---------------------------------------------------------------------------------------------
# the prior's definition
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad, err", [(-1e-3, ValueError), (np.inf, ValueError), ("1e-4", TypeError),
                                      ([1e-4, 1e-4], TypeError), (True, TypeError)])
def test_covariance_floor_is_validated(bad, err):
    with pytest.raises(err, match=r"covariance_floor"):
        Prior(covariance_floor=bad)


def test_floor_is_resolved_per_feature_variance_and_mapped_by_standardisation():
    x = _few_points_per_component() * np.array([1.0, 10.0, 1e-3, 1.0, 2.0, 1.0, 1.0])
    w = np.random.default_rng(1).uniform(0.5, 2.0, x.shape[0])
    rp = resolve_prior(Prior(covariance_floor=0.01), x, 3, "full", w, "host")
    mean = np.average(x, axis=0, weights=w)
    np.testing.assert_allclose(rp.covariance_floor, 0.01 * np.average((x - mean) ** 2, axis=0, weights=w),
                               rtol=1e-10)
    shift, scale = np.ones(7), np.linspace(0.5, 3.0, 7)
    np.testing.assert_allclose(rp.affine(shift, scale).covariance_floor, rp.covariance_floor / scale**2)
    assert Prior().covariance_floor == 1e-4


# ---------------------------------------------------------------------------------------------
# the MAP exists where it did not
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ct", ["full", "diag"])
def test_map_exists_when_components_hold_fewer_points_than_features(ct):
    """5 points per component in 7 dimensions: with the floor the fit succeeds and every
    covariance eigenvalue is bounded below by the floor (about Psi / n_k)."""
    x = _few_points_per_component()
    gm = GaussianMixture(3, covariance_type=ct, random_state=0, max_iter=500).fit(x)
    assert gm.converged_ and gm.collapsed_components_.size == 0 and gm.n_empty_ == 0
    assert np.all(np.isfinite(gm.covariances_)) and np.all(np.isfinite(gm.score_samples(x)))
    np.testing.assert_allclose(np.sort(gm.weights_ * 15), [5, 5, 5], atol=1e-3)  # the three clusters
    psi = gm.map_result_.prior.covariance_floor
    cov = gm.covariances_ if ct == "full" else np.stack([np.diag(c) for c in gm.covariances_])
    lam = _floor_eigenvalues(cov, psi)
    nk = gm.weights_ * x.shape[0]
    d = x.shape[1]
    # a direction without data gets about Psi / n_k: the prior's terms move it by a few counts
    assert np.all(lam[:, 0] * (nk + d + 2) >= 1.0), lam[:, 0] * nk
    if ct == "full":
        # the scatter about the mean (which the mean's prior pulls a little off the points) spans
        # n_k = 5 directions: in the other d - n_k = 2 the covariance is the floor alone
        assert np.all(lam[:, 1] * nk < 3.0), lam[:, :3] * nk[:, None]
        assert np.all(lam[:, 2] * nk > 10.0), lam[:, :3] * nk[:, None]


def test_without_the_floor_the_log_posterior_grows_without_bound(x64):
    """Why the floor: 5 points per component in 7 dimensions. Along the path Sigma_k(t) = S_k / n_k
    + t I (S_k the scatter of each cluster's points about their mean), the log posterior of the
    prior without the floor grows without bound as t -> 0 (the likelihood gains n_k/2 log(1/t) in
    each of the d - n_k + 1 = 3 data-free directions, the LKJ density loses only a power of t):
    no MAP exists. With the default floor it falls, like -tr(Psi) / (2 t)."""
    x = _few_points_per_component()
    groups = x.reshape(3, 5, 7)
    means = groups.mean(axis=1)
    scatter = np.einsum("kni,knj->kij", groups - means[:, None], groups - means[:, None]) / 5

    def lp(t, prior):
        p = GMMParams.from_covariances(np.full(3, 1 / 3), means, scatter + t * np.eye(7), "full")
        return float(log_posterior(p, x, prior))

    ts = [1e-3, 1e-5, 1e-7, 1e-9]
    off = np.array([lp(t, Prior(covariance_floor=0.0)) for t in ts])
    on = np.array([lp(t, Prior()) for t in ts])
    assert np.all(np.isfinite(off)) and np.all(np.diff(off) > 3 * 3 * np.log(100) * 0.9), off
    assert np.all(np.diff(on) < 0) and on[-1] < on[0] - 1e3, on


# ---------------------------------------------------------------------------------------------
# EM maximises exactly the log posterior with the factor
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical"])
def test_floor_map_is_log_posterior_and_cannot_be_improved_by_a_direct_optimiser(ct, x64):
    """A floor of 0.05 of the variance on 4 points per component in 5 dimensions: the factor shapes
    the MAP; EM's objective is ``log_posterior`` and L-BFGS from the EM answer finds nothing better."""
    x = _few_points_per_component(seed=2, k=2, per=4, d=5)
    prior = Prior(covariance_floor=0.05)
    res = fit_map(jax.random.key(0), x, n_components=2, covariance_type=ct, prior=prior, tol=1e-12,
                  max_iter=5000)
    assert res.converged
    assert res.objective == pytest.approx(float(log_posterior(res.params, x, prior)), rel=1e-12)
    h = res.history
    assert np.all(np.diff(h) >= -1e-10 * np.abs(h[1:]))
    flat, unpack = unconstrained(res.params)
    opt = minimize(value_and_grad_for_scipy(lambda v: -log_posterior(unpack(v), x, prior)), np.asarray(flat),
                   jac=True, method="L-BFGS-B", options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-10})
    assert res.objective - (-opt.fun) > -1e-7 * abs(res.objective), (res.objective, -opt.fun)
    # the factor matters here: the same parameters without it have a different density
    rp = resolve_prior(prior, x, 2, ct, dtype=np.float64)
    gap = float(log_prior(res.params, rp) - log_prior(res.params, rp.replace(covariance_floor=None)))
    assert gap < -1.0


def test_floor_zero_is_the_model_without_the_factor(x64):
    """``covariance_floor=0`` gives exactly (bit for bit) the density of the prior without the
    factor (``ResolvedPrior.covariance_floor=None``: the code path of the model before the factor
    existed), and its EM run to float64 rounding: the two are different compiled programs (one
    adds the zero floor), whose fusions XLA may choose differently (from the same state, an
    iteration's covariances differed by 1.4e-15)."""
    from bayesgmm.core.density import to_blocks

    x = _few_points_per_component(seed=3, k=2, per=30, d=3)
    zx = (x - x.mean(0)) / x.std(0)
    xb, wb = to_blocks(jax.numpy.asarray(zx), jax.numpy.ones(len(zx)), 64)
    halves = zx.reshape(2, 30, 3)
    cov = np.stack([np.cov(h.T) for h in halves])
    layouts = {"full": cov, "tied": cov.mean(0), "diag": cov.diagonal(axis1=1, axis2=2),
               "spherical": cov.diagonal(axis1=1, axis2=2).mean(1)}
    for ct, c in layouts.items():
        zero = resolve_prior(Prior(covariance_floor=0.0), zx, 2, ct, dtype=np.float64)
        assert np.all(zero.covariance_floor == 0)
        old = zero.replace(covariance_floor=None)
        p = GMMParams.from_covariances([0.4, 0.6], halves.mean(1), c, ct)
        assert float(log_prior(p, zero)) == float(log_prior(p, old))
    for ct in ("full",):  # the EM run (each prior structure compiles its own programs)
        zero = resolve_prior(Prior(covariance_floor=0.0), zx, 2, ct, dtype=np.float64)
        old = zero.replace(covariance_floor=None)
        start = fit_map(jax.random.key(1), zx, n_components=2, covariance_type=ct, prior=Prior(),
                        init_params_method="random", max_iter=1).params
        start = jax.tree_util.tree_map(lambda a: jax.numpy.asarray(a)[None], start)
        # the first iterations, before the line search's choices can part: rounding only
        # (measured: identical through 5 iterations, 1.4e-15 after the sixth)
        a, _ = run_em(start, xb, wb, zero, np.zeros(3), 1e-10, 3)
        b, _ = run_em(start, xb, wb, old, np.zeros(3), 1e-10, 3)
        for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
            np.testing.assert_allclose(u, v, rtol=1e-13, atol=1e-15)
        a, ia = run_em(start, xb, wb, zero, np.zeros(3), 1e-10, 50)
        b, ib = run_em(start, xb, wb, old, np.zeros(3), 1e-10, 50)
        for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
            # measured: 5.5e-10 relative. The objective is flat at the top, and the covariance
            # step's line search makes discrete choices that rounding can flip (see test_em); the
            # default floor (1e-4 of each variance) moves the parameters by ~1e-4
            np.testing.assert_allclose(u, v, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(ia.history, ib.history, rtol=1e-13)  # measured: 1.1e-14
        np.testing.assert_array_equal(ia.n_iter, ib.n_iter)
        assert int(ia.n_iter[0]) > 5  # a real run, not a single step


def test_default_floor_moves_a_well_supported_fit_by_about_floor_over_n_k(x64):
    """Components of 200 points: the default floor (1e-4) changes covariances by about
    1e-4 * var / n_k (relative 1e-6 here) and the log-likelihood by far less than a nat."""
    rng = np.random.default_rng(4)
    x = np.vstack([rng.normal(-3.0, 1.0, (200, 2)), rng.normal(3.0, 0.5, (200, 2))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        on = GaussianMixture(2, random_state=0, tol=1e-10, max_iter=1000).fit(x)
        off = GaussianMixture(2, random_state=0, tol=1e-10, max_iter=1000, prior=Prior(covariance_floor=0.0)).fit(x)
    diff = np.abs(on.covariances_ - off.covariances_).max()
    assert 0 < diff < 10 * 1e-4 * x.var(axis=0).max() / 200
    assert abs(on.score(x) - off.score(x)) * x.shape[0] < 1e-2
