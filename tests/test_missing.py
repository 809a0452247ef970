"""Missing values (NaN cells) in EM, scoring and imputation (issue 14).

Oracles: scipy's multivariate normal on each row's observed cells (the marginal density), a
direct optimiser of the observed-data log-likelihood (EM's ML limit), the complete-data code
(identical results without NaN), integer weights as repeated rows, and known parameters
(recovery, errors shrinking with N; imputation against column means).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.stats import multivariate_normal

from bayesgmm import GaussianMixture
from bayesgmm.core import missing as M
from bayesgmm.core.density import estep_stats, log_likelihood, to_blocks
from bayesgmm.core.logdensity import log_posterior
from bayesgmm.core.prior import Prior
from bayesgmm.infer.map_em import fit_map

from conftest import full_covs, match_components, params_from_cov, sample_mixture, true_mixture

TYPES = ["full", "tied", "diag", "spherical"]


def _remove(x, frac, seed):
    """``x`` with a fraction of its cells set to NaN completely at random (every row keeps one)."""
    rng = np.random.default_rng(seed)
    xm = np.array(x, np.float64)
    gone = rng.uniform(size=x.shape) < frac
    keep = rng.integers(x.shape[1], size=x.shape[0])
    gone[np.arange(x.shape[0]), keep] = False
    xm[gone] = np.nan
    return xm


def _mixture(ct, k=2, d=3, n=400, seed=0, separation=5.0):
    w, m, c = true_mixture(ct, k, d, seed, separation=separation)
    cf = full_covs(ct, c, k, d)
    x, z = sample_mixture(w, m, cf, n, seed + 1)
    return (w, m, c, cf), x, z


def _scipy_marginal(x, w, means, covs_full):
    """Per row, ``log sum_k w_k N(x_o | mu_k,o, Sigma_k,oo)`` by scipy (0 for an empty row)."""
    out = np.zeros(len(x))
    for i, row in enumerate(x):
        o = ~np.isnan(row)
        if o.any():
            dens = [w[k] * multivariate_normal(means[k][o], covs_full[k][np.ix_(o, o)]).pdf(row[o]) for k in range(len(w))]
            out[i] = np.log(np.sum(dens))
    return out


# ---------------------------------------------------------------------------------------------
# the masked algebra
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ct", TYPES)
def test_masked_log_likelihood_is_scipy_marginal_density(ct, x64):
    (w, m, c, cf), x, _ = _mixture(ct, k=3, d=4, n=60, seed=3)
    xm = _remove(x, 0.35, seed=4)
    xm[0] = x[0]  # a complete row
    p = jax.tree_util.tree_map(jnp.asarray, params_from_cov(w, m, c, ct))
    masked = jax.jit(M.masked_log_likelihood)  # one program (op by op, each operation compiles)
    got = np.asarray(masked(p, jnp.asarray(xm)))
    np.testing.assert_allclose(got, _scipy_marginal(xm, w, m, cf), rtol=1e-10, atol=1e-10)
    # complete rows: the complete-data density
    np.testing.assert_allclose(
        np.asarray(masked(p, jnp.asarray(x))), np.asarray(jax.jit(log_likelihood)(p, jnp.asarray(x))),
        rtol=1e-12, atol=1e-12,
    )


@pytest.mark.parametrize("ct", TYPES)
def test_expected_statistics_of_complete_blocks_are_the_estep_statistics(ct, x64):
    (w, m, c, _), x, _ = _mixture(ct, k=3, d=3, n=70, seed=5)
    p = jax.tree_util.tree_map(jnp.asarray, params_from_cov(w, m, c, ct))
    w = np.linspace(0.5, 2, 70)
    xb, wb = to_blocks(jnp.asarray(x), jnp.asarray(w), 32)
    mb, mwb = M.pattern_blocks(x, w, 32, np.float64)  # one pattern: every cell observed
    for a, b in zip(jax.jit(estep_stats)(p, xb, wb), jax.jit(M.estep_stats_missing)(p, mb, mwb)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("ct", TYPES)
def test_expected_statistics_are_conditional_moments(ct, x64):
    """t1 and t2 equal the responsibilities-weighted conditional first and second moments of the
    rows, computed directly with numpy from the conditional Gaussians (Schur complements)."""
    (w, m, c, cf), x, _ = _mixture(ct, k=2, d=3, n=25, seed=8)
    xm = _remove(x, 0.4, seed=9)
    p = jax.tree_util.tree_map(jnp.asarray, params_from_cov(w, m, c, ct))
    stats = M.estep_stats_missing(p, *M.pattern_blocks(xm, np.ones(25), 4, np.float64))
    logp = np.zeros((25, 2))
    mom1 = np.zeros((25, 2, 3))
    mom2 = np.zeros((25, 2, 3, 3))
    for i, row in enumerate(xm):
        o = ~np.isnan(row)
        for k in range(2):
            s = cf[k]
            mu = m[k].copy()
            cm = mu.copy()
            cc = np.zeros((3, 3))
            so = np.linalg.inv(s[np.ix_(o, o)])
            cm[~o] = mu[~o] + s[np.ix_(~o, o)] @ so @ (row[o] - mu[o])
            cm[o] = row[o]
            cc[np.ix_(~o, ~o)] = s[np.ix_(~o, ~o)] - s[np.ix_(~o, o)] @ so @ s[np.ix_(o, ~o)]
            logp[i, k] = np.log(w[k]) + multivariate_normal(mu[o], s[np.ix_(o, o)]).logpdf(row[o])
            mom1[i, k] = cm - mu
            mom2[i, k] = np.outer(cm - mu, cm - mu) + cc
    r = np.exp(logp - np.logaddexp.reduce(logp, axis=1, keepdims=True))
    u = np.linalg.cholesky(cf)  # whitening of the statistics: y = U^-1 (x - mu)
    ui = np.linalg.inv(u)
    t1 = np.einsum("nk,kde,nke->kd", r, ui, mom1)
    t2 = np.einsum("nk,kad,nkde,kbe->kab", r, ui, mom2, ui)
    np.testing.assert_allclose(np.asarray(stats.nk), r.sum(0), rtol=1e-10)
    np.testing.assert_allclose(np.asarray(stats.t1), t1, rtol=1e-9, atol=1e-10)
    want_t2 = {"full": t2, "tied": t2.sum(0), "diag": np.diagonal(t2, axis1=1, axis2=2),
               "spherical": np.trace(t2, axis1=1, axis2=2)}[ct]
    np.testing.assert_allclose(np.asarray(stats.t2), want_t2, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(float(stats.loglik), np.logaddexp.reduce(logp, axis=1).sum(), rtol=1e-12)


def test_conditional_mean_and_imputation_draws(x64):
    """The conditional mean is the mixture of the Schur-complement regressions, and the mean and
    covariance of many imputation draws match it within Monte Carlo error."""
    ct = "full"
    (w, m, c, cf), x, _ = _mixture(ct, k=2, d=3, n=12, seed=11, separation=2.0)
    xm = _remove(x, 0.4, seed=12)
    p = jax.tree_util.tree_map(jnp.asarray, params_from_cov(w, m, c, ct))
    cm = np.asarray(M.conditional_mean(p, jnp.asarray(xm)))
    obs = ~np.isnan(xm)
    np.testing.assert_array_equal(cm[obs], xm[obs])
    n_draws = 20000
    keys = jax.random.split(jax.random.key(0), n_draws)
    draws = np.asarray(jax.jit(jax.vmap(lambda k: M.impute_draw(k, p, jnp.asarray(xm))))(keys))
    assert np.all(draws[:, obs] == xm[obs])
    miss = ~obs
    se = draws.std(0)[miss] / np.sqrt(n_draws)
    z = (draws.mean(0)[miss] - cm[miss]) / se
    assert np.max(np.abs(z)) < 4.5, z


# ---------------------------------------------------------------------------------------------
# EM
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ct", TYPES)
def test_no_missing_cells_give_identical_fits(ct):
    _, x, _ = _mixture(ct, n=300, seed=13)
    a = GaussianMixture(2, covariance_type=ct, random_state=0).fit(x)
    b = GaussianMixture(2, covariance_type=ct, random_state=0, missing="marginalize").fit(x)
    for name in ("weights_", "means_", "covariances_", "lower_bounds_"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(a.score_samples(x), b.score_samples(x))
    np.testing.assert_array_equal(b.impute(x), x)


@pytest.mark.parametrize("ct", TYPES)
@pytest.mark.parametrize("prior", [None, Prior()], ids=["ml", "map"])
def test_em_with_missing_cells_is_monotone_and_reports_the_observed_objective(ct, prior, x64):
    _, x, _ = _mixture(ct, n=300, seed=17)
    xm = _remove(x, 0.3, seed=18)
    w = np.random.default_rng(0).uniform(0.5, 2.0, len(x))
    r = fit_map(0, xm, n_components=2, covariance_type=ct, prior=prior, sample_weight=w, tol=1e-9, max_iter=300)
    h = r.history
    assert r.converged and np.all(np.diff(h) >= -1e-9 * np.abs(h[1:])), np.diff(h).min()
    p = jax.tree_util.tree_map(jnp.asarray, r.params)
    want = float(log_posterior(p, xm, r.prior, w))
    np.testing.assert_allclose(r.objective, want, rtol=1e-9)
    ll = float(log_posterior(p, xm, None, w))
    np.testing.assert_allclose(r.log_likelihood, ll, rtol=1e-9)


def test_integer_weights_act_as_repeated_rows_with_missing_cells(x64):
    _, x, _ = _mixture("full", n=120, seed=19)
    xm = _remove(x, 0.3, seed=20)
    reps = np.random.default_rng(1).integers(1, 4, len(x))
    kw = dict(n_components=2, covariance_type="full", prior=Prior(), tol=1e-10, max_iter=500)
    # the same start for both: the weighted fit's means as means_init
    a = fit_map(0, xm, sample_weight=reps.astype(float), **kw)
    b = fit_map(0, np.repeat(xm, reps, axis=0), means_init=a.params.means, **kw)
    # both converged at tol 1e-10 (measured difference 3.7e-7); a weight handled as anything but a
    # repeat count moves the means by orders of magnitude more
    np.testing.assert_allclose(b.params.means, a.params.means, atol=5e-6)
    np.testing.assert_allclose(b.objective, a.objective, rtol=1e-9)


@pytest.mark.parametrize("ct", TYPES)
def test_ml_em_with_missing_cells_reaches_the_direct_optimum(ct, x64):
    """EM's ML limit maximises the observed-data log-likelihood: a direct optimiser (BFGS on the
    masked log-likelihood, started at EM's answer) finds nothing higher, and the EM point is a
    stationary point (gradient ~ 0)."""
    _, x, _ = _mixture(ct, n=250, seed=21)
    xm = _remove(x, 0.25, seed=22)
    r = fit_map(0, xm, n_components=2, covariance_type=ct, prior=None, reg_covar=0.0, tol=1e-12, max_iter=2000)
    p0 = jax.tree_util.tree_map(jnp.asarray, r.params)
    xj = jnp.asarray(xm)

    # an unconstrained parametrisation: log-weights, means, log-scales and a free lower factor
    from conftest import unconstrained, value_and_grad_for_scipy

    v0, unpack = unconstrained(p0)
    fg = value_and_grad_for_scipy(lambda v: -jnp.sum(M.masked_log_likelihood(unpack(v), xj)))
    assert np.max(np.abs(fg(np.asarray(v0))[1])) < 1e-3
    res = minimize(fg, np.asarray(v0), jac=True, method="BFGS", options={"gtol": 1e-9, "maxiter": 500})
    assert -res.fun <= r.log_likelihood + 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("ct", ["full", "diag"])
def test_recovery_with_missing_cells_errors_shrink_with_n(ct):
    errors = []
    for n in (400, 4000):
        (w, m, c, cf), x, _ = _mixture(ct, k=3, d=3, n=n, seed=23, separation=6.0)
        xm = _remove(x, 0.3, seed=24)
        gm = GaussianMixture(3, covariance_type=ct, missing="marginalize", random_state=0, n_init=2).fit(xm)
        perm = match_components(gm.means_, m)
        cov_est = full_covs(ct, gm.covariances_, 3, 3)[perm]
        errors.append((np.abs(gm.means_[perm] - m).max(), np.abs(cov_est - cf).max(), np.abs(gm.weights_[perm] - w).max()))
    small, large = np.asarray(errors)
    assert np.all(large < small), errors
    # measured at N = 4000: means 0.078 / 0.075, covariances 0.135 / 0.169, weights 0.006 / 0.007
    # (full / diag); a mean's standard error there is about 0.05, a weight's 0.0075
    assert large[0] < 0.12 and large[1] < 0.22 and large[2] < 0.02, errors


@pytest.mark.parametrize("frac", [0.1, 0.4])
def test_imputation_beats_column_means(frac):
    # two clusters apart in every feature, correlated features within each: the observed cells
    # tell the cluster and, through the correlations, the missing ones
    cov = 0.3 * np.eye(3) + 0.7
    x, _ = sample_mixture(np.array([0.5, 0.5]), np.array([[0.0, 0, 0], [4, 4, 4]]), np.stack([cov, cov]), 600, 25)
    xm = _remove(x, frac, seed=26)
    gm = GaussianMixture(2, missing="marginalize", random_state=0).fit(xm)
    filled = gm.impute(xm)
    miss = np.isnan(xm)
    assert not np.isnan(filled).any()
    np.testing.assert_array_equal(filled[~miss], xm[~miss])
    rmse = np.sqrt(np.mean((filled[miss] - x[miss]) ** 2))
    col = np.broadcast_to(np.nanmean(xm, axis=0), x.shape)[miss]
    rmse_mean = np.sqrt(np.mean((col - x[miss]) ** 2))
    # measured: 0.62 vs 2.29 (10%) and 0.70 vs 2.29 (40%); the within-cluster conditional sd of a
    # cell is 0.65 given two observed cells and 0.71 given one
    assert rmse < 0.4 * rmse_mean, (rmse, rmse_mean)


# ---------------------------------------------------------------------------------------------
# scoring and the estimator
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ct", TYPES)
def test_scoring_rows_with_missing_cells_is_the_marginal_density(ct):
    _, x, _ = _mixture(ct, n=300, seed=27)
    xm = _remove(x, 0.25, seed=28)
    gm = GaussianMixture(2, covariance_type=ct, missing="marginalize", random_state=0).fit(xm)
    cf = full_covs(ct, gm.covariances_, 2, 3)
    want = _scipy_marginal(xm, gm.weights_, gm.means_, cf)
    np.testing.assert_allclose(gm.score_samples(xm), want, rtol=2e-4, atol=2e-4)
    np.testing.assert_allclose(gm.score(xm) * len(xm), gm.map_result_.log_likelihood, rtol=1e-4)
    proba = gm.predict_proba(xm)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-5)
    assert np.array_equal(gm.predict(xm), proba.argmax(1))
    n_par = gm._n_parameters()
    np.testing.assert_allclose(gm.bic(xm), -2 * want.sum() + n_par * np.log(len(xm)), rtol=1e-4)
    np.testing.assert_allclose(gm.aic(xm), -2 * want.sum() + 2 * n_par, rtol=1e-4)


def test_missing_option_errors_name_the_fix():
    x = np.random.default_rng(0).normal(size=(50, 2))
    xm = x.copy()
    xm[3, 1] = np.nan
    with pytest.raises(ValueError, match="missing='marginalize'"):
        GaussianMixture(2).fit(xm)
    with pytest.raises(ValueError, match="missing='bogus' is not supported"):
        GaussianMixture(2, missing="bogus").fit(x)
    empty = xm.copy()
    empty[[5, 7]] = np.nan
    with pytest.raises(ValueError, match=r"2 row\(s\) with every cell missing \(NaN\): rows 5, 7"):
        GaussianMixture(2, missing="marginalize").fit(empty)
    inf = xm.copy()
    inf[4, 0] = np.inf
    with pytest.raises(ValueError, match="infinite"):
        GaussianMixture(2, missing="marginalize").fit(inf)
    gm = GaussianMixture(2, random_state=0).fit(x)
    with pytest.raises(ValueError, match="impute needs missing='marginalize'"):
        gm.impute(xm)
    gm2 = GaussianMixture(2, random_state=0, missing="marginalize").fit(xm)
    with pytest.raises(ValueError, match="partial_fit.*complete chunks"):
        gm2.partial_fit(xm)
    assert GaussianMixture(missing="marginalize").__sklearn_tags__().input_tags.allow_nan
    assert not GaussianMixture().__sklearn_tags__().input_tags.allow_nan


def test_missing_fit_is_reproducible_and_saved(tmp_path):
    import bayesgmm

    _, x, _ = _mixture("full", n=200, seed=29)
    xm = _remove(x, 0.2, seed=30)
    a = GaussianMixture(2, missing="marginalize", random_state=3, n_init=2).fit(xm)
    b = GaussianMixture(2, missing="marginalize", random_state=3, n_init=2).fit(xm)
    np.testing.assert_array_equal(a.means_, b.means_)
    a.save(tmp_path / "gm.npz")
    c = bayesgmm.load(tmp_path / "gm.npz")
    assert c.missing == "marginalize"
    np.testing.assert_array_equal(c.impute(xm), a.impute(xm))
    np.testing.assert_array_equal(c.score_samples(xm), a.score_samples(xm))


def test_select_with_missing_cells_prefers_the_true_number_of_components():
    import bayesgmm

    _, x, _ = _mixture("full", k=2, d=3, n=300, seed=31, separation=6.0)
    xm = _remove(x, 0.25, seed=32)
    sel = bayesgmm.select(xm, n_components=[1, 2, 3], covariance_types=["full"], random_state=0,
                          progress_bar=False, missing="marginalize")
    assert sel.best_params_ == {"n_components": 2, "covariance_type": "full"}
    assert not sel.table["error"].astype(bool).any()
