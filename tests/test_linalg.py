"""The E-step's statistics and the LAPACK-free linear algebra of the EM loop.

jaxlib 0.10's CPU LAPACK kernels block an XLA thread-pool worker while they wait for their own
sub-tasks; two of them running at once on a 2-core machine hang the program (see
:mod:`bayesgmm.core.linalg`). The EM loop must therefore contain no LAPACK call at all.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp

from bayesgmm import GMMParams, Prior
from bayesgmm.core import programs
from bayesgmm.core import linalg
from bayesgmm.core.density import estep_stats, to_blocks
from bayesgmm.infer import fit_map


def _spd(rng, batch, d, jitter=0.3):
    a = rng.normal(size=batch + (d, d))
    return a @ np.swapaxes(a, -1, -2) / d + jitter * np.eye(d)


def test_linalg_matches_numpy(x64):
    rng = np.random.default_rng(0)
    a = _spd(rng, (3, 4), 6)
    b = rng.normal(size=(3, 4, 6, 2))
    lo = np.linalg.cholesky(a)
    np.testing.assert_allclose(linalg.cholesky(a), lo, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(linalg.solve_lower(lo, b), np.linalg.solve(lo, b), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        linalg.solve_lower_transpose(lo, b), np.linalg.solve(np.swapaxes(lo, -1, -2), b), rtol=1e-10, atol=1e-12
    )
    np.testing.assert_allclose(linalg.inv_lower(lo), np.linalg.inv(lo), rtol=1e-10, atol=1e-12)
    # only the symmetric part counts, as for jnp.linalg.cholesky
    skew = rng.normal(size=a.shape) * 1e-3
    np.testing.assert_allclose(linalg.cholesky(a + skew - np.swapaxes(skew, -1, -2)), lo, rtol=1e-12, atol=1e-12)


def test_cholesky_of_non_positive_definite_is_not_finite(x64):
    rng = np.random.default_rng(1)
    a = _spd(rng, (4,), 5)
    a[1] = -a[1]  # negative definite
    a[2, 3, 3] = 0.0
    a[2, 3, :3] = a[2, :3, 3] = 0.0  # singular (a zero row and column)
    finite = np.isfinite(np.asarray(linalg.cholesky(a))).all(axis=(-2, -1))
    assert finite.tolist() == [True, False, False, True]


def _oracle_stats(weights, mu, cov, x, w):
    """Whitened statistics straight from the definition (numpy, float64)."""
    u = np.linalg.cholesky(cov)
    y = np.einsum("kde,nke->nkd", np.linalg.inv(u), x[:, None, :] - mu[None])  # (n, K, D)
    logp = (
        -0.5 * np.sum(y * y, -1)
        - np.sum(np.log(np.diagonal(u, axis1=-2, axis2=-1)), -1)
        - 0.5 * x.shape[1] * np.log(2 * np.pi)
        + np.log(weights)
    )
    lse = logsumexp(logp, axis=-1)
    r = np.exp(logp - lse[:, None]) * w[:, None]
    return r.sum(0), np.einsum("nk,nkd->kd", r, y), np.einsum("nk,nkd,nke->kde", r, y, y), np.sum(w * lse)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_full_estep_stats_match_definition(dtype):
    """``t2 = G P - t1 b^T`` (one big product) equals ``sum r y y^T``, with padding and weights."""
    rng = np.random.default_rng(2)
    n, d, k = 1000, 5, 3
    # far from the origin and with unequal spreads: the case the centring is there for
    x = rng.normal(size=(n, d)) * np.array([1.0, 3.0, 0.5, 2.0, 1.0]) + 40.0
    w = rng.uniform(0.5, 2.0, n)
    cov = _spd(rng, (k,), d)
    weights, mu = np.array([0.2, 0.3, 0.5]), x[rng.choice(n, k)] + rng.normal(size=(k, d))
    with jax.enable_x64(dtype == "float64"):
        p = GMMParams.from_covariances(*(jnp.asarray(a, dtype) for a in (weights, mu, cov)), "full")
        xb, wb = to_blocks(jnp.asarray(x, dtype), jnp.asarray(w, dtype), 384)  # 3 blocks, 152 padding rows
        got = jax.jit(estep_stats)(p, xb, wb)
        got = [np.asarray(v, np.float64) for v in got]
    want = _oracle_stats(weights, mu, cov, x, w)
    rtol = 1e-10 if dtype == "float64" else 2e-5
    for g, e in zip(got, want):
        scale = np.max(np.abs(e))
        np.testing.assert_allclose(g, e, rtol=rtol, atol=rtol * scale)


def _compiled_em_program(monkeypatch, covariance_type, prior):
    """The compiled fit program (initialisation, EM loop and final pass) of a small fit."""
    seen = {}
    orig = programs.programs

    def spy(profile):
        start, cont = orig(profile)

        def start_spy(*args, **kwargs):
            seen["call"] = (start, args, kwargs)
            return start(*args, **kwargs)

        return start_spy, cont

    monkeypatch.setattr(programs, "programs", spy)
    x = np.random.default_rng(3).normal(size=(64, 3))
    fit_map(jax.random.PRNGKey(0), x, n_components=2, covariance_type=covariance_type, prior=prior,
            max_iter=1, n_init=2)
    start, args, kwargs = seen["call"]
    return start.lower(*args, **kwargs).compile().as_text()


@pytest.mark.parametrize(
    "covariance_type, prior", [("full", None), ("full", Prior()), ("tied", Prior())], ids=["ml-full", "map-full", "map-tied"]
)
def test_em_loop_has_no_lapack_calls(monkeypatch, covariance_type, prior):
    hlo = _compiled_em_program(monkeypatch, covariance_type, prior)
    assert "while" in hlo  # the compiled EM loop itself
    calls = sorted(set(re.findall(r'custom_call_target="([^"]+)"', hlo)))
    assert not [c for c in calls if "lapack" in c], calls
