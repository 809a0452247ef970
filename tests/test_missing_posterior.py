"""Missing values (NaN cells, missing at random) in NUTS, VI and the Posterior (issue 14).

* the NumPyro model with ``missing=True`` has exactly the core ``log_posterior`` on data with NaN,
  for every covariance type; the ``lp`` of NUTS and VI draws (full batch and minibatches) is it in
  data units (the Jacobian counts each feature's observed cells);
* the posterior's densities and assignment probabilities of rows with NaN are the per-draw
  marginal densities of the observed cells (scipy brute force);
* ``Posterior.impute`` / ``impute_summary``: shapes, observed cells unchanged, reproducible with
  the seed, and 90% intervals of the imputed cells cover the removed values at their nominal rate
  (one NUTS fit; intervals that carry only the parameters' uncertainty, or a single imputation,
  fail the same bounds);
* a posterior with NaN data saves, loads, extends and resumes.

Sized for CI: one NUTS run (N=300, D=3, K=2, two short chains) shared by the module, small VI
runs; about a minute on one core.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_pivot, posterior_around
from numpyro.infer.util import log_density
from scipy.special import logsumexp
from scipy.stats import binom, multivariate_normal

from bayesgmm import GaussianMixture, Prior, load_posterior, log_posterior
from bayesgmm.core.missing import conditional_mean
from bayesgmm.core.params import COVARIANCE_TYPES, GMMParams
from bayesgmm.core.prior import resolve_prior
from bayesgmm.infer import fit_map
from bayesgmm.infer.nuts import run_nuts
from bayesgmm.infer.svi import run_svi
from bayesgmm.models import gmm_model, sample_from_params
from bayesgmm.posterior import PosteriorWarning

K, D = 2, 3
MISSING_RATE = 0.25


def _mcar(x, rate, seed):
    """``x`` with cells missing completely at random (no row loses every cell), and the mask."""
    rng = np.random.default_rng(seed)
    m = rng.random(x.shape) < rate
    m[m.all(axis=1), 0] = False
    out = x.copy()
    out[m] = np.nan
    return out, m


def _correlated_data(n, seed):
    """Two correlated full-covariance clusters in D=3."""
    rng = np.random.default_rng(seed)
    c1 = np.array([[1.0, 0.8, 0.6], [0.8, 1.0, 0.7], [0.6, 0.7, 1.0]])
    c2 = np.array([[1.0, -0.7, 0.0], [-0.7, 1.0, 0.5], [0.0, 0.5, 1.0]])
    z = rng.random(n) < 0.4
    a = rng.multivariate_normal([-2.0, 1.0, 0.0], c1, n)
    b = rng.multivariate_normal([2.0, -1.0, 1.0], c2, n)
    return np.where(z[:, None], a, b) * [1.0, 10.0, 0.1] + [0.0, 100.0, -5.0]  # unequal scales


def _random_params(ct, seed, n=4):
    """``n`` random parameter values (batch axis first), float64."""
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(K, 1.5), size=n)
    means = rng.normal(size=(n, K, D))
    shape = {"full": (K, D), "diag": (K, D), "tied": (D,), "spherical": (K,)}[ct]
    scales = np.exp(0.4 * rng.normal(size=(n,) + shape))
    corr = None
    if ct in ("full", "tied"):
        a = rng.normal(size=(n,) + shape[:-1] + (D, D + 2))
        cov = a @ np.swapaxes(a, -1, -2) + 0.1 * np.eye(D)
        sd = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
        corr = np.linalg.cholesky(cov / (sd[..., :, None] * sd[..., None, :]))
    return GMMParams(weights, means, scales, corr, ct)


def _marginal_loglik(p: GMMParams, x):
    """Per row, scipy's ``log sum_k w_k N(x_o | mu_k,o, Sigma_k,oo)`` and the responsibilities."""
    cov = np.asarray(p.covariances())
    ct = p.covariance_type
    k = p.n_components
    if ct == "full":
        full = cov
    elif ct == "tied":
        full = np.broadcast_to(cov, (k, D, D))
    elif ct == "diag":
        full = np.stack([np.diag(c) for c in cov])
    else:
        full = np.stack([c * np.eye(D) for c in np.reshape(cov, -1)])
    ll, resp = [], []
    for row in x:
        o = ~np.isnan(row)
        lp = np.array([np.log(p.weights[j]) + multivariate_normal(p.means[j][o], full[j][np.ix_(o, o)]).logpdf(row[o])
                       for j in range(k)])
        ll.append(logsumexp(lp))
        resp.append(np.exp(lp - logsumexp(lp)))
    return np.array(ll), np.array(resp)


