"""The Posterior: diagnostics before/after relabelling, InferenceData layout, predictive, warnings.

Sampler results are real ``bayesgmm.infer.state.SamplerResult`` objects around stand-in draws: iid
draws around a MAP estimate (``conftest.synthetic_draws``) with chosen label switches.
"""

import warnings

import jax
import numpy as np
import pandas as pd
import pytest
from conftest import full_covs, make_pivot, sample_mixture, sampler_result, synthetic_draws, true_mixture
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from bayesgmm.core.density import log_likelihood, responsibilities
from bayesgmm.core.params import COVARIANCE_TYPES, GMMParams
from bayesgmm import _arviz
from bayesgmm.infer.state import SamplerResult
from bayesgmm.posterior import Posterior, PosteriorWarning, apply_permutations, relabel

K, D = 3, 2


def make_result(draws: GMMParams, method="nuts", seed=0, **stats) -> SamplerResult:
    """A ``SamplerResult`` of ``draws`` with made-up NUTS statistics (overridden by ``stats``)."""
    c, s = draws.weights.shape[:2]
    rng = np.random.default_rng(seed)
    base = {}
    if method == "nuts":
        base = {
            "diverging": np.zeros((c, s), bool),
            "energy": rng.normal(100, 3, (c, s)),
            "tree_depth": np.full((c, s), 3, np.int64),
            "n_steps": np.full((c, s), 7, np.int64),
            "step_size": np.full((c, s), 0.4),
            "acceptance_rate": rng.uniform(0.6, 1.0, (c, s)),
            "lp": rng.normal(-500, 2, (c, s)),
        }
    base.update(stats)
    info = {"elbo": np.linspace(-900, -500, 50)} if method == "vi" else {"max_tree_depth": 10}
    return sampler_result(draws, method, base, info, num_warmup=500 if method == "nuts" else 0)


def data_for(ct, n=200, seed=0, d=D, k=K):
    w, m, c = true_mixture(ct, k, d, seed)
    x, _ = sample_mixture(w, m, full_covs(ct, c, k, d), n, seed=seed + 100)
    return x


def constant_draws(pivot: GMMParams, chains=2, draws=5) -> GMMParams:
    return jax.tree_util.tree_map(lambda a: np.broadcast_to(np.asarray(a), (chains, draws) + np.shape(a)).copy(), pivot)


def quiet_posterior(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PosteriorWarning)
        return Posterior(*args, **kwargs)


def expected_full_covs(p: GMMParams):
    ct = p.covariance_type
    if ct in ("full", "tied"):
        u = np.asarray(p.scales)[..., :, None] * np.asarray(p.corr_chol)
        cov = u @ np.swapaxes(u, -1, -2)
        if ct == "tied":
            cov = np.repeat(cov[..., None, :, :], p.n_components, axis=-3)
        return cov
    var = np.asarray(p.scales) ** 2
    if ct == "spherical":
        var = np.repeat(var[..., None], p.n_features, axis=-1)
    return var[..., :, None] * np.eye(p.n_features)


def oracle_weighted_logpdf(p: GMMParams, x):
    """scipy: ``log w_k + log N(x_n | mu_k, Sigma_k)``, shape (N, K), float64."""
    covs = expected_full_covs(p)
    return np.stack(
        [np.log(p.weights[k]) + multivariate_normal(p.means[k], covs[k]).logpdf(x).reshape(-1) for k in range(p.n_components)],
        axis=1,
    )


def oracle_loglik(p: GMMParams, x):
    return logsumexp(oracle_weighted_logpdf(p, x), axis=1)


def oracle_resp(p: GMMParams, x):
    lp = oracle_weighted_logpdf(p, x)
    return np.exp(lp - logsumexp(lp, axis=1, keepdims=True))


