"""Tests of the NumPyro models: their log density is the core log posterior, sites and conversions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro import handlers
from numpyro.infer import MCMC, NUTS, Predictive
from numpyro.infer.util import log_density

from bayesgmm.core.density import log_likelihood
from bayesgmm.core.logdensity import log_posterior
from bayesgmm.core.params import COVARIANCE_TYPES, GMMParams
from bayesgmm.core.prior import SCALE_PRIORS, Prior, log_prior, resolve_prior
from bayesgmm.models import gmm_model, model_for, params_from_sample, sample_from_params

K = 3
N = 40
RTOL = 1e-10


def _data(d, seed=0, n=N):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(K, d))
    z = rng.integers(K, size=n)
    return centers[z] + rng.normal(size=(n, d))


def _kwargs(x, prior, ct, **kw):
    return dict(x=x, prior=prior, n_components=K, covariance_type=ct, **kw)


def _prior_draws(prior, ct, d, num_samples, seed=0):
    """Parameter draws from the model's prior (Predictive), as batched GMMParams."""
    draws = Predictive(gmm_model, num_samples=num_samples)(
        jax.random.PRNGKey(seed), x=None, prior=prior, n_components=K, covariance_type=ct,
        n_features=d,
    )
    return params_from_sample(draws, ct)


def _random_params(ct, d, seed):
    """Parameters drawn by hand, independently of the model (Dirichlet, LKJ, lognormal scales)."""
    import numpyro.distributions as dist

    key = jax.random.PRNGKey(seed)
    kw, km, ks, kc = jax.random.split(key, 4)
    weights = dist.Dirichlet(jnp.full(K, 0.7)).sample(kw)
    means = 2.0 * jax.random.normal(km, (K, d))
    scale_shape = {"full": (K, d), "diag": (K, d), "tied": (d,), "spherical": (K,)}[ct]
    scales = jnp.exp(0.5 * jax.random.normal(ks, scale_shape))
    corr_chol = None
    if ct in ("full", "tied"):
        shape = (K,) if ct == "full" else ()
        if d == 1:
            corr_chol = jnp.ones(shape + (1, 1))
        else:
            corr_chol = dist.LKJCholesky(d, 1.5).sample(kc, shape)
    return GMMParams(weights, means, scales, corr_chol, ct)


def _assert_close(a, b, rtol=RTOL):
    np.testing.assert_allclose(float(a), float(b), rtol=rtol, atol=0)


# ----------------------------------------------------------------------------------------------
# log density == core log posterior
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
@pytest.mark.parametrize("d", [1, 3])
@pytest.mark.parametrize("scale_prior", SCALE_PRIORS)
def test_log_density_matches_log_posterior(ct, d, scale_prior):
    with jax.enable_x64(True):
        x = _data(d)
        prior = resolve_prior(
            Prior(weight_concentration=1.3, scale_prior=scale_prior, lkj_concentration=1.7),
            x, K, ct,
        )
        assert prior.mean_loc.dtype == jnp.float64
        kwargs = _kwargs(x, prior, ct)
        batch = _prior_draws(prior, ct, d, num_samples=4)
        for i in range(4):
            p = batch[i]
            lp, _ = log_density(gmm_model, (), kwargs, sample_from_params(p))
            _assert_close(lp, log_posterior(p, x, prior))
        for seed in range(3):
            p = _random_params(ct, d, seed)
            lp, _ = log_density(gmm_model, (), kwargs, sample_from_params(p))
            _assert_close(lp, log_posterior(p, x, prior))


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
@pytest.mark.parametrize("d", [1, 3])
def test_log_density_with_sample_weight(ct, d):
    with jax.enable_x64(True):
        x = _data(d, seed=1)
        w = np.random.default_rng(2).uniform(0.0, 3.0, size=N)
        w[:3] = 0.0
        prior = resolve_prior(Prior(), x, K, ct, sample_weight=w)
        kwargs = _kwargs(x, prior, ct, sample_weight=w)
        for seed in range(3):
            p = _random_params(ct, d, seed)
            lp, _ = log_density(gmm_model, (), kwargs, sample_from_params(p))
            _assert_close(lp, log_posterior(p, x, prior, sample_weight=w))
            # the weights really enter: differs from the unweighted posterior
            assert abs(float(lp - log_posterior(p, x, prior))) > 1e-6


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
@pytest.mark.parametrize("d", [1, 3])
def test_log_density_ordered_means(ct, d):
    with jax.enable_x64(True):
        x = _data(d, seed=3)
        prior = resolve_prior(Prior(ordered_means=True, scale_prior="half_cauchy"), x, K, ct)
        kwargs = _kwargs(x, prior, ct)
        # prior draws of the ordered model are ordered
        batch = _prior_draws(prior, ct, d, num_samples=5, seed=1)
        assert np.all(np.diff(np.asarray(batch.means[..., 0]), axis=-1) > 0)
        for i in range(5):
            p = batch[i]
            site_values = sample_from_params(p, ordered_means=True)
            assert "means" not in site_values
            lp, tr = log_density(gmm_model, (), kwargs, site_values)
            _assert_close(lp, log_posterior(p, x, prior))
            # ``means`` is a deterministic site holding the full (K, D) means
            assert tr["means"]["type"] == "deterministic"
            np.testing.assert_array_equal(tr["means"]["value"], p.means)
        # unordered first column: -inf, like the core log prior
        p = _random_params(ct, d, 0)
        order = jnp.argsort(p.means[:, 0])[::-1]
        p = p.replace(means=p.means[order])
        lp, _ = log_density(gmm_model, (), kwargs, sample_from_params(p, ordered_means=True))
        assert float(lp) == -np.inf
        assert float(log_posterior(p, x, prior)) == -np.inf