def _core_lp(draw: GMMParams, x):
    """The float64 core log posterior (default prior) of one draw on host data ``x`` (jitted:
    the masked pass is slow op by op)."""
    with jax.enable_x64(True):
        draw = draw.astype(jnp.float64)
        return float(jax.jit(lambda p: log_posterior(p, x, Prior()))(draw))


# ----------------------------------------------------------------------------------------------
# the model's density == core log_posterior (every covariance type)
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_model_log_density_is_log_posterior_with_missing_cells(ct):
    with jax.enable_x64(True):
        rng = np.random.default_rng(1)
        x, _ = _mcar(rng.normal(size=(40, D)) * 2.0, 0.3, seed=2)
        x[0] = [np.nan, np.nan, 0.5]  # one observed cell
        w = rng.uniform(0.0, 2.0, x.shape[0])
        prior = resolve_prior(Prior(weight_concentration=1.3, lkj_concentration=1.7), x, K, ct, w)
        params = _random_params(ct, 3)
        kw = dict(x=x, prior=prior, n_components=K, covariance_type=ct, sample_weight=w)
        sites = sample_from_params(params)

        def model_lp(**kw):
            return np.asarray(jax.jit(jax.vmap(lambda sv: log_density(gmm_model, (), kw, sv)[0]))(sites))

        lp = model_lp(**kw, missing=True)
        ref = np.asarray(jax.jit(jax.vmap(lambda p: log_posterior(p, x, prior, w)))(params))  # host x: masked
        assert np.all(np.isfinite(lp))
        np.testing.assert_allclose(lp, ref, rtol=1e-10)
        if ct == "full":  # on complete rows the switch changes only the likelihood's implementation
            xc = np.nan_to_num(x, nan=0.3)
            np.testing.assert_allclose(model_lp(**dict(kw, x=xc), missing=True), model_lp(**dict(kw, x=xc)),
                                       rtol=1e-10)


# ----------------------------------------------------------------------------------------------
# one NUTS posterior of data with missing cells (shared)
# ----------------------------------------------------------------------------------------------
N_NUTS = 300


@pytest.fixture(scope="module")
def nuts_case():
    x = _correlated_data(N_NUTS, seed=0)
    xm, mask = _mcar(x, MISSING_RATE, seed=1)
    gm = GaussianMixture(K, covariance_type="full", missing="marginalize", random_state=0).fit(xm)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PosteriorWarning)  # short chains: ESS below 100 per chain
        post = gm.fit_posterior(xm, num_warmup=200, num_samples=200, num_chains=2, random_state=1)
    return dict(x=x, xm=xm, mask=mask, gm=gm, post=post)


def test_nuts_lp_is_log_posterior_with_missing_cells(nuts_case):
    """``lp`` of a float32 run in data units == the float64 core log posterior on the NaN data
    (the standardisation's Jacobian counts each feature's observed cells only)."""
    post, xm = nuts_case["post"], nuts_case["xm"]
    assert post.info["n_divergent"] == 0
    for c, s in [(0, 0), (1, 57), (1, 199)]:
        np.testing.assert_allclose(post.sample_stats["lp"][c, s], _core_lp(post.raw_draws[c, s], xm), rtol=2e-5)


def test_complete_data_keep_their_program():
    """``missing`` is static: data without NaN run the model with missing=False (its closed-form
    gradient), so their compiled NUTS program is the one they always had."""
    from bayesgmm.infer import nuts, problem

    x = np.random.default_rng(0).normal(size=(30, 2))
    pr = problem._prepare(x, 1, "diag", Prior(), fit_map(jax.random.PRNGKey(0), x, n_components=1,
                          covariance_type="diag", prior=Prior()).params, None, "test")
    assert pr.missing is False and pr.jacobian_weight == 30.0
    cfg = nuts.NUTSConfig(1, "diag", 1, "sequential", 1, 32, False, 0.8, 10)
    assert cfg.missing is False


def test_nuts_refuses_what_cannot_be_marginalised():
    x = np.random.default_rng(0).normal(size=(30, 2))
    init = fit_map(jax.random.PRNGKey(0), x, n_components=1, covariance_type="diag", prior=Prior()).params
    kw = dict(n_components=1, covariance_type="diag", prior=Prior(), init=init)
    bad = x.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match=r"every cell missing.*rows 3"):
        run_nuts(jax.random.PRNGKey(0), bad, **kw)
    bad = x.copy()
    bad[:, 1] = np.nan
    bad[0, 1] = np.inf
    with pytest.raises(ValueError, match="infinite"):
        run_nuts(jax.random.PRNGKey(0), bad, **kw)
    bad[0, 1] = np.nan
    with pytest.raises(ValueError, match=r"column\(s\) with every cell missing"):
        run_svi(jax.random.PRNGKey(0), bad, **kw)


