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
import numpy as np
from jax.scipy.special import logsumexp

from . import linalg
from .density import _PRECISION, EStepStats, _block_stats, _log_weights, _whiten_c, _Whitening, estep_stats
from .params import GMMParams

__all__ = [
    "MaskedBlocks",
    "block_rows_conditional_means",
    "block_rows_scores",
    "conditional_mean",
    "estep_stats_missing",
    "impute_draw",
    "masked_component_log_prob",
    "masked_log_likelihood",
    "masked_weighted_log_prob",
    "missing_block_size",
    "pattern_blocks",
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


class MaskedBlocks(NamedTuple):
    """Data with missing cells in the layout of :func:`pattern_blocks`: every block holds rows of
    one pattern of missingness.

    Attributes
    ----------
    x : (n_blocks, block, D), the standardised rows, missing cells set to 0
    pattern : (n_blocks,) int32, the pattern of each block: a row of ``patterns``
    patterns : (n_patterns, D), 1.0 for an observed cell and 0.0 for a missing one
    """

    x: jax.Array
    pattern: jax.Array
    patterns: jax.Array

    @property
    def shape(self):
        return self.x.shape

    @property
    def dtype(self):
        return self.x.dtype


def pattern_blocks(z, w, block_size: int, dtype, *, return_rows: bool = False):
    """Host layout of rows with NaN cells for the masked passes: rows grouped by their pattern of
    missingness, each pattern padded to whole blocks of ``block`` rows (zero-weight rows).

    Within a block every row has the same observed cells, so that the block is whitened by one
    matrix per component (:func:`estep_stats_missing`), as complete data are. The block count and
    the pattern count are padded (empty blocks, unused patterns) so that data of similar size and
    missingness share programs.

    Parameters
    ----------
    z : ndarray of shape (n, D), NaN for missing cells (standardised)
    w : ndarray of shape (n,)
    block_size : int, the largest block
    dtype : the float dtype of the passes
    return_rows : bool, default=False
        Also return where each row went (for per-row results, see :func:`block_rows_scores`).

    Returns
    -------
    MaskedBlocks (numpy arrays), the weights ``wb`` of shape (n_blocks, block) and, with
    ``return_rows``, ``rows`` of shape (n_blocks, block): the row of ``z`` in each slot (-1 for
    padding)
    """
    n, d = z.shape
    obs = ~np.isnan(z)
    if d <= 62:  # each row's pattern as the bits of one integer: a 1-D unique, not a row sort
        codes = obs.astype(np.int64) @ (np.int64(1) << np.arange(d, dtype=np.int64))
        _, first_row, inverse, counts = np.unique(codes, return_index=True, return_inverse=True, return_counts=True)
        patterns = obs[first_row]
    else:
        patterns, inverse, counts = np.unique(obs, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    n_pat = len(patterns)
    # blocks of a size that wastes at most about half the rows on padding across the patterns
    block = int(min(block_size, max(32, 1 << max(0, int(np.log2(max(1.0, n / (2 * n_pat))))))))
    per = -(-counts // block)  # blocks of each pattern
    n_blocks = int(per.sum())
    n_blocks_pad = (1 << (n_blocks - 1).bit_length()) if n_blocks <= 16 else -(-n_blocks // 16) * 16
    # slot -> row: each pattern's rows (in their order), then -1 up to its whole blocks
    order = np.argsort(inverse, kind="stable")
    slots = np.full((n_blocks_pad, block), -1, np.int64)
    pat = np.zeros(n_blocks_pad, np.int32)
    b0 = 0
    r0 = 0
    for p in range(n_pat):
        flat = np.full(per[p] * block, -1, np.int64)
        flat[: counts[p]] = order[r0 : r0 + counts[p]]
        slots[b0 : b0 + per[p]] = flat.reshape(per[p], block)
        pat[b0 : b0 + per[p]] = p
        b0 += per[p]
        r0 += counts[p]
    valid = slots >= 0
    src = np.where(valid, slots, 0)
    x = np.where(valid[..., None] & obs[src], z[src], 0.0).astype(dtype)
    wb = np.where(valid, np.asarray(w, np.float64)[src], 0.0).astype(dtype)
    p_pad = 1 << max(0, (n_pat - 1).bit_length())
    table = np.ones((p_pad, d), dtype)
    table[:n_pat] = patterns
    out = (MaskedBlocks(x, pat, table), wb)
    return out + (slots,) if return_rows else out


class _PatternWhitening(NamedTuple):
    """The whitening of :mod:`.density` for every pattern of missingness (leading axis P), and the
    whitened conditional covariance of the missing cells per unit of responsibility."""

    wh: _Whitening
    correction: jax.Array  # full (P, K, D, D); tied (P, D, D); diag/spherical (P, K, D)


def _pattern_whitening(params: GMMParams, patterns) -> _PatternWhitening:
    """Per pattern ``m`` and component: ``P = Q U`` with ``Q = M B^-1 M`` (so that
    ``y = (x - mu) P = U^T Q r`` and ``|y|^2 = r^T Sigma_oo^-1 r``), the log normaliser of the
    observed cells, and ``I - U^T Q U``."""
    ct = params.covariance_type
    k, d = params.n_components, params.n_features
    n_pat = patterns.shape[0]
    centre = jnp.sum(jnp.where(params.weights > 0, params.weights, 0.0)[:, None] * params.means, axis=0)
    mc = params.means - centre
    n_miss = d - jnp.sum(patterns, axis=-1)  # (P,)
    if ct in ("full", "tied"):
        u = params.cov_chol()
        uk = u if ct == "full" else u[None]  # (K or 1, D, D)
        sigma = uk @ jnp.swapaxes(uk, -1, -2)
        mm = patterns[:, None, :, None] * patterns[:, None, None, :]
        b = mm * sigma[None] + jax.vmap(jnp.diag)(1.0 - patterns)[:, None]  # (P, K or 1, D, D)
        lb = linalg.cholesky(b)
        linv = linalg.inv_lower(lb)
        q = (jnp.swapaxes(linv, -1, -2) @ linv) * mm  # M B^-1 M
        pw = q @ uk[None]  # (P, K or 1, D, D): y = (x - mu) @ pw
        logdet = -jnp.sum(jnp.log(jnp.diagonal(lb, axis1=-2, axis2=-1)), axis=-1)  # -log det(Sigma_oo) / 2
        logdet = logdet + 0.5 * n_miss[:, None] * _LOG_2PI  # the missing cells' share of -D/2 log 2 pi
        eye = jnp.eye(d, dtype=u.dtype)
        correction = eye - jnp.swapaxes(uk, -1, -2)[None] @ q @ uk[None]
        if ct == "full":
            bb = jnp.einsum("kd,pkde->pke", mc, pw, precision=_PRECISION)
            w = jnp.concatenate(
                [jnp.transpose(pw, (0, 2, 1, 3)).reshape(n_pat, d, k * d), -bb.reshape(n_pat, 1, k * d)], axis=1
            )
            return _PatternWhitening(_Whitening(pw, w, centre, bb, logdet), correction)
        pw, correction = pw[:, 0], correction[:, 0]
        bb = jnp.einsum("kd,pde->pke", mc, pw, precision=_PRECISION)
        logdet = jnp.broadcast_to(logdet, (n_pat, k))
        return _PatternWhitening(_Whitening(pw, None, centre, bb, logdet), correction)
    s = params.scales if ct == "diag" else jnp.broadcast_to(params.scales[:, None], (k, d))
    pw = patterns[:, None, :] / s[None]  # (P, K, D): the observed cells' 1 / scale, 0 elsewhere
    logdet = -jnp.sum(patterns[:, None, :] * jnp.log(s)[None], axis=-1) + 0.5 * n_miss[:, None] * _LOG_2PI
    correction = jnp.broadcast_to((1.0 - patterns)[:, None, :], (n_pat, k, d))
    bb = jnp.broadcast_to(mc, (n_pat, k, d))
    return _PatternWhitening(_Whitening(pw, None, centre, bb, logdet), correction)


def estep_stats_missing(params: GMMParams, xb, wb, resp_fn=None) -> EStepStats:
    """:func:`bayesgmm.core.density.estep_stats` for data with missing cells (expected statistics).

    Each block of :func:`pattern_blocks` holds one pattern of missingness, so it is whitened by
    that pattern's matrices (``y = U^T Q (x - mu)``, one product per block as for complete data)
    and its statistics gain the whitened conditional covariance of the missing cells,
    ``n_k (I - U^T Q U)``. A plain array ``xb`` (the initialisation's complete, zero-filled view)
    gets :func:`~bayesgmm.core.density.estep_stats`.

    Parameters
    ----------
    params : GMMParams (no batch axes)
    xb : MaskedBlocks, see :func:`pattern_blocks` (or a plain array of blocks)
    wb : array of shape (n_blocks, block)
    resp_fn : callable ``(block_index, x_block) -> (block, K)``, optional
        Responsibilities to use instead of the posterior ones.

    Returns
    -------
    EStepStats
        Whitened at the current parameters as those of complete data, the missing cells
        replaced by their conditional expectations (first and second moments); ``loglik`` is the
        observed-data log-likelihood.
    """
    if not isinstance(xb, MaskedBlocks):
        return estep_stats(params, xb, wb, resp_fn)
    ct = params.covariance_type
    # spherical: whitened per feature (the missing cells drop out), statistics summed over them
    wparams = _whitening_params(params)
    table = _pattern_whitening(params, xb.patterns)

    def body(carry, inp):
        i, x, p, w = inp
        resp = None if resp_fn is None else resp_fn(i, x)
        s = _block_stats(wparams, x, w, resp, _block_whitening(table, p))
        corr = table.correction[p]
        if ct == "full":
            t2 = s.t2 + s.nk[:, None, None] * corr
        elif ct == "tied":
            t2 = s.t2 + jnp.sum(s.nk) * corr
        elif ct == "diag":
            t2 = s.t2 + s.nk[:, None] * corr
        else:
            t2 = jnp.sum(s.t2, axis=-1) + s.nk * jnp.sum(corr, axis=-1)
        s = s._replace(t2=t2)
        return jax.tree_util.tree_map(jnp.add, carry, s), None

    init = _zero_stats(params, xb.x.dtype)
    out, _ = jax.lax.scan(body, init, (jnp.arange(xb.x.shape[0]), xb.x, xb.pattern, wb))
    return out


def _block_whitening(table: _PatternWhitening, p) -> _Whitening:
    t = table.wh
    return _Whitening(t.p[p], None if t.w is None else t.w[p], t.centre, t.b[p], t.logdet[p])


def _whitening_params(params: GMMParams) -> GMMParams:
    """Spherical parameters as diagonal ones (whitened per feature: missing cells drop out)."""
    if params.covariance_type != "spherical":
        return params
    scales = jnp.broadcast_to(params.scales[:, None], params.means.shape)
    return GMMParams(params.weights, params.means, scales, None, "diag")


def block_rows_scores(params: GMMParams, xb: MaskedBlocks):
    """Per row of the blocks, the log responsibilities given the observed cells and then the log
    density of the observed cells: shape (n_blocks, block, K + 1) (see :func:`pattern_blocks`)."""
    table = _pattern_whitening(params, xb.patterns)
    wparams = _whitening_params(params)

    def one(args):
        x, p = args
        _, logp, _ = _whiten_c(wparams, x, _block_whitening(table, p))
        logp = logp + _log_weights(params.weights)
        lse = logsumexp(logp, axis=-1, keepdims=True)
        return jnp.concatenate([logp - lse, lse], axis=-1)

    return jax.lax.map(one, (xb.x, xb.pattern))


def block_rows_conditional_means(params: GMMParams, xb: MaskedBlocks):
    """Per row of the blocks, ``E[x | x_o, theta]`` (every cell; the observed ones are the row's
    own up to rounding), shape (n_blocks, block, D) (see :func:`pattern_blocks`)."""
    table = _pattern_whitening(params, xb.patterns)
    wparams = _whitening_params(params)
    ct = params.covariance_type

    def one(args):
        x, p = args
        y, logp, _ = _whiten_c(wparams, x, _block_whitening(table, p))  # y = U^T Q r
        logp = logp + _log_weights(params.weights)
        resp = jnp.exp(logp - logsumexp(logp, axis=-1, keepdims=True))
        if ct == "full":
            dev = jnp.einsum("kde,nke->nkd", params.cov_chol(), y, precision=_PRECISION)
        elif ct == "tied":
            dev = y @ params.cov_chol().T
        else:
            dev = wparams.scales * y
        return jnp.einsum("nk,nkd->nd", resp, params.means[None] + dev)

    return jax.lax.map(one, (xb.x, xb.pattern))


def _zero_stats(params: GMMParams, dtype) -> EStepStats:
    k, d = params.n_components, params.n_features
    t2 = {"full": (k, d, d), "tied": (d, d), "diag": (k, d), "spherical": (k,)}[params.covariance_type]
    return EStepStats(jnp.zeros((k,), dtype), jnp.zeros((k, d), dtype), jnp.zeros(t2, dtype), jnp.zeros((), dtype))


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
