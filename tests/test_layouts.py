"""Layout conversions owned by GMMParams / bayesgmm.core.layouts, the standardisation of
bayesgmm.core.units and the criteria of bayesgmm.criteria, each against an independent reference:
the per-type formulas, scikit-learn's conventions, autodiff determinants, direct densities."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import true_mixture
from sklearn.mixture import GaussianMixture as SKGaussianMixture
from sklearn.mixture._gaussian_mixture import _compute_precision_cholesky

from bayesgmm import GaussianMixture, GMMParams, Prior, criteria, log_posterior
from bayesgmm.core import layouts, units
from bayesgmm.core.density import log_likelihood
from bayesgmm.core.params import COVARIANCE_TYPES
from bayesgmm.core.prior import resolve_prior

K, D = 3, 2


def batched_params(ct, batch=(2, 4), seed=0) -> GMMParams:
    """Host float64 parameters with leading ``batch`` axes, every draw different."""
    rng = np.random.default_rng(seed)
    w, m, c = true_mixture(ct, K, D, seed)
    p = GMMParams.from_covariances(w, m, c, ct, xp=np)

    def jitter(a, low=0.0):
        out = a * np.exp(0.1 * rng.standard_normal(batch + a.shape))
        return np.maximum(out, low)

    weights = jitter(p.weights)
    corr = None if p.corr_chol is None else np.broadcast_to(p.corr_chol, batch + p.corr_chol.shape).copy()
    return GMMParams(weights / weights.sum(-1, keepdims=True), p.means + rng.standard_normal(batch + p.means.shape),
                     jitter(p.scales), corr, ct)


def per_type_full(ct, cov, k, d):
    """The formulas the package used to write out per covariance type (reference)."""
    if ct == "full":
        return cov
    if ct == "tied":
        return np.stack([cov] * k)
    if ct == "diag":
        return np.stack([np.diag(v) for v in cov])
    return np.stack([s * np.eye(d) for s in cov])


# -- full covariances, standard deviations, parameter counts ------------------------------------
@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_full_covariances_match_the_per_type_formulas_and_sklearn_precisions(ct):
    w, m, cov = true_mixture(ct, K, D, seed=1)
    full = layouts.full_covariances(cov, ct, K, D)
    assert full.shape == (K, D, D) and full.dtype == np.float64
    np.testing.assert_array_equal(full, per_type_full(ct, cov, K, D))
    # scikit-learn's precision Cholesky factors of the same layout invert the expanded matrices
    pc = _compute_precision_cholesky(cov, ct)
    pc_full = per_type_full(ct, pc, K, D) if ct in ("full", "tied") else np.sqrt(per_type_full(ct, pc**2, K, D))
    prec = pc_full @ np.swapaxes(pc_full, -1, -2)
    np.testing.assert_allclose(full @ prec, np.broadcast_to(np.eye(D), (K, D, D)), atol=1e-12)
    # the GMMParams of the same covariances expands to the same matrices
    p = GMMParams.from_covariances(w, m, cov, ct, xp=np)
    np.testing.assert_allclose(p.full_covariances(), full, rtol=1e-12, atol=1e-15)
    assert layouts.covariances_shape(ct, K, D) == np.shape(cov)


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_full_covariances_of_batched_params_per_draw_and_in_jax(ct):
    p = batched_params(ct)
    full = p.full_covariances()
    assert full.shape == (2, 4, K, D, D) and isinstance(full, np.ndarray)
    for c, s in itertools.product(range(2), range(4)):
        np.testing.assert_array_equal(full[c, s], per_type_full(ct, p[c, s].covariances(), K, D))
    out = jax.jit(lambda q: q.full_covariances())(p.astype(jnp.float32))
    assert isinstance(out, jax.Array) and out.shape == full.shape
    np.testing.assert_allclose(np.asarray(out), full, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_as_full_is_the_same_mixture_exactly(ct, x64):
    """The full layout of every type (batched, host and jax) has the same weights, means and
    covariances bit for bit, and the same log-likelihood (float64) as the type's own layout."""
    p = batched_params(ct)
    f = p.as_full()
    assert f.covariance_type == "full" and f.scales.shape == (2, 4, K, D) and f.corr_chol.shape == (2, 4, K, D, D)
    np.testing.assert_array_equal(f.weights, p.weights)
    np.testing.assert_array_equal(f.means, p.means)
    np.testing.assert_array_equal(f.covariances(), p.full_covariances())
    x = np.random.default_rng(1).normal(size=(50, D))
    np.testing.assert_allclose(log_likelihood(f[1, 2], x), log_likelihood(p[1, 2], x), rtol=1e-12)
    out = jax.jit(lambda q: q.as_full().covariances())(p.astype(jnp.float32))
    np.testing.assert_allclose(np.asarray(out), p.full_covariances(), rtol=1e-5, atol=1e-6)
    assert (f is p) == (ct == "full")


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_component_sds_are_the_square_roots_of_the_diagonals(ct):
    p = batched_params(ct, seed=2)
    sds = p.component_sds()
    assert sds.shape == (2, 4, K, D)
    np.testing.assert_allclose(sds, np.sqrt(np.diagonal(p.full_covariances(), axis1=-2, axis2=-1)), rtol=1e-14)


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
@pytest.mark.parametrize("k, d", [(1, 1), (3, 2), (5, 4)])
def test_n_parameters_is_sklearns_count(ct, k, d):
    sk = SKGaussianMixture(k, covariance_type=ct)
    sk.means_ = np.zeros((k, d))
    expected = sk._n_parameters()
    assert layouts.n_parameters(ct, k, d) == criteria.n_parameters(ct, k, d) == expected
    w, m, c = true_mixture(ct, k, d, seed=3)
    assert GMMParams.from_covariances(w, m, c, ct, xp=np).n_parameters == expected


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_bic_aic_equal_sklearns_at_the_same_parameters(ct, x64):
    w, m, c = true_mixture(ct, K, D, seed=4)
    x = np.random.default_rng(4).normal(size=(150, D)) * 2.0 + m[0]
    gm = GaussianMixture(K, covariance_type=ct, prior=None, random_state=0).fit(x)
    sk = SKGaussianMixture(K, covariance_type=ct)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        setattr(sk, name, getattr(gm, name))
    assert gm.bic(x) == pytest.approx(sk.bic(x), rel=1e-10)
    assert gm.aic(x) == pytest.approx(sk.aic(x), rel=1e-10)
    loglik = float(np.sum(gm.score_samples(x)))
    assert criteria.bic(loglik, sk._n_parameters(), x.shape[0]) == pytest.approx(sk.bic(x), rel=1e-10)
    r = gm.predict_proba(x)
    entropy = -np.sum(r * np.log(np.maximum(r, 1e-300)))
    assert gm.icl(x) == pytest.approx(gm.bic(x) + 2 * entropy, rel=1e-10)
    assert criteria.assignment_entropy(np.eye(3)) == 0.0