def test_ordered_means_density_is_unnormalised_normal():
    """On the ordered region the means density is the plain Normal one (no log K! term)."""
    with jax.enable_x64(True):
        d, ct = 2, "diag"
        x = _data(d)
        unordered = resolve_prior(Prior(), x, K, ct)
        ordered = unordered.replace(ordered_means=True)
        p = _random_params(ct, d, 4)
        p = p.replace(means=p.means[jnp.argsort(p.means[:, 0])])
        lp_o, _ = log_density(gmm_model, (), _kwargs(x, ordered, ct), sample_from_params(p, True))
        lp_u, _ = log_density(gmm_model, (), _kwargs(x, unordered, ct), sample_from_params(p))
        _assert_close(lp_o, lp_u)


# ----------------------------------------------------------------------------------------------
# subsampling
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ct", ["full", "spherical"])
def test_subsample_fixed_indices_are_scaled(ct):
    """With the ``obs`` plate's indices substituted, the factor is scaled by N / M."""
    with jax.enable_x64(True):
        d, m = 3, 7
        x = _data(d, seed=5)
        w = np.random.default_rng(6).uniform(0.5, 2.0, size=N)
        prior = resolve_prior(Prior(), x, K, ct, sample_weight=w)
        p = _random_params(ct, d, 1)
        idx = jnp.array([0, 3, 5, 11, 20, 31, 39])
        site_values = dict(sample_from_params(p), obs=idx)
        kwargs = _kwargs(x, prior, ct, sample_weight=w, subsample_size=m)
        lp, tr = log_density(gmm_model, (), kwargs, site_values)
        assert tr["obs_loglik"]["scale"] == pytest.approx(N / m)
        ll = log_likelihood(p, jnp.asarray(x)[idx]) * w[idx]
        expected = log_prior(p, prior) + N / m * jnp.sum(ll)
        _assert_close(lp, expected)


def test_subsample_is_unbiased():
    """Averaged over random minibatches, the log density is the full-data log posterior."""
    with jax.enable_x64(True):
        ct, d, m = "diag", 2, 10
        x = _data(d, seed=7)
        prior = resolve_prior(Prior(), x, K, ct)
        p = _random_params(ct, d, 2)
        site_values = sample_from_params(p)
        kwargs = _kwargs(x, prior, ct, subsample_size=m)

        def one(key):
            return log_density(handlers.seed(gmm_model, key), (), kwargs, site_values)[0]

        keys = jax.random.split(jax.random.PRNGKey(0), 4000)
        vals = np.asarray(jax.jit(jax.vmap(one))(keys))
        full = float(log_posterior(p, x, prior))
        # minibatches differ, so the values do
        assert np.std(vals) > 0
        stderr = np.std(vals) / np.sqrt(len(vals))
        assert abs(np.mean(vals) - full) < 5 * stderr
        # and each value is prior + N/M * (sum over the drawn rows)
        tr = handlers.trace(handlers.seed(gmm_model, 3)).get_trace(**kwargs)
        assert tr["obs"]["value"].shape == (m,)


def test_no_subsample_is_full_data():
    with jax.enable_x64(True):
        ct, d = "tied", 3
        x = _data(d)
        prior = resolve_prior(Prior(), x, K, ct)
        p = _random_params(ct, d, 0)
        lp, tr = log_density(gmm_model, (), _kwargs(x, prior, ct, subsample_size=N), sample_from_params(p))
        _assert_close(lp, log_posterior(p, x, prior))
        assert tr["obs_loglik"]["value"].shape[0] == N


