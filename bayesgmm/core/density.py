"""Log densities, responsibilities and the chunked E-step of a Gaussian mixture (pure JAX).

Data enter the passes as blocks ``xb`` of shape ``(n_blocks, block, D)`` with weights ``wb`` of shape
``(n_blocks, block)`` (padding rows have weight 0), and ``lax.scan`` runs over the blocks, so arrays of
shape ``(n_samples, n_components)`` never exist whole during a fit.

The E-step works in *whitened* coordinates ``y_k = (x - mu_k) @ P_k`` (``P_k`` the precision
Cholesky factor), which gives both the log densities and sufficient statistics that are centred
at the current means and scaled by the current covariances -- the form that keeps float32
accurate.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

from .params import GMMParams

__all__ = [
    "EStepStats",
    "component_log_prob",
    "log_likelihood",
    "responsibilities",
    "estep_stats",
    "to_blocks",
]

_LOG_2PI = math.log(2 * math.pi)


class EStepStats(NamedTuple):
    """Sufficient statistics of one E-step, centred at the current means and whitened.

    Attributes
    ----------
    nk : (K,) weighted responsibility totals
    t1 : (K, D) ``sum_n r_nk y_nk``
    t2 : (K, D, D) full, (D, D) tied (summed over k), (K, D) diag, (K,) spherical:
         ``sum_n r_nk y_nk y_nk^T`` (or its diagonal / trace)
    loglik : () ``sum_n w_n log p(x_n)``
    """

    nk: jax.Array
    t1: jax.Array
    t2: jax.Array
    loglik: jax.Array


def _whiten(params: GMMParams, x):
    """Whitened residuals ``y`` of shape (n, K, D) and log densities ``(n, K)``."""
    ct = params.covariance_type
    n, d = x.shape
    k = params.n_components
    if ct == "full":
        p = params.precisions_cholesky()  # (K, D, D) upper
        w = jnp.transpose(p, (1, 0, 2)).reshape(d, k * d)
        b = jnp.einsum("kd,kde->ke", params.means, p)
        y = (x @ w).reshape(n, k, d) - b
        logdet = jnp.sum(jnp.log(jnp.diagonal(p, axis1=-2, axis2=-1)), axis=-1)  # (K,)
    elif ct == "tied":
        p = params.precisions_cholesky()  # (D, D)
        y = (x @ p)[:, None, :] - (params.means @ p)[None]
        logdet = jnp.broadcast_to(jnp.sum(jnp.log(jnp.diagonal(p))), (k,))
    elif ct == "diag":
        y = (x[:, None, :] - params.means[None]) / params.scales[None]
        logdet = -jnp.sum(jnp.log(params.scales), axis=-1)
    else:  # spherical
        y = (x[:, None, :] - params.means[None]) / params.scales[None, :, None]
        logdet = -d * jnp.log(params.scales)
    logp = -0.5 * jnp.sum(y * y, axis=-1) + logdet - 0.5 * d * _LOG_2PI
    return y, logp


def component_log_prob(params: GMMParams, x):
    """Per-component Gaussian log densities ``log N(x_n | mu_k, Sigma_k)``.

    Parameters
    ----------
    params : GMMParams (no batch axes)
    x : array of shape (n_samples, n_features)

    Returns
    -------
    array of shape (n_samples, n_components)
    """
    return _whiten(params, x)[1]


def _log_weights(weights):
    return jnp.where(weights > 0, jnp.log(jnp.where(weights > 0, weights, 1.0)), -jnp.inf)


def weighted_log_prob(params: GMMParams, x):
    """``log w_k + log N(x_n | mu_k, Sigma_k)``, shape (n_samples, n_components)."""
    return component_log_prob(params, x) + _log_weights(params.weights)


def log_likelihood(params: GMMParams, x):
    """Pointwise log-likelihood ``log p(x_n | theta)``, shape (n_samples,)."""
    return logsumexp(weighted_log_prob(params, x), axis=-1)


def responsibilities(params: GMMParams, x):
    """Posterior component probabilities ``p(z_n = k | x_n, theta)``, shape (n_samples, K)."""
    lp = weighted_log_prob(params, x)
    return jnp.exp(lp - logsumexp(lp, axis=-1, keepdims=True))


def _block_stats(params: GMMParams, x, w, resp=None) -> EStepStats:
    y, logp = _whiten(params, x)
    logp = logp + _log_weights(params.weights)
    lse = logsumexp(logp, axis=-1)
    if resp is None:
        resp = jnp.exp(logp - lse[:, None])
    r = resp * w[:, None]
    nk = jnp.sum(r, axis=0)
    # t1 as a plain reduction of r * y (which t2 needs anyway): the batched mat-vec
    # einsum("nk,nkd->kd") it replaces ran several times slower on CPU.
    yr = y * r[..., None]
    t1 = jnp.sum(yr, axis=0)
    ct = params.covariance_type
    if ct == "full":
        t2 = jnp.einsum("nkd,nke->kde", yr, y)
    elif ct == "tied":
        t2 = jnp.einsum("nkd,nke->de", yr, y)
    elif ct == "diag":
        t2 = jnp.sum(yr * y, axis=0)
    else:
        t2 = jnp.sum(yr * y, axis=(0, 2))
    # padding rows have w = 0; guard 0 * (-inf) for points no component can explain
    loglik = jnp.sum(jnp.where(w > 0, w * lse, 0.0))
    return EStepStats(nk, t1, t2, loglik)


def estep_stats(params: GMMParams, xb, wb, resp_fn=None) -> EStepStats:
    """One pass over the data blocks: whitened sufficient statistics and the log-likelihood.

    Parameters
    ----------
    params : GMMParams (no batch axes)
    xb : array of shape (n_blocks, block, D)
    wb : array of shape (n_blocks, block)
    resp_fn : callable ``(block_index, x_block) -> (block, K)``, optional
        Responsibilities to use instead of the posterior ones (initialisation).

    Returns
    -------
    EStepStats
    """

    def body(carry, inp):
        i, x, w = inp
        resp = None if resp_fn is None else resp_fn(i, x)
        s = _block_stats(params, x, w, resp)
        return jax.tree_util.tree_map(jnp.add, carry, s), None

    first = jax.eval_shape(lambda: _block_stats(params, xb[0], wb[0]))
    init = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), first)
    idx = jnp.arange(xb.shape[0])
    out, _ = jax.lax.scan(body, init, (idx, xb, wb))
    return out


def to_blocks(x, w, block_size: int):
    """Pad ``x`` (n, D) and ``w`` (n,) with zero-weight rows and reshape into blocks.

    Returns
    -------
    xb : (n_blocks, block, D), wb : (n_blocks, block)
    """
    n, d = x.shape
    # small data are padded to a power of two so that nearby sizes share one compilation
    block = max(1, min(int(block_size), _bucket(n)))
    n_blocks = -(-n // block)
    pad = n_blocks * block - n
    if pad:
        x = jnp.concatenate([x, jnp.zeros((pad, d), x.dtype)], axis=0)
        w = jnp.concatenate([w, jnp.zeros((pad,), w.dtype)], axis=0)
    return x.reshape(n_blocks, block, d), w.reshape(n_blocks, block)


def _bucket(n: int) -> int:
    return 1 << max(5, (int(n) - 1).bit_length())


def default_block_size(n_components: int, n_features: int, budget: int = 1 << 21) -> int:
    """Rows per block so that a block's ``(block, K, D)`` working set holds about ``budget`` floats."""
    return int(max(256, budget // max(1, n_components * n_features)))


def map_blocks(fn, x, block_size: int):
    """Apply ``fn`` (rows -> rows) to ``x`` in blocks with ``lax.map``; returns the stacked rows."""
    n = x.shape[0]
    xb, _ = to_blocks(x, jnp.zeros((n,), x.dtype), block_size)
    out = jax.lax.map(fn, xb)
    return out.reshape((-1,) + out.shape[2:])[:n]
