"""Missing values: NaN cells marginalised out of the mixture (pure JAX).

Under missing at random, a row's likelihood is the mixture of the marginal densities of its
observed coordinates, ``p(x_o) = sum_k w_k N(x_o | mu_k,o, Sigma_k,oo)``, and the missing cells
have the conditional distribution ``x_m | x_o, z = k ~ N(mu_k,m + Sigma_k,mo Sigma_k,oo^-1 r_o,
Sigma_k,mm - Sigma_k,mo Sigma_k,oo^-1 Sigma_k,om)`` (``r_o = x_o - mu_k,o``).

Everything here is *masked*: a row keeps its length ``D`` and carries its observed mask ``m``
(NaN marks a missing cell), so that one compiled program serves every pattern of missingness.
For a full (or tied) covariance the observed block is embedded as

    B = M Sigma M + (I - M),      M = diag(m),

whose Cholesky factor is that of ``Sigma_oo`` with the identity in the missing rows and columns:
``log det B = log det Sigma_oo``, and for a residual ``r`` that is zero on the missing cells,
``q = B^-1 r`` is ``Sigma_oo^-1 r_o`` on the observed cells and zero elsewhere. Then

* the log marginal density is ``-(r . q + n_obs log 2 pi + log det B) / 2``;
* the conditional mean of the whole row is ``mu + Sigma q`` (the observed cells reproduce
  ``x_o``), i.e. ``y = U^T q`` in the whitened coordinates of :mod:`.density`;
* the conditional covariance is ``Sigma - Sigma Q Sigma`` with ``Q = B^-1 - (I - M)`` (zero on
  every observed row and column), ``I - U^T Q U`` whitened.

Those are the expected sufficient statistics of EM with missing data (Ghahramani & Jordan 1994):
:func:`estep_stats_missing` returns them in the whitened form of
:class:`bayesgmm.core.density.EStepStats`, so the M-step of :mod:`.em` is unchanged. Diagonal and
spherical covariances need no factorisation: the observed cells simply drop out.

Rows are factorised one by one (``O(D^3)`` per row and component for full covariances, against
``O(D^2)`` for complete rows): the fits use this pass only when the data have a missing cell.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

from . import linalg
from .density import EStepStats, _log_weights
from .params import GMMParams

__all__ = [
    "conditional_mean",
    "estep_stats_missing",
    "impute_draw",
    "masked_component_log_prob",
    "masked_log_likelihood",
    "masked_weighted_log_prob",
    "missing_block_size",
]

_LOG_2PI = math.log(2 * math.pi)


def missing_block_size(n_components: int, n_features: int, budget: int = 1 << 21) -> int:
    """Rows per block of the masked passes: a block's ``(block, K, D, D)`` working set (one
    factorisation per row and component) holds about ``budget`` floats."""
    return int(max(64, budget // max(1, n_components * n_features * n_features)))


def _split(x):
    """``(x with NaN cells set to 0, observed mask as floats)``."""
    obs = ~jnp.isnan(x)
    return jnp.where(obs, x, 0.0), obs.astype(x.dtype)


class _Solved(NamedTuple):
    quad: jax.Array  # (..., K): r . B^-1 r
    logdet: jax.Array  # (..., K): log det Sigma_oo
    q: jax.Array  # (..., K, D): B^-1 r (zero on the missing cells)
    factor: jax.Array | None  # (..., K, D, D) or (..., 1, D, D): the Cholesky factor of B (full/tied)


def _solve(params: GMMParams, r, m) -> _Solved:
    """The masked Gaussian algebra of residuals ``r`` (n, K, D) (zero on missing cells) with
    observed masks ``m`` (n, D)."""
    ct = params.covariance_type
    if ct in ("full", "tied"):
        u = params.cov_chol()
        sigma = u @ jnp.swapaxes(u, -1, -2)  # (K, D, D) or (D, D)
        if ct == "tied":
            sigma = sigma[None]  # one factorisation per row, shared by the components
        mm = m[:, None, :, None] * m[:, None, None, :]
        b = mm * sigma[None] + jax.vmap(jnp.diag)(1.0 - m)[:, None]  # (n, K or 1, D, D)
        lb = linalg.cholesky(b)
        z = linalg.solve_lower(lb, r[..., None])[..., 0]
        q = linalg.solve_lower_transpose(lb, z[..., None])[..., 0]
        logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(lb, axis1=-2, axis2=-1)), axis=-1)
        return _Solved(jnp.sum(z * z, axis=-1), jnp.broadcast_to(logdet, r.shape[:-1]), q, lb)
    s = params.scales if ct == "diag" else params.scales[:, None]  # (K, D) or (K, 1)
    v = s * s
    q = r / v
    logdet = jnp.sum(m[:, None, :] * jnp.log(v), axis=-1)
    return _Solved(jnp.sum(r * q, axis=-1), logdet, q, None)


def _residuals(params: GMMParams, x0, m):
    return m[:, None, :] * (x0[:, None, :] - params.means[None])


def _log_prob(solved: _Solved, m):
    n_obs = jnp.sum(m, axis=-1)[:, None]
    return -0.5 * (solved.quad + solved.logdet + n_obs * _LOG_2PI)


def masked_component_log_prob(params: GMMParams, x):
    """``log N(x_n,o | mu_k,o, Sigma_k,oo)``: the component log densities of each row's observed
    cells (NaN marks a missing cell), shape (n_samples, n_components).

    Parameters
    ----------
    params : GMMParams (no batch axes)
    x : array of shape (n_samples, n_features), NaN for missing cells

    Returns
    -------
    array of shape (n_samples, n_components); a row with no observed cell gets 0 (its marginal
    density is 1)
    """
    x0, m = _split(x)
    return _log_prob(_solve(params, _residuals(params, x0, m), m), m)


def masked_weighted_log_prob(params: GMMParams, x):
    """``log w_k + log N(x_n,o | ...)``, shape (n_samples, n_components)."""
    return masked_component_log_prob(params, x) + _log_weights(params.weights)


def masked_log_likelihood(params: GMMParams, x):
    """Pointwise log-likelihood of the observed cells ``log p(x_n,o | theta)``, shape (n_samples,).

    Equal to :func:`bayesgmm.core.density.log_likelihood` on rows without NaN (up to rounding);
    differentiable (reverse and forward mode) in ``params``.
    """
    return logsumexp(masked_weighted_log_prob(params, x), axis=-1)


def _whitened(params: GMMParams, q):
    """``U^T q``: the conditional-mean residual in the whitened coordinates of :mod:`.density`."""
    ct = params.covariance_type
    if ct == "full":
        return jnp.einsum("kde,nkd->nke", params.cov_chol(), q)
    if ct == "tied":
        return q @ params.cov_chol()
    s = params.scales if ct == "diag" else params.scales[:, None]
    return s * q


def _block_stats_missing(params: GMMParams, x, w, resp=None) -> EStepStats:
    """Expected whitened statistics of one block ``x`` (n, D) with NaN cells, weights ``w`` (n,)."""
    ct = params.covariance_type
    x0, m = _split(x)
    solved = _solve(params, _residuals(params, x0, m), m)
    logp = _log_prob(solved, m) + _log_weights(params.weights)
    lse = logsumexp(logp, axis=-1)
    if resp is None:
        resp = jnp.exp(logp - lse[:, None])
    r = resp * w[:, None]  # (n, K)
    nk = jnp.sum(r, axis=0)
    y = _whitened(params, solved.q)  # (n, K, D)
    yr = y * r[..., None]
    t1 = jnp.sum(yr, axis=0)
    miss = 1.0 - m  # (n, D)
    if ct in ("full", "tied"):
        u = params.cov_chol()
        d = y.shape[-1]
        # sum_n r_nk Q_nk, Q = B^-1 - (I - M): the missing block's conditional covariance, whitened
        linv = linalg.inv_lower(solved.factor)  # (n, K or 1, D, D)
        binv = jnp.swapaxes(linv, -1, -2) @ linv
        if ct == "full":
            sq = jnp.einsum("nk,nkde->kde", r, binv) - jax.vmap(jnp.diag)(r.T @ miss)
            t2 = jnp.einsum("nkd,nke->kde", yr, y) + nk[:, None, None] * jnp.eye(d, dtype=y.dtype)
            t2 = t2 - jnp.swapaxes(u, -1, -2) @ sq @ u
        else:
            rn = jnp.sum(r, axis=1)  # (n,)
            sq = jnp.einsum("n,nde->de", rn, binv[:, 0]) - jnp.diag(rn @ miss)
            t2 = jnp.einsum("nkd,nke->de", yr, y) + jnp.sum(nk) * jnp.eye(d, dtype=y.dtype)
            t2 = t2 - u.T @ sq @ u
        t2 = 0.5 * (t2 + jnp.swapaxes(t2, -1, -2))
    elif ct == "diag":
        t2 = jnp.sum(yr * y, axis=0) + r.T @ miss  # the missing cells' whitened variance is 1
    else:
        t2 = jnp.sum(yr * y, axis=(0, 2)) + r.T @ jnp.sum(miss, axis=-1)
    loglik = jnp.sum(jnp.where(w > 0, w * lse, 0.0))
    return EStepStats(nk, t1, t2, loglik)


def estep_stats_missing(params: GMMParams, xb, wb, resp_fn=None) -> EStepStats:
    """:func:`bayesgmm.core.density.estep_stats` for blocks with NaN cells (expected statistics).

    Parameters
    ----------
    params : GMMParams (no batch axes)
    xb : array of shape (n_blocks, block, D), NaN for missing cells
    wb : array of shape (n_blocks, block)
    resp_fn : callable ``(block_index, x_block) -> (block, K)``, optional
        Responsibilities to use instead of the posterior ones (initialisation); it receives the
        block with its NaN cells set to 0.

    Returns
    -------
    EStepStats
        Whitened at the current parameters as those of complete data, the missing cells
        replaced by their conditional expectations (first and second moments); ``loglik`` is the
        observed-data log-likelihood.
    """

    def body(carry, inp):
        i, x, w = inp
        resp = None if resp_fn is None else resp_fn(i, jnp.where(jnp.isnan(x), 0.0, x))
        s = _block_stats_missing(params, x, w, resp)
        return jax.tree_util.tree_map(jnp.add, carry, s), None

    first = jax.eval_shape(lambda: _block_stats_missing(params, xb[0], wb[0]))
    init = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), first)
    out, _ = jax.lax.scan(body, init, (jnp.arange(xb.shape[0]), xb, wb))
    return out


#: Marks the pass for :func:`bayesgmm.core.programs.em_start`: initialisations see the data with
#: their NaN cells set to 0 (the standardised column means).
estep_stats_missing.fills_missing = True


def _conditional(params: GMMParams, x):
    """Responsibilities given the observed cells (n, K) and the per-component conditional means
    of every cell (n, K, D), observed cells exactly ``x``."""
    x0, m = _split(x)
    solved = _solve(params, _residuals(params, x0, m), m)
    logp = _log_prob(solved, m) + _log_weights(params.weights)
    resp = jnp.exp(logp - logsumexp(logp, axis=-1, keepdims=True))
    mean = params.means[None] + _unwhitened(params, solved.q)
    mean = jnp.where(m[:, None, :] > 0, x0[:, None, :], mean)
    return resp, mean


def _unwhitened(params: GMMParams, q):
    """``Sigma q`` (n, K, D)."""
    ct = params.covariance_type
    if ct in ("full", "tied"):
        u = params.cov_chol()
        sigma = u @ jnp.swapaxes(u, -1, -2)
        if ct == "full":
            return jnp.einsum("kde,nke->nkd", sigma, q)
        return q @ sigma
    s = params.scales if ct == "diag" else params.scales[:, None]
    return s * s * q


def conditional_mean(params: GMMParams, x):
    """``E[x_n | x_n,o, theta]``: the missing cells replaced by their conditional expectation under
    the mixture (observed cells unchanged), shape (n_samples, n_features).

    The mixture of the components' conditional means ``mu_k,m + Sigma_k,mo Sigma_k,oo^-1 r_o``,
    weighted by the responsibilities given the observed cells.
    """
    resp, mean = _conditional(params, x)
    x0, m = _split(x)
    return jnp.where(m > 0, x0, jnp.einsum("nk,nkd->nd", resp, mean))


def impute_draw(key, params: GMMParams, x):
    """One draw of every missing cell from ``p(x_m | x_o, theta)`` (observed cells unchanged).

    The component is drawn from the responsibilities given the observed cells, then the missing
    cells from the component's conditional Gaussian by Matheron's rule: draw a whole row ``x*``
    from the component and correct it, ``x* + Sigma Q M (x - x*)``. Shape (n_samples, n_features).
    """
    x0, m = _split(x)
    n, d = x0.shape
    k1, k2 = jax.random.split(key)
    resp, _ = _conditional(params, x)
    z = jax.random.categorical(k1, jnp.log(jnp.maximum(resp, 1e-38)), axis=-1)  # (n,)
    eps = jax.random.normal(k2, (n, d), x0.dtype)
    if params.covariance_type == "full":
        xs = params.means[z] + jnp.einsum("nde,ne->nd", params.cov_chol()[z], eps)
    elif params.covariance_type == "tied":
        xs = params.means[z] + eps @ params.cov_chol().T
    elif params.covariance_type == "diag":
        xs = params.means[z] + params.scales[z] * eps
    else:
        xs = params.means[z] + params.scales[z][:, None] * eps
    # Matheron's rule per row with that row's component: residual of the observed cells
    e = m * (x0 - xs)
    ek = jnp.zeros((n, params.n_components, d), x0.dtype).at[jnp.arange(n), z].set(e)
    corr = _unwhitened(params, _solve(params, ek, m).q)[jnp.arange(n), z]  # (n, D)
    out = xs + corr
    return jnp.where(m > 0, x0, out)