# -- R-hat before/after relabelling ---------------------------------------------------------------
@pytest.mark.parametrize("ct", ["full", "spherical"])
def test_label_switched_chain_rhat_high_before_and_fine_after(ct):
    pivot = make_pivot(ct, seed=1)
    clean = synthetic_draws(pivot, chains=4, draws=500, seed=2)
    perms = np.broadcast_to(np.arange(K), (4, 500, K)).copy()
    perms[3] = [1, 2, 0]  # the last chain lives in another labelling
    raw = apply_permutations(clean, perms)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PosteriorWarning)
        post = Posterior(make_result(raw), data_for(ct, seed=1), pivot)
    diag = post.diagnostics()
    assert diag["max_rhat_before"] > 1.1
    assert diag["rhat_before"]["weights"] > 1.1 and diag["rhat_before"]["means"] > 1.1
    assert diag["max_rhat"] <= 1.01
    assert diag["n_relabelled"] == 500
    assert diag["min_ess_bulk"] > 400 and diag["warnings"] == []
    np.testing.assert_array_equal(post.draws.means, clean.means)
    assert "max_rhat=1.0" in repr(post) and "500 draws permuted" in repr(post)


# -- InferenceData layout -------------------------------------------------------------------------
@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_idata_groups_dims_coords(ct):
    pivot = make_pivot(ct, seed=3)
    clean = synthetic_draws(pivot, chains=2, draws=30, seed=4)
    pi = np.argsort(np.random.default_rng(5).random((2, 30, K)), axis=-1)
    raw = apply_permutations(clean, pi)
    x = pd.DataFrame(data_for(ct, n=50, seed=3), columns=["eruptions", "waiting"])
    sw = np.linspace(0.5, 1.5, 50)
    post = quiet_posterior(make_result(raw), x, pivot, sample_weight=sw)
    idata = post.idata
    assert _arviz.is_idata(idata)  # InferenceData under ArviZ 0.2x, DataTree under 1.x
    assert set(_arviz.group_names(idata)) == {
        "posterior", "unrelabelled_posterior", "sample_stats", "log_likelihood", "observed_data", "constant_data"
    }
    po = idata.posterior
    assert po["weights"].dims == ("chain", "draw", "component")
    assert po["means"].dims == ("chain", "draw", "component", "feature")
    assert po["covariances"].dims == ("chain", "draw", "component", "feature", "feature_bis")
    scales_dims = {"full": ("component", "feature"), "diag": ("component", "feature"),
                   "tied": ("feature",), "spherical": ("component",)}[ct]
    assert po["scales"].dims == ("chain", "draw") + scales_dims
    if ct == "full":
        assert po["corr_chol"].dims == ("chain", "draw", "component", "feature", "feature_bis")
    elif ct == "tied":
        assert po["corr_chol"].dims == ("chain", "draw", "feature", "feature_bis")
    else:
        assert "corr_chol" not in po
    assert list(po.coords["component"].values) == [0, 1, 2]
    assert list(po.coords["feature"].values) == ["eruptions", "waiting"]
    assert list(po.coords["feature_bis"].values) == ["eruptions", "waiting"]
    assert list(po.coords["chain"].values) == [0, 1] and po.sizes["draw"] == 30
    # covariances expanded to full matrices for every type
    np.testing.assert_allclose(po["covariances"].values, expected_full_covs(clean), rtol=1e-12)
    np.testing.assert_array_equal(po["means"].values, clean.means)
    # raw draws and the permutation that relabels them
    un = idata.unrelabelled_posterior
    np.testing.assert_array_equal(un["means"].values, raw.means)
    perm = un["permutation"].values
    assert un["permutation"].dims == ("chain", "draw", "component")
    np.testing.assert_array_equal(np.take_along_axis(un["weights"].values, perm, -1), po["weights"].values)
    # sample stats, observed data, log-likelihood, constant data
    for name in ("diverging", "energy", "tree_depth", "n_steps", "step_size", "acceptance_rate", "lp"):
        assert idata.sample_stats[name].dims == ("chain", "draw")
    assert idata.sample_stats["diverging"].dtype == bool
    assert idata.observed_data["obs"].dims == ("obs_id", "feature")
    np.testing.assert_array_equal(idata.observed_data["obs"].values, x.to_numpy())
    assert idata.log_likelihood["obs"].dims == ("chain", "draw", "obs_id")
    assert idata.log_likelihood["obs"].shape == (2, 30, 50)
    np.testing.assert_array_equal(idata.constant_data["sample_weight"].values, sw)
    assert po.attrs["covariance_type"] == ct and po.attrs["inference_method"] == "nuts"
    # summary: arviz table of the relabelled draws with the feature names
    table = post.summary()
    assert "weights[0]" in table.index and "means[2, waiting]" in table.index
    assert "covariances[0, eruptions, waiting]" in table.index
    assert {"mean", "sd", "r_hat", "ess_bulk", "ess_tail"} <= set(table.columns)
    np.testing.assert_allclose(table.loc["weights[1]", "mean"], clean.weights[..., 1].mean(), atol=1e-3)


