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


def _random_corr_chol(rng, d, batch=()):
    a = rng.normal(size=batch + (d, d + 2))
    cov = a @ np.swapaxes(a, -1, -2) + 0.1 * np.eye(d)
    sd = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
    return np.linalg.cholesky(cov / (sd[..., :, None] * sd[..., None, :]))


def _random_params(ct, d, seed, n=1, ordered=False):
    """``n`` parameter values drawn with numpy, independently of the model, batch shape (n,)."""
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(K, 0.7), size=n)
    means = 2.0 * rng.normal(size=(n, K, d))
    if ordered:
        means = np.take_along_axis(means, np.argsort(means[..., :1], axis=1), axis=1)
    scale_shape = {"full": (K, d), "diag": (K, d), "tied": (d,), "spherical": (K,)}[ct]
    scales = np.exp(0.5 * rng.normal(size=(n,) + scale_shape))
    corr_chol = None
    if ct in ("full", "tied"):
        batch = (n, K) if ct == "full" else (n,)
        corr_chol = _random_corr_chol(rng, d, batch)
    return GMMParams(
        *(None if a is None else jnp.asarray(a) for a in (weights, means, scales, corr_chol)), ct
    )


def _model_lp(params, ordered=False, **kwargs):
    """NumPyro's log_density of the model at each of a batch of parameters (jit + vmap)."""
    site_values = sample_from_params(params, ordered_means=ordered)
    fn = jax.vmap(lambda sv: log_density(gmm_model, (), kwargs, sv)[0])
    return np.asarray(jax.jit(fn)(site_values))


def _core_lp(params, x, prior, sample_weight=None):
    fn = jax.vmap(lambda p: log_posterior(p, x, prior, sample_weight))
    return np.asarray(jax.jit(fn)(params))


def _trace(**kwargs):
    """Abstract trace of the seeded model (values are tracers: shapes and metadata only)."""
    out = {}

    def fn():
        out["trace"] = handlers.trace(handlers.seed(gmm_model, 0)).get_trace(**kwargs)
        return 0

    jax.make_jaxpr(fn)()
    return out["trace"]