# ----------------------------------------------------------------------------------------------
# sites, plates and conversions
# ----------------------------------------------------------------------------------------------
_SCALE_SHAPES = {"full": (K, 3), "diag": (K, 3), "tied": (3,), "spherical": (K,)}
_SCALE_PLATES = {
    "full": {"component", "feature"},
    "diag": {"component", "feature"},
    "tied": {"feature"},
    "spherical": {"component"},
}


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_sites_and_plates(ct):
    d = 3
    x = _data(d)
    prior = resolve_prior(Prior(), x, K, ct)
    tr = handlers.trace(handlers.seed(gmm_model, 0)).get_trace(**_kwargs(x, prior, ct))
    plates = lambda name: {f.name for f in tr[name]["cond_indep_stack"]}  # noqa: E731
    assert tr["weights"]["value"].shape == (K,)
    assert tr["means"]["value"].shape == (K, d)
    assert plates("means") == {"component", "feature"}
    assert tr["scales"]["value"].shape == _SCALE_SHAPES[ct]
    assert plates("scales") == _SCALE_PLATES[ct]
    if ct == "full":
        assert tr["corr_chol"]["value"].shape == (K, d, d)
        assert plates("corr_chol") == {"component"}
    elif ct == "tied":
        assert tr["corr_chol"]["value"].shape == (d, d)
    else:
        assert "corr_chol" not in tr
    assert tr["obs_loglik"]["fn"].batch_shape == (N,)
    assert plates("obs_loglik") == {"obs"}
    # no (N, K) arrays are recorded
    for site in tr.values():
        if site["type"] in ("sample", "deterministic") and site["name"] != "obs_loglik":
            assert N not in np.shape(site["value"])


@pytest.mark.parametrize("ct", ["full", "tied"])
def test_one_feature_corr_chol_is_deterministic_identity(ct):
    x = _data(1)
    prior = resolve_prior(Prior(), x, K, ct)
    tr = handlers.trace(handlers.seed(gmm_model, 0)).get_trace(**_kwargs(x, prior, ct))
    assert tr["corr_chol"]["type"] == "deterministic"
    shape = (K, 1, 1) if ct == "full" else (1, 1)
    np.testing.assert_array_equal(tr["corr_chol"]["value"], np.ones(shape))


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
@pytest.mark.parametrize("d", [1, 3])
@pytest.mark.parametrize("ordered", [False, True])
def test_params_sample_round_trip(ct, d, ordered):
    batch = jax.tree_util.tree_map(lambda *a: jnp.stack(a).reshape((2, 2) + a[0].shape),
                                   *[_random_params(ct, d, s) for s in range(4)])
    assert batch.batch_shape == (2, 2)
    sample = sample_from_params(batch, ordered_means=ordered)
    back = params_from_sample(sample, ct)
    assert back.covariance_type == ct
    for a, b in zip(jax.tree_util.tree_leaves(batch), jax.tree_util.tree_leaves(back)):
        np.testing.assert_array_equal(a, b)
    assert (back.corr_chol is None) == (ct in ("diag", "spherical"))
    # D == 1 full/tied: corr_chol may be absent (deterministic site dropped); it is rebuilt
    if d == 1 and ct in ("full", "tied"):
        sample.pop("corr_chol")
        np.testing.assert_array_equal(params_from_sample(sample, ct).corr_chol, batch.corr_chol)


def test_model_for_and_prior_predictive():
    d = 2
    x = _data(d)
    prior = resolve_prior(Prior(ordered_means=True), x, K, "diag")
    model = model_for("diag")
    draws = Predictive(model, num_samples=6)(
        jax.random.PRNGKey(1), None, prior, K, n_features=d, n_samples=11
    )
    assert draws["x"].shape == (6, 11, d)
    assert draws["means"].shape == (6, K, d)
    assert np.all(np.diff(np.asarray(draws["means"][..., 0]), axis=-1) > 0)
    with pytest.raises(ValueError, match="n_features"):
        handlers.seed(model, 0)(None, prior, K)
    with pytest.raises(ValueError, match="covariance_type"):
        model_for("banana")


def test_nuts_smoke_ordered_full():
    """NUTS runs on the ordered-means model (improper-free, constrained site means_first)."""
    d, ct = 2, "full"
    x = _data(d, n=60)
    prior = resolve_prior(Prior(ordered_means=True), x, K, ct)
    mcmc = MCMC(NUTS(gmm_model), num_warmup=30, num_samples=20, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(0), **_kwargs(x, prior, ct))
    samples = mcmc.get_samples()
    post = params_from_sample(samples, ct)
    assert post.batch_shape == (20,)
    assert np.all(np.diff(np.asarray(post.means[..., 0]), axis=-1) >= 0)
    assert np.all(np.isfinite(np.asarray(post.scales)))
