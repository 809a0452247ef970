"""Stepwise online EM (``GaussianMixture.partial_fit`` and ``bayesgmm.core.online``)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayesgmm import GaussianMixture
from bayesgmm.core.density import estep_stats, to_blocks
from bayesgmm.core.em import m_step
from bayesgmm.core.online import online_em_init, online_em_step, raw_moments, whitened_stats
from bayesgmm.core.params import GMMParams
from bayesgmm.core.prior import Prior, resolve_prior

from conftest import full_covs, sample_mixture, true_mixture

COV_TYPES = ["full", "tied", "diag", "spherical"]


@pytest.fixture(scope="module")
def chunked_data():
    weights, means, covs = true_mixture("full", 3, 2, seed=0)
    x, _ = sample_mixture(weights, means, full_covs("full", covs, 3, 2), 20_000, seed=1)
    return x


def _start_params(ct, x, k, seed):
    rng = np.random.default_rng(seed)
    d = x.shape[1]
    means = x[rng.choice(len(x), k, replace=False)]
    cov = np.cov(x.T) * rng.uniform(0.5, 1.5)
    covs = {"full": np.stack([cov * (1 + 0.1 * i) for i in range(k)]), "tied": cov,
            "diag": np.stack([np.diag(cov) * (1 + 0.1 * i) for i in range(k)]),
            "spherical": np.mean(np.diag(cov)) * (1 + 0.1 * np.arange(k))}[ct]
    w = rng.dirichlet(np.full(k, 5.0))
    return GMMParams.from_covariances(jnp.asarray(w), jnp.asarray(means), jnp.asarray(covs), ct)


@pytest.mark.parametrize("ct", COV_TYPES)
def test_partial_fit_core_step_with_unit_rate_is_the_em_step(x64, ct):
    """Whitened statistics <-> raw moments round-trip, and with rho = 1 and nothing seen before,
    one online step is exactly one batch EM step (MAP for every covariance type, ML for diag)."""
    from bayesgmm.core.density import responsibilities

    rng = np.random.default_rng(4)
    x = rng.normal(size=(400, 2)) * [1.0, 3.0] + [0.5, -1.0]
    w = rng.uniform(0.5, 2.0, len(x))
    params = _start_params(ct, x, 3, 1)
    xb, wb = to_blocks(jnp.asarray(x), jnp.asarray(w), 128)
    stats = jax.jit(estep_stats)(params, xb, wb)
    raw = jax.jit(raw_moments)(params, stats)
    back = jax.jit(whitened_stats)(params, *raw, stats.loglik)
    for a, b in zip(stats, back):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-9, atol=1e-9)
    # raw moments against a direct computation from the responsibilities
    r = np.asarray(responsibilities(params, jnp.asarray(x))) * w[:, None]
    s0, s1, s2 = (np.asarray(a) for a in raw)
    np.testing.assert_allclose(s0, r.sum(0), rtol=1e-10)
    np.testing.assert_allclose(s1, r.T @ x, rtol=1e-10)
    full = np.einsum("nk,nd,ne->kde", r, x, x)
    expect = {"full": full, "tied": full.sum(0), "diag": np.einsum("kdd->kd", full),
              "spherical": np.einsum("kdd->k", full)}[ct]
    np.testing.assert_allclose(s2, expect, rtol=1e-10)

    reg = jnp.full((2,), 1e-6)
    priors = [resolve_prior(Prior(), x, 3, ct, w, jnp.float64)] + ([None] if ct == "diag" else [])
    step = jax.jit(online_em_step)
    for prior in priors:
        expect = jax.jit(m_step)(params, stats, prior, reg)
        new, info = step(online_em_init(params, 0.0), xb, wb, prior, reg, 0.0, 1.0)  # rho_1 = 1
        assert float(info.rho) == 1.0
        np.testing.assert_allclose(float(new.n_seen), w.sum())
        for a, b in zip(jax.tree_util.tree_leaves(new.params), jax.tree_util.tree_leaves(expect)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-8, atol=1e-10)


@pytest.fixture(scope="module")
def batch_fits(chunked_data):
    """Full-batch fits (3 restarts) of the chunked data: the reference log-likelihoods."""
    return {str(p): GaussianMixture(3, prior=p, n_init=3, random_state=0).fit(chunked_data)
            for p in ("default", None)}


def _online(x, prior="default", order=range(10), **kw):
    gm = GaussianMixture(3, prior=prior, n_init=3, random_state=0, **kw)
    for i in order:
        gm.partial_fit(x[i * 2000:(i + 1) * 2000])
    return gm


@pytest.mark.parametrize("prior", ["default", None])
def test_partial_fit_reaches_full_batch_loglik(chunked_data, batch_fits, prior):
    """One pass over 10 chunks gets within 1% of the full-batch log-likelihood."""
    x = chunked_data
    batch = batch_fits[str(prior)]
    online = _online(x, prior)
    assert online.n_steps_ == 10
    ll_batch, ll_online = batch.score(x), online.score(x)
    assert abs(ll_online - ll_batch) <= 0.01 * abs(ll_batch), (ll_online, ll_batch)
    # and the parameters are those of the batch fit, up to the chunk-level noise
    order_b, order_o = np.argsort(batch.means_[:, 0]), np.argsort(online.means_[:, 0])
    np.testing.assert_allclose(online.weights_[order_o], batch.weights_[order_b], atol=0.02)
    np.testing.assert_allclose(online.means_[order_o], batch.means_[order_b], atol=0.1)


def test_partial_fit_reproducible_and_memmap(chunked_data, tmp_path):
    """Same chunks, order and seed: identical parameters, also when the chunks are memmap slices."""
    x = chunked_data
    mm = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float64, shape=x.shape)
    mm[:] = x
    mm.flush()
    del mm
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    a, b, c = _online(x, order=range(4)), _online(x, order=range(4)), _online(mm, order=range(4))
    for attr in ("weights_", "means_", "covariances_"):
        np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr))
        np.testing.assert_array_equal(getattr(a, attr), getattr(c, attr))
    d = _online(x, order=[0, 2, 1, 3])  # another order of the later chunks: another path
    assert not np.array_equal(a.means_, d.means_)
    # chunks of one size share one compiled update: new data and new step-size values
    # (traced) never recompile
    from bayesgmm.infer import online_em

    before = online_em._online_step._cache_size()
    _online(x[::-1].copy(), order=range(3), learning_decay=0.9, learning_offset=5.0)
    assert online_em._online_step._cache_size() == before


def test_partial_fit_after_fit_continues(chunked_data, batch_fits):
    """partial_fit after fit starts at the fitted parameters, counting the fit's data as seen:
    at the full-batch optimum, further chunks of the same data barely move it."""
    import copy

    x = chunked_data
    batch = batch_fits["default"]
    gm = copy.deepcopy(batch)
    assert gm.n_steps_ == 0
    for i in range(5):
        gm.partial_fit(x[i * 2000:(i + 1) * 2000])
    assert gm.n_steps_ == 5
    assert abs(gm.score(x) - batch.score(x)) <= 0.002 * abs(batch.score(x))
    np.testing.assert_allclose(gm.means_, batch.means_, atol=0.05)
    np.testing.assert_allclose(gm.weights_, batch.weights_, atol=0.01)
    # a new fit starts the online state afresh
    gm.fit(x[:2000])
    assert gm.n_steps_ == 0 and gm._online is None


def test_partial_fit_bad_input(chunked_data):
    x = chunked_data[:2000]
    gm = GaussianMixture(3, n_init=3, random_state=0).partial_fit(x)
    with pytest.raises(ValueError, match="features"):
        gm.partial_fit(x[:, :1])
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        gm.partial_fit(bad)
    with pytest.raises(ValueError, match="sample_weight"):
        gm.partial_fit(x, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="negative"):
        gm.partial_fit(x, sample_weight=-np.ones(len(x)))
    for kw in ({"learning_decay": 0.5}, {"learning_decay": 1.5}, {"learning_decay": "fast"},
               {"learning_offset": -1.0}):
        with pytest.raises(ValueError, match=next(iter(kw))):
            GaussianMixture(3, **kw).partial_fit(x)
    with pytest.raises(ValueError, match="n_components"):
        GaussianMixture(5).partial_fit(x[:3])