def _assert_close(a, b, rtol=RTOL):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=0)


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
        params = _random_params(ct, d, 0, n=6)
        lp = _model_lp(params, **_kwargs(x, prior, ct))
        assert lp.shape == (6,) and np.all(np.isfinite(lp))
        _assert_close(lp, _core_lp(params, x, prior))


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
@pytest.mark.parametrize("d", [1, 3])
def test_closed_form_gradient_matches_autodiff(ct, d):
    """The model's likelihood gradient (one E-step pass, mixture_log_likelihood) is autodiff's
    gradient of the plain log-likelihood: every parameter, random weights as the cotangent
    (sample weights, the minibatch scaling), float64; and the values are identical."""
    from bayesgmm.core.density import mixture_log_likelihood

    with jax.enable_x64(True):
        x = jnp.asarray(_data(d, seed=3))
        c = jnp.asarray(np.random.default_rng(4).uniform(0.0, 3.0, x.shape[0]))
        # jitted once: eager autodiff would compile every operation separately
        grad_want = jax.jit(jax.grad(lambda p: jnp.sum(c * log_likelihood(p, x))))
        grad_got = jax.jit(jax.grad(lambda p: jnp.sum(c * mixture_log_likelihood(p, x))))
        for i in range(3):
            params = _random_params(ct, d, 10 + i)[0]
            want, got = grad_want(params), grad_got(params)
            for name in ("weights", "means", "scales", "corr_chol"):
                a, b = getattr(want, name), getattr(got, name)
                assert (a is None) == (b is None), name
                if a is not None:
                    scale = float(jnp.max(jnp.abs(a)))
                    np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-9 * scale, err_msg=f"{ct} {name}")
            np.testing.assert_array_equal(mixture_log_likelihood(params, x), log_likelihood(params, x))


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_closed_form_gradient_batched_like_vectorized_chains(ct):
    """The closed-form gradient under jit(vmap(value_and_grad)) -- as NUTS evaluates it with
    vectorized chains, the forward's residuals (whitened residuals, responsibilities) batched --
    is autodiff's, in float64 to 1e-6 relative, with the same values; D = 2 as in the benchmark,
    sample weights with zeros (the ``obs_loglik`` factor's ``where``)."""
    from bayesgmm.core.density import mixture_log_likelihood

    with jax.enable_x64(True):
        x = jnp.asarray(_data(2, seed=5, n=64))
        c = np.random.default_rng(6).uniform(0.0, 2.0, x.shape[0])
        c[::7] = 0.0
        c = jnp.asarray(c)
        params = _random_params(ct, 2, 20, n=4)

        def total(f):
            return lambda p: jnp.sum(jnp.where(c != 0, c * f(p, x), 0.0))

        want_v, want = jax.jit(jax.vmap(jax.value_and_grad(total(log_likelihood))))(params)
        got_v, got = jax.jit(jax.vmap(jax.value_and_grad(total(mixture_log_likelihood))))(params)
        np.testing.assert_allclose(got_v, want_v, rtol=1e-12)
        for name in ("weights", "means", "scales", "corr_chol"):
            a, b = getattr(want, name), getattr(got, name)
            assert (a is None) == (b is None), name
            if a is not None:
                scale = float(jnp.max(jnp.abs(a)))
                np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-9 * scale, err_msg=f"{ct} {name}")


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_log_density_matches_log_posterior_with_a_strong_covariance_floor(ct):
    """The covariance factor -tr(Psi Sigma^-1)/2 is in both densities, for every covariance type:
    a floor of 0.5 of the data's variance makes it a large part of the density (it would show)."""
    with jax.enable_x64(True):
        d = 3
        x = _data(d, seed=3)
        prior = resolve_prior(Prior(covariance_floor=0.5), x, K, ct)
        np.testing.assert_allclose(prior.covariance_floor, 0.5 * x.var(axis=0), rtol=1e-12)
        params = _random_params(ct, d, 4, n=5)
        lp = _model_lp(params, **_kwargs(x, prior, ct))
        _assert_close(lp, _core_lp(params, x, prior))
        without = resolve_prior(Prior(covariance_floor=0.0), x, K, ct)
        lp0 = _model_lp(params, **_kwargs(x, without, ct))
        _assert_close(lp0, _core_lp(params, x, without))
        # the difference is the factor, computed here with numpy from the covariances
        cov = np.asarray(params.covariances())
        psi = np.asarray(prior.covariance_floor)
        if ct in ("full", "tied"):
            tr = np.einsum("d,...dd->...", psi, np.linalg.inv(cov))
            tr = tr.sum(-1) if ct == "full" else tr
        elif ct == "diag":
            tr = (psi / cov).sum(axis=(-2, -1))
        else:
            tr = (psi.sum() / cov).sum(-1)
        _assert_close(lp - lp0, -0.5 * tr, rtol=1e-9)
        assert np.all(-0.5 * tr < -1.0)  # not a negligible term


@pytest.mark.parametrize("ct", ["full"])
def test_log_density_at_prior_draws(ct):
    """The same at parameters drawn from the model's own prior (NumPyro's LKJ and Dirichlet)."""
    with jax.enable_x64(True):
        d = 3
        x = _data(d, seed=8)
        prior = resolve_prior(Prior(weight_concentration=0.8, lkj_concentration=1.2), x, K, ct)
        params = _prior_draws(prior, ct, d, num_samples=6)
        assert params.batch_shape == (6,)
        lp = _model_lp(params, **_kwargs(x, prior, ct))
        assert np.all(np.isfinite(lp))
        _assert_close(lp, _core_lp(params, x, prior))