def test_log_likelihood_group_equals_direct_computation(x64):
    ct = "full"
    pivot = make_pivot(ct, seed=6)
    raw = synthetic_draws(pivot, chains=2, draws=40, seed=7, noise=0.1)
    x = data_for(ct, n=120, seed=6) + 50.0  # an offset: the standardisation must be exact
    pivot = pivot.replace(means=pivot.means + 50.0)
    raw = raw.replace(means=raw.means + 50.0)
    post = quiet_posterior(make_result(raw), x, pivot)
    ll = post.idata.log_likelihood["obs"].values
    every_draw = jax.jit(jax.vmap(jax.vmap(log_likelihood, (0, None)), (0, None)))  # one program, not op by op
    direct = every_draw(raw, x)
    np.testing.assert_allclose(ll, np.asarray(direct), rtol=1e-10)
    # and an independent oracle for one draw
    p = raw[1, 7]
    covs = expected_full_covs(p)
    dens = sum(p.weights[k] * multivariate_normal(p.means[k], covs[k]).pdf(x) for k in range(K))
    np.testing.assert_allclose(ll[1, 7], np.log(dens), rtol=1e-10)
    # of other points (what anomaly_probability uses for new data)
    new = x[:30] * 1.5 - 20.0
    direct_new = every_draw(raw, new)
    np.testing.assert_allclose(post.pointwise_log_likelihood(new), np.asarray(direct_new), rtol=1e-10)
    np.testing.assert_array_equal(post.pointwise_log_likelihood(x), post.pointwise_log_likelihood())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Pareto k of these broad synthetic draws
        loo = post.loo()
    assert np.isfinite(loo.elpd if _arviz.ARVIZ_1 else loo.elpd_loo)  # ArviZ 1.x: ELPDDataLOO.elpd


def test_log_likelihood_float32_close():
    ct = "diag"
    pivot = make_pivot(ct, seed=8)
    raw = synthetic_draws(pivot, chains=2, draws=10, seed=9, noise=0.1)
    x = data_for(ct, n=80, seed=8)
    post = quiet_posterior(make_result(raw), x, pivot)
    direct = np.array([[oracle_loglik(raw[c, s], x) for s in range(10)] for c in range(2)])
    np.testing.assert_allclose(post.pointwise_log_likelihood(), direct, rtol=1e-5, atol=1e-5)


# -- predictive ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_predict_proba_and_score_samples_at_the_map(ct):
    pivot = make_pivot(ct, seed=10)
    x = data_for(ct, n=90, seed=10)
    post = quiet_posterior(make_result(constant_draws(pivot)), x, pivot)
    proba = post.predict_proba(x)
    assert proba.shape == (90, K)
    np.testing.assert_allclose(proba, oracle_resp(pivot, x), atol=2e-6)
    np.testing.assert_allclose(post.score_samples(x), oracle_loglik(pivot, x), rtol=2e-6)
    np.testing.assert_array_equal(post.predict(x), np.argmax(proba, 1))


def test_predict_proba_in_x64_matches_core_responsibilities(x64):
    pivot = make_pivot("full", seed=10)
    x = data_for("full", n=90, seed=10)
    post = quiet_posterior(make_result(constant_draws(pivot)), x, pivot)
    np.testing.assert_allclose(post.predict_proba(x), np.asarray(responsibilities(pivot, x)), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(post.score_samples(x), np.asarray(log_likelihood(pivot, x)), rtol=1e-11)


def test_predict_proba_rows_sum_to_one_and_average_draws():
    pivot = make_pivot("full", seed=11)
    raw = synthetic_draws(pivot, chains=2, draws=50, seed=12, noise=0.3)
    x = data_for("full", n=70, seed=11)
    post = quiet_posterior(make_result(raw), x, pivot)
    proba = post.predict_proba(x[:25])
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-5)
    expected = np.mean([oracle_resp(post.draws[c, s], x[:25]) for c in range(2) for s in range(50)], axis=0)
    np.testing.assert_allclose(proba, expected, atol=1e-5)
    with pytest.raises(ValueError, match="shape"):
        post.predict_proba(x[:, :1])