def test_impute_shapes_observed_cells_and_seed(nuts_case):
    post, xm = nuts_case["post"], nuts_case["xm"]
    a = post.impute(n_draws=7, random_state=3)
    assert a.shape == (7, N_NUTS, D) and a.dtype == np.float64 and np.all(np.isfinite(a))
    obs = ~np.isnan(xm)
    assert np.all(a[:, obs] == xm[obs])  # observed cells exactly
    np.testing.assert_array_equal(a, post.impute(n_draws=7, random_state=3))
    b = post.impute(n_draws=7, random_state=4)
    assert not np.array_equal(a[:, ~obs], b[:, ~obs])
    assert np.all(np.std(a[:, ~obs], axis=0) > 0)  # every missing cell varies over the data sets
    # other rows
    c = post.impute(xm[:5], n_draws=7, random_state=3)
    assert c.shape == (7, 5, D) and np.all(c[:, obs[:5]] == xm[:5][obs[:5]]) and np.all(np.isfinite(c))
    # the summary reads the same draws
    t = post.impute_summary(n_draws=7, random_state=3)
    r, col = np.nonzero(np.isnan(xm))
    np.testing.assert_array_equal(t["row"], r)
    np.testing.assert_array_equal(t["column"], col)
    np.testing.assert_allclose(t["mean"], a[:, r, col].mean(axis=0), rtol=1e-12)
    assert np.all(t["lower"] <= t["mean"]) and np.all(t["mean"] <= t["upper"])
    with pytest.raises(ValueError, match="n_draws"):
        post.impute(n_draws=0)