@pytest.mark.parametrize("ct", ["full", "spherical"])  # the weighted sum is shared; the defaults differ
def test_integer_weights_equal_repeated_rows_in_the_model(ct):
    """The model NUTS and VI run: integer weights give the log density of the repeated rows."""
    with jax.enable_x64(True):
        x = _data(2, seed=3)
        w = np.random.default_rng(4).integers(0, 4, size=N)
        xr = np.repeat(x, w, axis=0)
        prior_w = resolve_prior(Prior(), x, K, ct, sample_weight=w)
        prior_r = resolve_prior(Prior(), xr, K, ct)
        for field in ("mean_loc", "mean_scale", "scale_scale"):  # the data-derived defaults agree
            np.testing.assert_allclose(getattr(prior_w, field), getattr(prior_r, field), rtol=1e-12)
        params = _random_params(ct, 2, 5, n=4)
        lp_w = _model_lp(params, **_kwargs(x, prior_w, ct, sample_weight=w.astype(float)))
        lp_r = _model_lp(params, **_kwargs(xr, prior_w, ct))
        np.testing.assert_allclose(lp_w, lp_r, rtol=1e-12)
        assert np.all(np.abs(lp_w - _model_lp(params, **_kwargs(x, prior_w, ct))) > 1e-3)


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
@pytest.mark.parametrize("d", [1, 3])
def test_log_density_with_sample_weight(ct, d):
    with jax.enable_x64(True):
        x = _data(d, seed=1)
        w = np.random.default_rng(2).uniform(0.0, 3.0, size=N)
        w[:3] = 0.0
        prior = resolve_prior(Prior(), x, K, ct, sample_weight=w)
        params = _random_params(ct, d, 1, n=4)
        lp = _model_lp(params, **_kwargs(x, prior, ct, sample_weight=w))
        _assert_close(lp, _core_lp(params, x, prior, sample_weight=w))
        # the weights really enter: differs from the unweighted posterior
        assert np.all(np.abs(lp - _core_lp(params, x, prior)) > 1e-6)


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
@pytest.mark.parametrize("d", [1, 3])
def test_log_density_ordered_means(ct, d):
    with jax.enable_x64(True):
        x = _data(d, seed=3)
        prior = resolve_prior(Prior(ordered_means=True, scale_prior="half_cauchy"), x, K, ct)
        kwargs = _kwargs(x, prior, ct)
        params = _random_params(ct, d, 2, n=6, ordered=True)
        lp = _model_lp(params, ordered=True, **kwargs)
        assert np.all(np.isfinite(lp))
        _assert_close(lp, _core_lp(params, x, prior))
        # ``means`` is a deterministic site holding the full (K, D) means
        site_values = sample_from_params(params[0], ordered_means=True)
        assert "means" not in site_values
        means = jax.jit(lambda sv: log_density(gmm_model, (), kwargs, sv)[1]["means"]["value"])(
            site_values
        )
        np.testing.assert_array_equal(means, params.means[0])
        assert _trace(**kwargs)["means"]["type"] == "deterministic"
        # unordered first column: -inf, like the core log prior
        rev = params.replace(means=params.means[:, ::-1])
        assert np.all(_model_lp(rev, ordered=True, **kwargs) == -np.inf)
        assert np.all(_core_lp(rev, x, prior) == -np.inf)


def test_ordered_means_density_is_unnormalised_normal():
    """On the ordered region the means density is the plain Normal one (no log K! term)."""
    with jax.enable_x64(True):
        d, ct = 2, "diag"
        x = _data(d)
        unordered = resolve_prior(Prior(), x, K, ct)
        ordered = unordered.replace(ordered_means=True)
        params = _random_params(ct, d, 4, n=3, ordered=True)
        lp_o = _model_lp(params, ordered=True, **_kwargs(x, ordered, ct))
        lp_u = _model_lp(params, **_kwargs(x, unordered, ct))
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
        params = _random_params(ct, d, 1, n=2)
        idx = jnp.array([0, 3, 5, 11, 20, 31, 39])
        kwargs = _kwargs(x, prior, ct, sample_weight=w, subsample_size=m)
        tr = _trace(**kwargs)
        assert tr["obs_loglik"]["scale"] == pytest.approx(N / m)
        assert tr["obs_loglik"]["fn"].batch_shape == (m,)

        def model_lp(sv):
            return log_density(gmm_model, (), kwargs, dict(sv, obs=idx))[0]

        lp = jax.jit(jax.vmap(model_lp))(sample_from_params(params))

        def expected(p):
            ll = log_likelihood(p, jnp.asarray(x)[idx]) * w[idx]
            return log_prior(p, prior) + N / m * jnp.sum(ll)

        _assert_close(lp, jax.jit(jax.vmap(expected))(params))