def test_score_samples_is_a_density_in_1d():
    k, d = 2, 1
    pivot = make_pivot("full", k=k, d=d, seed=13, separation=3.0)
    raw = synthetic_draws(pivot, chains=2, draws=100, seed=14, noise=0.3)
    x = data_for("full", n=60, seed=13, d=d, k=k)
    post = quiet_posterior(make_result(raw), x, pivot)
    grid = np.linspace(x.min() - 12, x.max() + 12, 6001)[:, None]
    dens = np.exp(post.score_samples(grid))
    assert abs(np.trapezoid(dens, grid[:, 0]) - 1.0) < 1e-3
    # a mixture of densities, not the density of the mean parameters
    mean_params = jax.tree_util.tree_map(lambda a: np.asarray(a).mean((0, 1)), post.draws)
    plug_in = np.exp(oracle_loglik(mean_params, grid))
    assert not np.allclose(dens, plug_in, rtol=1e-3)


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_sample_frequencies_follow_weights(ct):
    pivot = make_pivot(ct, seed=15)
    post = quiet_posterior(make_result(constant_draws(pivot)), data_for(ct, n=40, seed=15), pivot)
    n = 20000
    X, y = post.sample(n, random_state=0)
    assert X.shape == (n, D) and y.shape == (n,) and y.dtype == np.int64
    freq = np.bincount(y, minlength=K) / n
    w = np.asarray(pivot.weights)
    np.testing.assert_array_less(np.abs(freq - w), 4 * np.sqrt(w * (1 - w) / n))
    covs = expected_full_covs(pivot)
    for k in range(K):
        xs = X[y == k]
        se = np.sqrt(np.diag(covs[k]) / len(xs))
        np.testing.assert_array_less(np.abs(xs.mean(0) - pivot.means[k]), 5 * se)
        np.testing.assert_allclose(np.cov(xs.T), covs[k], rtol=0.1, atol=0.05)
    X2, y2 = post.sample(n, random_state=0)
    np.testing.assert_array_equal(X, X2)
    X3, _ = post.sample(3, random_state=np.random.default_rng(1))
    assert X3.shape == (3, D)
    with pytest.raises(ValueError, match="n_samples"):
        post.sample(0)


def test_sample_mixes_over_draws():
    pivot = make_pivot("diag", seed=16)
    raw = synthetic_draws(pivot, chains=2, draws=200, seed=17, noise=0.2)
    post = quiet_posterior(make_result(raw), data_for("diag", n=40, seed=16), pivot)
    n = 40000
    _, y = post.sample(n, random_state=3)
    w = np.asarray(post.draws.weights).mean((0, 1))
    freq = np.bincount(y, minlength=K) / n
    np.testing.assert_array_less(np.abs(freq - w), 4 * np.sqrt(w * (1 - w) / n))


# -- warnings that say what to change ----------------------------------------------------------------
def test_divergence_and_tree_depth_warnings():
    pivot = make_pivot("full", seed=18)
    raw = synthetic_draws(pivot, chains=4, draws=200, seed=19)
    div = np.zeros((4, 200), bool)
    div[1, :7] = True
    depth = np.full((4, 200), 3)
    depth[2, :5] = 10
    x = data_for("full", n=40, seed=18)
    with pytest.warns(PosteriorWarning) as rec:
        post = Posterior(make_result(raw, diverging=div, tree_depth=depth), x, pivot)
    messages = [str(r.message) for r in rec]
    assert any("7 of 800" in m and "increase target_accept" in m.lower() for m in messages)
    assert any("max_tree_depth" in m and "5 of 800" in m for m in messages)
    d = post.diagnostics()
    assert d["n_divergent"] == 7 and d["n_max_tree_depth"] == 5 and len(d["warnings"]) == 2
    assert "divergences=7" in repr(post)