@pytest.mark.slow
def test_imputed_intervals_cover_at_their_nominal_rate(nuts_case):
    """90% intervals of the imputed cells hold about 90% of the removed values (binomial bounds,
    99.8%); the intervals of the conditional mean alone (parameter uncertainty only) and a single
    imputation fall below them, and the conditional intervals are narrower than marginal ones."""
    post, x, xm = nuts_case["post"], nuts_case["x"], nuts_case["xm"]
    t = post.impute_summary(interval=(0.05, 0.95), n_draws=1000, random_state=0)
    r, c = np.asarray(t["row"]), np.asarray(t["column"])
    truth = x[r, c]
    n = truth.size
    assert n > 200
    lo_ok, hi_ok = binom.ppf(0.001, n, 0.9) / n, binom.ppf(0.999, n, 0.9) / n
    covered = np.mean((t["lower"] <= truth) & (truth <= t["upper"]))
    print(f"coverage of 90% intervals: {covered:.3f} over {n} cells (bounds {lo_ok:.3f}, {hi_ok:.3f})")
    assert lo_ok <= covered <= hi_ok

    # the same posterior, but intervals of E[x_m | x_o, theta] over the draws: too narrow
    flat = post.draws.to_numpy()
    rows = np.unique(r)
    shift, scale = post._shift, post._scale
    picks = np.linspace(0, post.n_draws - 1, 200).astype(int)
    draws = flat[picks // post.num_samples, picks % post.num_samples].standardise(shift, scale)
    z = jnp.asarray((xm[rows] - shift) / scale, jnp.float32)
    means = jax.jit(jax.vmap(conditional_mean, (0, None)))(draws.astype(jnp.float32), z)
    means = np.asarray(means, np.float64) * scale + shift  # (S, rows, D)
    pos = np.searchsorted(rows, r)
    lo, hi = np.quantile(means[:, pos, c], [0.05, 0.95], axis=0)
    naive = np.mean((lo <= truth) & (truth <= hi))
    print(f"coverage of 90% intervals of the conditional mean alone: {naive:.3f}")
    assert naive < lo_ok, naive
    single = post.impute(n_draws=1, random_state=0)[0, r, c]  # one imputation: an interval of width 0
    assert np.mean(single == truth) < lo_ok
    # conditioning on the observed cells narrows the intervals (against the marginal 90% range)
    width = np.asarray(t["upper"] - t["lower"])
    marginal = np.quantile(x, 0.95, axis=0) - np.quantile(x, 0.05, axis=0)
    assert np.mean(width / marginal[c]) < 0.9


def test_save_load_extend_resume_with_missing_cells(nuts_case, tmp_path):
    post, xm = nuts_case["post"], nuts_case["xm"]
    path = post.save(tmp_path / "post.nc")
    loaded = load_posterior(path)
    np.testing.assert_array_equal(loaded.x, post.x)  # NaN where it was
    assert np.isnan(loaded.x).sum() == np.isnan(xm).sum()
    np.testing.assert_array_equal(loaded.predict_proba(xm[:20]), post.predict_proba(xm[:20]))
    np.testing.assert_array_equal(loaded.impute(n_draws=3, random_state=0), post.impute(n_draws=3, random_state=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PosteriorWarning)
        longer = loaded.extend(20)
        resumed = nuts_case["gm"].fit_posterior(xm, resume=path, num_samples=20)
    assert longer.num_samples == 220
    np.testing.assert_array_equal(longer.raw_draws.means, resumed.raw_draws.means)
    np.testing.assert_allclose(longer.sample_stats["lp"][1, 210], _core_lp(longer.raw_draws[1, 210], xm), rtol=2e-5)


# ----------------------------------------------------------------------------------------------
# VI, full batch and minibatches
# ----------------------------------------------------------------------------------------------
def test_draws_for_imputation_are_spread_evenly():
    from bayesgmm.posterior._compute import evenly_spaced

    np.testing.assert_array_equal(evenly_spaced(10, 5), [1, 3, 5, 7, 9])
    np.testing.assert_array_equal(evenly_spaced(4, 4), [0, 1, 2, 3])
    np.testing.assert_array_equal(evenly_spaced(2, 5), [0, 0, 1, 1, 1])  # reused when too few


def test_vi_minibatch_lp_is_log_posterior_with_missing_cells():
    """Minibatches of rows with NaN; the draws' lp (a full pass) is the core log posterior."""
    x = _correlated_data(200, seed=5)
    xm, _ = _mcar(x, MISSING_RATE, seed=6)
    fit = fit_map(jax.random.PRNGKey(0), xm, n_components=K, covariance_type="diag", prior=Prior())
    r = run_svi(jax.random.PRNGKey(1), xm, n_components=K, covariance_type="diag", prior=Prior(),
                init=fit.params, num_steps=200, num_samples=10, batch_size=64, log_density=True)
    assert np.all(np.isfinite(r.info["elbo"]))
    for s in (0, 9):
        np.testing.assert_allclose(r.sample_stats["lp"][0, s], _core_lp(r.draws[0, s], xm), rtol=2e-5)


def test_fit_posterior_needs_marginalize():
    x = _correlated_data(50, seed=0)
    xm, _ = _mcar(x, 0.2, seed=0)
    with pytest.raises(ValueError, match="missing='marginalize'"):
        GaussianMixture(1, random_state=0).fit_posterior(xm, method="vi", num_steps=5)


# ----------------------------------------------------------------------------------------------
# the posterior's densities of rows with NaN == scipy's marginal densities, draw by draw
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_posterior_densities_of_rows_with_missing_cells(ct):
    truth = make_pivot(ct, k=K, d=D, seed=2)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, D)) * 3.0 + 1.0
    xm, _ = _mcar(x, 0.3, seed=4)
    xm[1] = [np.nan, 2.0, np.nan]
    relabel = "stephens" if ct == "full" else "pivot"  # Stephens' passes run on the NaN data too
    post = posterior_around(truth, xm, chains=2, draws=4, noise=0.2, relabel=relabel)
    X = xm[:12]
    ll, resp = [], []
    for c in range(2):
        for s in range(4):
            a, b = _marginal_loglik(post.draws[c, s], X)
            ll.append(a)
            resp.append(b)
    ll, resp = np.array(ll), np.array(resp)
    np.testing.assert_allclose(post.pointwise_log_likelihood(X).reshape(8, -1), ll, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(post.score_samples(X), logsumexp(ll, axis=0) - np.log(8), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(post.score(X), np.mean(logsumexp(ll, axis=0) - np.log(8)), rtol=1e-4)
    np.testing.assert_allclose(post.predict_proba(X), resp.mean(axis=0), atol=1e-4)
    np.testing.assert_array_equal(post.predict(X), np.argmax(post.predict_proba(X), axis=1))
    a = post.assignment_probabilities(X)
    np.testing.assert_allclose(a.mean, resp.mean(axis=0), atol=1e-4)
    co = post.coclustering(X)
    want = np.einsum("sik,sjk->ij", resp, resp) / 8
    np.fill_diagonal(want, 1.0)
    np.testing.assert_allclose(co, want, atol=1e-4)
    assert post.partition(X).labels.shape == (12,)
    p = post.anomaly_probability(X)
    assert p.shape == (12,) and np.all((0 <= p) & (p <= 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # 8 draws: ArviZ doubts its Pareto fits
        post.loo()  # from the pointwise log-likelihood of the NaN data (marginal densities)
    with pytest.raises(ValueError, match="infinite"):
        post.predict_proba(np.where(np.isnan(X), np.inf, X))