def test_subsample_is_unbiased():
    """Averaged over random minibatches, the log density is the full-data log posterior."""
    with jax.enable_x64(True):
        ct, d, m = "diag", 2, 10
        x = _data(d, seed=7)
        prior = resolve_prior(Prior(), x, K, ct)
        p = _random_params(ct, d, 2)[0]
        site_values = sample_from_params(p)
        kwargs = _kwargs(x, prior, ct, subsample_size=m)

        def one(key):
            return log_density(handlers.seed(gmm_model, key), (), kwargs, site_values)[0]

        keys = jax.random.split(jax.random.PRNGKey(0), 2000)
        vals = np.asarray(jax.jit(jax.vmap(one))(keys))
        full = float(log_posterior(p, x, prior))
        assert np.std(vals) > 0  # the minibatches differ
        stderr = np.std(vals) / np.sqrt(len(vals))
        assert abs(np.mean(vals) - full) < 5 * stderr


def test_full_size_subsample_is_full_data():
    with jax.enable_x64(True):
        ct, d = "tied", 3
        x = _data(d)
        prior = resolve_prior(Prior(), x, K, ct)
        params = _random_params(ct, d, 0, n=2)
        lp = _model_lp(params, **_kwargs(x, prior, ct, subsample_size=N))
        _assert_close(lp, _core_lp(params, x, prior))


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
    tr = _trace(**_kwargs(x, prior, ct))
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
        assert plates("corr_chol") == set()
    else:
        assert "corr_chol" not in tr
    assert tr["obs_loglik"]["fn"].batch_shape == (N,)
    assert plates("obs_loglik") == {"obs"}
    # the prior's covariance factor: one scalar, summed over the components, in no plate
    assert tr["covariance_floor"]["fn"].batch_shape == () and plates("covariance_floor") == set()
    # only the parameter sites and the two factors: no (N, K) arrays are recorded
    recorded = {k for k, v in tr.items() if v["type"] in ("sample", "deterministic")}
    assert recorded == {"weights", "means", "scales", "obs_loglik", "covariance_floor"} | (
        {"corr_chol"} if ct in ("full", "tied") else set()
    )


@pytest.mark.parametrize("ct", ["full", "tied"])
def test_one_feature_corr_chol_is_deterministic_identity(ct):
    x = _data(1)
    prior = resolve_prior(Prior(), x, K, ct)
    kwargs = _kwargs(x, prior, ct)
    assert _trace(**kwargs)["corr_chol"]["type"] == "deterministic"
    value = jax.jit(
        lambda: handlers.trace(handlers.seed(gmm_model, 0)).get_trace(**kwargs)["corr_chol"]["value"]
    )()
    shape = (K, 1, 1) if ct == "full" else (1, 1)
    np.testing.assert_array_equal(value, np.ones(shape))


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
@pytest.mark.parametrize("d", [1, 3])
@pytest.mark.parametrize("ordered", [False, True])
def test_params_sample_round_trip(ct, d, ordered):
    batch = jax.tree_util.tree_map(
        lambda a: a.reshape((2, 2) + a.shape[1:]), _random_params(ct, d, 0, n=4, ordered=ordered)
    )
    assert batch.batch_shape == (2, 2)
    sample = sample_from_params(batch, ordered_means=ordered)
    assert ("means" in sample) != ordered
    back = params_from_sample(sample, ct)
    assert back.covariance_type == ct
    assert (back.corr_chol is None) == (ct in ("diag", "spherical"))
    for a, b in zip(jax.tree_util.tree_leaves(batch), jax.tree_util.tree_leaves(back)):
        np.testing.assert_array_equal(a, b)
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


@pytest.mark.slow
def test_nuts_smoke_ordered():
    """NUTS runs on the ordered-means model (constrained site ``means_first``)."""
    d, ct = 1, "spherical"
    x = _data(d, n=30)
    prior = resolve_prior(Prior(ordered_means=True), x, K, ct)
    mcmc = MCMC(NUTS(gmm_model), num_warmup=20, num_samples=10, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(0), **_kwargs(x, prior, ct))
    post = params_from_sample(mcmc.get_samples(), ct)
    assert post.batch_shape == (10,)
    assert np.all(np.diff(np.asarray(post.means[..., 0]), axis=-1) >= 0)
    assert np.all(np.isfinite(np.asarray(post.scales)))
