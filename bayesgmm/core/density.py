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

from .linalg import inv_lower
from .params import GMMParams

__all__ = [
    "EStepStats",
    "component_log_prob",
    "log_likelihood",
    "mixture_log_likelihood",
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


#: Matmul precision of the E-step: full float32/float64 (no TF32 or bf16 passes on accelerators, which
#: would cost EM its accuracy); a no-op on CPU.
_PRECISION = jax.lax.Precision.HIGHEST


class _Whitening(NamedTuple):
    """What whitening needs, computed once per pass (not once per block).

    ``centre`` (D,) is a reference point subtracted from every row before the products, so that
    the rounding of ``x @ P`` is relative to ``|x - centre|``, not ``|x|``.
    """

    p: jax.Array  # (K, D, D) full, (D, D) tied: precision Cholesky factors; diag/spherical: 1/scales
    w: jax.Array | None  # full: (D + 1, K*D), the factors side by side over the row -b; else None
    centre: jax.Array  # (D,)
    b: jax.Array  # (K, D): (mu_k - centre) @ P_k (full/tied), (mu_k - centre) (diag/spherical)
    logdet: jax.Array  # (K,) log det P_k


def _precisions_cholesky(params: GMMParams):
    """``params.precisions_cholesky()`` (full/tied) without LAPACK (see :mod:`.linalg`)."""
    return jnp.swapaxes(inv_lower(params.cov_chol()), -1, -2)


def _whitening(params: GMMParams) -> _Whitening:
    ct = params.covariance_type
    k, d = params.n_components, params.n_features
    # the mixture mean: close to every component, and ~0 for the standardised data of the runners
    centre = jnp.sum(jnp.where(params.weights > 0, params.weights, 0.0)[:, None] * params.means, axis=0)
    mc = params.means - centre
    if ct == "full":
        p = _precisions_cholesky(params)  # (K, D, D) upper
        b = jnp.einsum("kd,kde->ke", mc, p, precision=_PRECISION)
        w = jnp.concatenate([jnp.transpose(p, (1, 0, 2)).reshape(d, k * d), -b.reshape(1, k * d)], axis=0)
        logdet = jnp.sum(jnp.log(jnp.diagonal(p, axis1=-2, axis2=-1)), axis=-1)
        return _Whitening(p, w, centre, b, logdet)
    if ct == "tied":
        p = _precisions_cholesky(params)  # (D, D)
        b = jnp.dot(mc, p, precision=_PRECISION)
        logdet = jnp.broadcast_to(jnp.sum(jnp.log(jnp.diagonal(p))), (k,))
        return _Whitening(p, None, centre, b, logdet)
    if ct == "diag":
        return _Whitening(1.0 / params.scales, None, centre, mc, -jnp.sum(jnp.log(params.scales), axis=-1))
    return _Whitening(1.0 / params.scales, None, centre, mc, -d * jnp.log(params.scales))


def _whiten(params: GMMParams, x, wh: _Whitening | None = None):
    """Whitened residuals ``y`` of shape (n, K, D) and log densities ``(n, K)``.

    ``y_nk = (x_n - mu_k) @ P_k``, computed as ``(x_n - c) @ P_k - (mu_k - c) @ P_k``: for full
    covariances one ``[x - c, 1] @ [[P_1 ... P_K], [-b]]`` product, (n, D + 1) @ (D + 1, K*D).
    """
    y, logp, _ = _whiten_c(params, x, wh)
    return y, logp


def _whiten_c(params: GMMParams, x, wh: _Whitening | None = None):
    """:func:`_whiten`, and the centred rows with a column of ones ``[x - c, 1]`` (full only)."""
    if wh is None:
        wh = _whitening(params)
    ct = params.covariance_type
    n, d = x.shape
    k = params.n_components
    xc = x - wh.centre
    xc1 = None
    if ct == "full":
        xc1 = jnp.concatenate([xc, jnp.ones((n, 1), x.dtype)], axis=1)
        y = jnp.dot(xc1, wh.w, precision=_PRECISION).reshape(n, k, d)
    elif ct == "tied":
        y = jnp.dot(xc, wh.p, precision=_PRECISION)[:, None, :] - wh.b[None]
    elif ct == "diag":
        y = (xc[:, None, :] - wh.b[None]) * wh.p[None]
    else:  # spherical
        y = (xc[:, None, :] - wh.b[None]) * wh.p[None, :, None]
    logp = -0.5 * jnp.sum(y * y, axis=-1) + wh.logdet - 0.5 * d * _LOG_2PI
    return y, logp, xc1


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


@jax.custom_vjp
def mixture_log_likelihood(params: GMMParams, x):
    """:func:`log_likelihood` with its gradient in closed form (the NUTS and VI models use it).

    The gradient of ``sum_n c_n log p(x_n | theta)`` (``c`` the cotangent) is a function of the
    E-step statistics weighted by ``c`` -- ``n_k = sum c r``, ``t1_k = sum c r y``, ``t2_k = sum c r
    y y^T`` in the whitened coordinates ``y = U_k^-1 (x - mu_k)`` (``U_k`` the covariance
    Cholesky factor) -- which the forward pass's whitened residuals and responsibilities give
    in one more product over the data (:func:`_whitened_stats`):

    * weights: ``n_k / w_k``;  means: ``U_k^-T t1_k``;
    * full/tied factor ``U = diag(s) L``: ``G = tril(U^-T t2 - n diag(1 / U_ii))`` (tied: ``t2``
      and ``n`` summed over components), then ``d/ds_i = sum_j G_ij L_ij`` and ``d/dL = diag(s) G``;
    * diag: ``(t2_kd - n_k) / s_kd``;  spherical: ``(t2_k - D n_k) / s_k``.

    Autodiff through the triangular solves of the whitening costs several passes and a program
    several times larger to compile; this costs one product. The values are those of
    :func:`log_likelihood` exactly. Only reverse mode is defined (no ``jax.jvp``/``hessian``).

    Parameters
    ----------
    params : GMMParams (no batch axes)
    x : array of shape (n_samples, n_features)

    Returns
    -------
    array of shape (n_samples,)
    """
    return log_likelihood(params, x)


def _mixture_log_likelihood_fwd(params, x):
    # The backward pass reuses everything the forward computed: the whitening (its triangular
    # inverse), the whitened residuals y (n, K, D) and the responsibilities (n, K). Recomputing
    # them there (one more whitening product, sum of squares, logsumexp and exp over the data)
    # made the gradient cost about a third more than the value did. NUTS and VI always take the
    # value and the gradient together, so nothing is computed twice; the price is keeping y and
    # the responsibilities until the backward pass (the arrays the backward pass built anyway).
    wh = _whitening(params)
    y, logp, xc1 = _whiten_c(params, x, wh)
    logp = logp + _log_weights(params.weights)
    lse = logsumexp(logp, axis=-1)
    resp = jnp.exp(logp - lse[:, None])
    return lse, (params, wh, y, xc1, resp)


def _mixture_log_likelihood_bwd(res, g):
    params, wh, y, xc1, resp = res
    nk, t1, t2 = _whitened_stats(params, wh, y, xc1, resp * g[:, None])
    return log_likelihood_grad(params, EStepStats(nk, t1, t2, jnp.zeros((), nk.dtype)), wh), None


def log_likelihood_grad(params: GMMParams, stats: EStepStats, wh: _Whitening | None = None) -> GMMParams:
    """Gradient of ``sum_n c_n log p(x_n | params)`` from statistics weighted by ``c`` (see
    :func:`mixture_log_likelihood`), as a GMMParams of the same structure."""
    ct = params.covariance_type
    nk, t1, t2 = stats.nk, stats.t1, stats.t2
    w = params.weights
    g_w = jnp.where(w > 0, nk / jnp.where(w > 0, w, 1.0), 0.0)
    if ct in ("full", "tied"):
        u = params.cov_chol()
        p = _precisions_cholesky(params) if wh is None else wh.p  # U^-T (upper)
        if ct == "full":
            g_mu = jnp.einsum("kde,ke->kd", p, t1, precision=_PRECISION)
            n = nk[:, None, None]
        else:
            g_mu = jnp.einsum("de,ke->kd", p, t1, precision=_PRECISION)
            n = jnp.sum(nk)
        d = u.shape[-1]
        eye = jnp.eye(d, dtype=u.dtype)
        diag_u = jnp.diagonal(u, axis1=-2, axis2=-1)
        g_u = jnp.matmul(p, t2, precision=_PRECISION) - n * eye / diag_u[..., None, :]
        g_u = jnp.tril(g_u)
        s, corr = params.scales, params.corr_chol
        g_s = jnp.sum(g_u * corr, axis=-1)
        g_l = s[..., :, None] * g_u
        return GMMParams(g_w, g_mu, g_s, g_l, ct)
    if ct == "diag":
        s = params.scales
        return GMMParams(g_w, t1 / s, (t2 - nk[:, None]) / s, None, ct)
    s = params.scales  # spherical (K,)
    d = params.means.shape[-1]
    return GMMParams(g_w, t1 / s[:, None], (t2 - d * nk) / s, None, ct)


mixture_log_likelihood.defvjp(_mixture_log_likelihood_fwd, _mixture_log_likelihood_bwd)


def responsibilities(params: GMMParams, x):
    """Posterior component probabilities ``p(z_n = k | x_n, theta)``, shape (n_samples, K)."""
    lp = weighted_log_prob(params, x)
    return jnp.exp(lp - logsumexp(lp, axis=-1, keepdims=True))


def _block_stats(params: GMMParams, x, w, resp=None, wh: _Whitening | None = None) -> EStepStats:
    """Whitened statistics of one block ``x`` (n, D) with weights ``w`` (n,).

    Full covariance: ``t2_k = sum_n r_nk y_nk y_nk^T`` is formed as ``G_k P_k - t1_k b_k^T`` with
    ``G_k = sum_n r_nk y_nk (x_n - c)^T`` and ``b_k = (mu_k - c) P_k``, because
    ``y_nk^T = (x_n - c)^T P_k - b_k^T``. All of ``G`` is one (D, n) @ (n, K*D) matrix product; the
    direct ``einsum("nkd,nke->kde")`` is K thin batched products (plus transposes of the (n, K, D)
    working set) that run at a fraction of the CPU's matmul speed. Only one factor is unwhitened,
    so the rounding is ``eps * |x - c| / sd`` relative -- the same order as that of ``y`` itself.
    """
    if wh is None:
        wh = _whitening(params)
    y, logp, xc1 = _whiten_c(params, x, wh)
    logp = logp + _log_weights(params.weights)
    lse = logsumexp(logp, axis=-1)
    if resp is None:
        resp = jnp.exp(logp - lse[:, None])
    nk, t1, t2 = _whitened_stats(params, wh, y, xc1, resp * w[:, None])
    # padding rows have w = 0; guard 0 * (-inf) for points no component can explain
    loglik = jnp.sum(jnp.where(w > 0, w * lse, 0.0))
    return EStepStats(nk, t1, t2, loglik)


def _whitened_stats(params: GMMParams, wh: _Whitening, y, xc1, r):
    """``(nk, t1, t2)`` of :class:`EStepStats` from the whitened residuals ``y`` (n, K, D), the
    centred rows with a column of ones ``xc1`` (full only, else None) and the weighted
    responsibilities ``r`` (n, K) (see :func:`_block_stats`)."""
    nk = jnp.sum(r, axis=0)
    ct = params.covariance_type
    if ct == "full":
        n, k, d = y.shape
        # [x - c, 1]^T @ (r y): rows e < D give G (g[e, k, d] = sum_n (x_n - c)_e r_nk y_nkd), the
        # row of ones gives t1 = sum_n r_nk y_nk -- one product, no second pass over r * y.
        yr = (y * r[..., None]).reshape(n, k * d)
        g = jnp.dot(xc1.T, yr, precision=_PRECISION)  # (D + 1, K * D)
        t1 = g[d].reshape(k, d)
        g = g[:d].reshape(d, k, d)
        t2 = jnp.einsum("ekd,kef->kdf", g, wh.p, precision=_PRECISION) - t1[:, :, None] * wh.b[:, None, :]
        t2 = 0.5 * (t2 + jnp.swapaxes(t2, 1, 2))
    else:
        # t1 as a plain reduction of r * y (which t2 needs anyway): the batched mat-vec
        # einsum("nk,nkd->kd") it replaces ran several times slower on CPU.
        yr = y * r[..., None]
        t1 = jnp.sum(yr, axis=0)
    if ct == "tied":
        t2 = jnp.einsum("nkd,nke->de", yr, y, precision=_PRECISION)
    elif ct == "diag":
        t2 = jnp.sum(yr * y, axis=0)
    elif ct == "spherical":
        t2 = jnp.sum(yr * y, axis=(0, 2))
    return nk, t1, t2


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

    wh = _whitening(params)  # once per pass: its triangular solve stays out of the loop body

    def body(carry, inp):
        i, x, w = inp
        resp = None if resp_fn is None else resp_fn(i, x)
        s = _block_stats(params, x, w, resp, wh)
        return jax.tree_util.tree_map(jnp.add, carry, s), None

    first = jax.eval_shape(lambda: _block_stats(params, xb[0], wb[0], None, wh))
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