def test_bimodal_chains_warn_after_relabelling():
    """Two chains in another mode (not a permutation): R-hat stays high after relabelling."""
    pivot = make_pivot("full", seed=20)
    other = pivot.replace(means=np.asarray(pivot.means) + np.array([[1.5, 0.0], [0.0, 0.0], [0.0, -1.0]]))
    a = synthetic_draws(pivot, chains=2, draws=300, seed=21)
    b = synthetic_draws(other, chains=2, draws=300, seed=22)
    raw = jax.tree_util.tree_map(lambda u, v: np.concatenate([u, v], 0), a, b)
    with pytest.warns(PosteriorWarning) as rec:
        post = Posterior(make_result(raw), data_for("full", n=40, seed=20), pivot)
    messages = [str(r.message).lower() for r in rec]
    assert any("run longer chains" in m and "too many components" in m for m in messages)
    assert post.diagnostics()["max_rhat"] > 1.1


def test_low_ess_warning():
    pivot = make_pivot("diag", seed=23)
    clean = synthetic_draws(pivot, chains=4, draws=200, seed=24)
    # strongly autocorrelated chains: a random walk around the MAP
    rng = np.random.default_rng(25)
    walk = np.cumsum(rng.normal(0, 0.02, (4, 200, K, D)), axis=1)
    raw = clean.replace(means=np.asarray(pivot.means) + walk)
    with pytest.warns(PosteriorWarning) as rec:
        Posterior(make_result(raw), data_for("diag", n=40, seed=23), pivot)
    assert any("Effective sample size" in str(r.message) for r in rec)


def test_vi_result_has_no_sampler_warnings():
    pivot = make_pivot("tied", seed=26)
    raw = synthetic_draws(pivot, chains=1, draws=300, seed=27)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PosteriorWarning)
        post = Posterior(make_result(raw, method="vi"), data_for("tied", n=40, seed=26), pivot)
    assert post.method == "vi" and post.num_chains == 1
    assert "sample_stats" not in _arviz.group_names(post.idata)
    assert post.diagnostics()["n_divergent"] == 0
    assert "divergences" not in repr(post)


# -- options and errors ---------------------------------------------------------------------------------
def test_stephens_and_no_relabelling():
    ct = "diag"
    pivot = make_pivot(ct, seed=28)
    clean = synthetic_draws(pivot, chains=2, draws=50, seed=29)
    pi = np.argsort(np.random.default_rng(30).random((2, 50, K)), axis=-1)
    raw = apply_permutations(clean, pi)
    x = data_for(ct, n=100, seed=28)
    post = quiet_posterior(make_result(raw), x, pivot, relabel="stephens")
    np.testing.assert_array_equal(post.draws.means, clean.means)
    assert post.relabel_method == "stephens"
    none = quiet_posterior(make_result(raw), x, pivot, relabel=None)
    np.testing.assert_array_equal(none.draws.means, raw.means)
    assert none.diagnostics()["n_relabelled"] == 0
    with pytest.raises(ValueError, match="relabel="):
        Posterior(make_result(raw), x, pivot, relabel="ecr")


def test_nan_draws_raise_an_explained_error():
    pivot = make_pivot("full", seed=31)
    raw = synthetic_draws(pivot, chains=2, draws=5, seed=32)
    means = raw.means.copy()
    means[0, 1, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN.*means.*fewer"):
        Posterior(make_result(raw.replace(means=means)), data_for("full", n=20, seed=31), pivot)


def test_bad_sample_weight_raises():
    pivot = make_pivot("diag", seed=33)
    raw = synthetic_draws(pivot, chains=1, draws=5, seed=34)
    x = data_for("diag", n=20, seed=33)
    with pytest.raises(ValueError, match=r"sample_weight has shape \(19,\); expected \(20,\)"):
        Posterior(make_result(raw), x, pivot, sample_weight=np.ones(19))
    w = np.ones(20)
    w[3] = -1.0
    for call in (lambda: Posterior(make_result(raw), x, pivot, sample_weight=w),
                 lambda: relabel(raw, pivot, "stephens", x=x, sample_weight=w)):
        with pytest.raises(ValueError, match="sample_weight has 1 negative value"):  # the one validator
            call()