def test_covariances_from_precisions_inverts_each_layout():
    for ct in COVARIANCE_TYPES:
        w, m, c = true_mixture(ct, K, D, seed=5)
        prec = GMMParams.from_covariances(w, m, c, ct, xp=np).precisions()
        np.testing.assert_allclose(layouts.covariances_from_precisions(prec, ct), c, rtol=1e-12)


# -- permutations ---------------------------------------------------------------------------------
@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_permute_one_order_per_draw_and_one_for_all(ct):
    p = batched_params(ct, seed=6)
    rng = np.random.default_rng(6)
    perms = np.argsort(rng.random((2, 4, K)), axis=-1)
    out = p.permute(perms)
    shared = p.permute(perms[1, 2])
    for c, s in itertools.product(range(2), range(4)):
        for q, order in ((out, perms[c, s]), (shared, perms[1, 2])):
            np.testing.assert_array_equal(q.weights[c, s], p.weights[c, s][order])
            np.testing.assert_array_equal(q.means[c, s], p.means[c, s][order])
            if ct == "tied":
                assert q.scales is p.scales and q.corr_chol is p.corr_chol
            else:
                np.testing.assert_array_equal(q.scales[c, s], p.scales[c, s][order])
            if ct == "full":
                np.testing.assert_array_equal(q.corr_chol[c, s], p.corr_chol[c, s][order])
            # the covariances move with their components
            np.testing.assert_array_equal(q[c, s].full_covariances(), p[c, s].full_covariances()[order])
    back = out.permute(np.argsort(perms, axis=-1))
    for name in ("weights", "means", "scales"):
        np.testing.assert_array_equal(getattr(back, name), getattr(p, name))
    with pytest.raises(ValueError, match="order must have shape"):
        p.permute(perms[0])


def test_permute_under_jit_keeps_jax_arrays():
    p = batched_params("full", batch=(3,), seed=7).astype(jnp.float32)
    perms = jnp.asarray(np.argsort(np.random.default_rng(7).random((3, K)), axis=-1))
    out = jax.jit(lambda q, o: q.permute(o))(p, perms)
    assert isinstance(out.means, jax.Array)
    for b in range(3):
        np.testing.assert_array_equal(np.asarray(out.means[b]), np.asarray(p.means[b])[np.asarray(perms[b])])


# -- units ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_standardise_round_trip_and_the_standardised_covariances(ct):
    p = batched_params(ct, seed=8)
    x = np.random.default_rng(8).normal(size=(50, D)) * [3.0, 0.2] + [100.0, -5.0]
    shift, scale = units.standardisation(x, ct)
    z = p.standardise(shift, scale)
    back = z.unstandardise(shift, scale)
    for name in ("weights", "means", "scales", "corr_chol"):
        a, b = getattr(back, name), getattr(p, name)
        if a is None:
            assert b is None
        else:
            np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-12)
    # the covariances of z = (x - shift) / scale, in every layout
    s = scale if ct != "spherical" else np.full(D, scale[0])
    expected = p.full_covariances() / np.outer(s, s)
    np.testing.assert_allclose(z.full_covariances(), expected, rtol=1e-13)
    one = p[0, 0]
    np.testing.assert_allclose(
        layouts.standardise_covariances(one.covariances(), ct, scale), z[0, 0].covariances(), rtol=1e-13
    )


def test_standardisation_weighted_moments_spherical_and_reg_covar():
    rng = np.random.default_rng(9)
    x = rng.normal(size=(400, 3)) * [1.0, 10.0, 0.01] + [5.0, -3.0, 1e3]
    x[:, 1] = np.where(np.arange(400) < 200, x[:, 1], 7.0)
    w = rng.uniform(0.1, 2.0, 400)
    shift, scale = units.standardisation(x, "full", w)
    z = (x - shift) / scale
    np.testing.assert_allclose(np.average(z, axis=0, weights=w), 0.0, atol=1e-9)
    np.testing.assert_allclose(np.average(z**2, axis=0, weights=w), 1.0, rtol=1e-9)
    _, sph = units.standardisation(x, "spherical", w)
    assert np.all(sph == sph[0]) and sph[0] == pytest.approx(np.sqrt(np.mean(scale**2)), rel=1e-12)
    _, reg = units.standardisation(x, "diag", w, reg_covar=0.5)
    np.testing.assert_allclose(reg, np.sqrt(scale**2 + 0.5), rtol=1e-12)
    const = np.column_stack([x[:, 0], np.full(400, 3.0)])
    assert units.standardisation(const, "diag")[1][1] == 1.0  # a constant feature keeps its units
    rows = units.standardise_rows(x, shift, scale, np.float32, 410)
    assert rows.shape == (410, 3) and rows.dtype == np.float32 and not rows[400:].any()
    np.testing.assert_array_equal(rows[:400], z.astype(np.float32))


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_log_jacobian_is_the_log_determinant_of_the_maps(ct, x64):
    p = batched_params(ct, batch=(), seed=10)
    shift = np.array([3.0, -1.0])
    scale = np.array([2.5, 0.3]) if ct != "spherical" else np.array([1.7, 1.7])

    # parameters: log |det d(standardised means, scales) / d(means, scales)|, by autodiff
    def flat_std(v):
        means = v[: K * D].reshape(K, D)
        scales = v[K * D:].reshape(p.scales.shape)
        q = p.replace(means=means, scales=scales).standardise(jnp.asarray(shift), jnp.asarray(scale))
        return jnp.concatenate([q.means.ravel(), q.scales.ravel()])

    v = jnp.concatenate([jnp.asarray(p.means).ravel(), jnp.asarray(p.scales).ravel()])
    _, logdet = np.linalg.slogdet(np.asarray(jax.jacfwd(flat_std)(v)))
    assert units.log_jacobian(scale, 0.0, p) == pytest.approx(logdet, rel=1e-12)
    # data: log |det dz/dx| per point, and the densities themselves
    _, logdet_x = np.linalg.slogdet(np.asarray(jax.jacfwd(lambda x: (x - shift) / scale)(jnp.zeros(D))))
    assert units.log_jacobian(scale) == pytest.approx(logdet_x, rel=1e-12)
    x = np.random.default_rng(10).normal(size=(30, D)) * scale + shift
    z = (x - shift) / scale
    pz = p.standardise(shift, scale)
    np.testing.assert_allclose(
        np.asarray(log_likelihood(p.astype(jnp.float64), jnp.asarray(x))),
        np.asarray(log_likelihood(pz.astype(jnp.float64), jnp.asarray(z))) + units.log_jacobian(scale),
        rtol=1e-12,
    )
    # the log posterior: likelihood of total_weight points plus the prior's densities
    w = np.random.default_rng(11).uniform(0.5, 2.0, 30)
    rprior = resolve_prior(Prior(), x, K, ct, w, "host")
    lhs = float(log_posterior(p.astype(jnp.float64), x, rprior, w))
    rhs = float(log_posterior(pz.astype(jnp.float64), z, rprior.affine(shift, scale), w))
    assert lhs == pytest.approx(rhs + units.log_jacobian(scale, w.sum(), p), rel=1e-11)
