"""Blocked evaluation of per-draw densities and responsibilities (the posterior's workhorse).

Every posterior quantity that touches the data -- pointwise log-likelihoods for LOO/WAIC,
posterior-mean responsibilities, the posterior predictive density, Stephens' relabelling -- is a
reduction over ``S`` draws of an ``(N, K)`` array. :class:`DrawEvaluator` runs those reductions over
blocks of draws *and* blocks of rows with jitted, ``vmap``-ped kernels of fixed shapes (the last
blocks are padded, so one compilation serves every block), so that ``S x N x K`` arrays never exist
whole.

Draws and data are first standardised on the host in float64 (``z = (x - shift) / scale``, the
model is equivariant under it, see :mod:`bayesgmm.core.units`): differences of large, nearly equal
numbers then never happen in float32 on the device.

Rows with NaN cells (missing values) are evaluated by their observed cells' marginal densities
(:mod:`bayesgmm.core.missing`): the kernels take a static ``missing`` flag, set when the data
have a NaN cell, so that complete data keep their programs.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from ..core.density import log_likelihood, weighted_log_prob
from ..core.missing import impute_draw, masked_log_likelihood, masked_weighted_log_prob
from ..core.params import GMMParams, to_device
from ..core.programs import default_dtype

__all__ = ["DrawEvaluator", "evenly_spaced", "flatten_draws"]

#: Floats per kernel call (about ``block_draws * block_rows * K * D``).
DEFAULT_BUDGET = 1 << 22


def flatten_draws(draws: GMMParams, batch_ndim: int) -> GMMParams:
    """Merge the first ``batch_ndim`` axes of every field into one draw axis ``S``."""

    def flat(a):
        return a.reshape((-1,) + a.shape[batch_ndim:])

    return jax.tree_util.tree_map(flat, draws)


def evenly_spaced(n_total: int, n: int) -> np.ndarray:
    """``n`` indices spread evenly over ``range(n_total)`` (repeated when ``n > n_total``), int64."""
    return np.floor(np.arange(n) * (n_total / n) + 0.5 * (n_total / n)).astype(np.int64).clip(0, n_total - 1)


def _logsumexp0(a):
    """``logsumexp`` over axis 0 of a float64 array (host side)."""
    m = np.max(a, axis=0)
    m = np.where(np.isfinite(m), m, 0.0)
    return m + np.log(np.sum(np.exp(a - m), axis=0))


def _pow2_ceil(n: int) -> int:
    return 1 << max(0, (int(n) - 1).bit_length())


# -- kernels (jitted once per shape; ``missing``: NaN cells marginalised out) --------------------
_jit_missing = partial(jax.jit, static_argnames=("missing",))


def _weighted_log_prob(params, x, missing=False):
    return (masked_weighted_log_prob if missing else weighted_log_prob)(params, x)


def _logresp(params, x, missing=False):
    lp = _weighted_log_prob(params, x, missing)
    return lp - logsumexp(lp, axis=-1, keepdims=True)


@_jit_missing
def _loglik_kernel(draws, x, missing=False):
    """(B, R) pointwise log-likelihoods."""
    return jax.vmap(masked_log_likelihood if missing else log_likelihood, (0, None))(draws, x)


@_jit_missing
def _resp_kernel(draws, x, missing=False):
    """(B, R, K) responsibilities ``p(z = k | x_r, theta_b)``."""
    return jnp.exp(jax.vmap(_logresp, (0, None, None))(draws, x, missing))


@_jit_missing
def _perm_resp_sum_kernel(draws, mask, perms, x, missing=False):
    """(R, K) sum over valid draws of relabelled responsibilities ``r[b, :, perms[b, k]]``."""
    r = jnp.exp(jax.vmap(_logresp, (0, None, None))(draws, x, missing))  # (B, R, K)
    r = jnp.take_along_axis(r, perms[:, None, :], axis=-1)
    return jnp.sum(jnp.where(mask[:, None, None], r, 0.0), axis=0)


@_jit_missing
def _cross_entropy_kernel(draws, x, qw, missing=False):
    """(B, K, K): ``c[b, k, j] = -sum_r qw[r, k] log r[b, r, j]`` (log floored at ``log(tiny)``)."""
    logr = jax.vmap(_logresp, (0, None, None))(draws, x, missing)
    floor = jnp.log(jnp.finfo(logr.dtype).tiny)
    logr = jnp.maximum(logr, floor)
    return -jnp.einsum("rk,brj->bkj", qw, logr)


@jax.jit
def _impute_kernel(draws, x, key, positions, row0):
    """(B, R, D): per draw one draw of the missing cells of ``x`` (:func:`impute_draw`), its key
    folded from ``key``, the draw's position and the block's first row (reproducible whatever the
    blocking of the draws)."""

    def one(params, j):
        return impute_draw(jax.random.fold_in(jax.random.fold_in(key, j), row0), params, x)

    return jax.vmap(one)(draws, positions)


class DrawEvaluator:
    """Reductions over draws of per-draw ``(N, K)`` quantities, in blocks of draws and rows.

    Parameters
    ----------
    draws : GMMParams with one leading draw axis ``(S, ...)``
        In the standardised units of ``x`` (numpy float64; moved to the device in
        :func:`bayesgmm.core.programs.default_dtype`).
    x : array of shape (N, D)
        Standardised data; NaN marks a missing cell (its row is evaluated by the marginal
        density of its observed cells).
    budget : int
        Approximate number of floats of the ``(block_draws, block_rows, K, D)`` working set
        (``(..., K, D, D)`` with missing cells, for full and tied covariances).

    Attributes
    ----------
    missing : bool
        Whether ``x`` has a NaN cell (the kernels then marginalise them out).
    """

    def __init__(self, draws: GMMParams, x, budget: int = DEFAULT_BUDGET):
        dtype = default_dtype()
        self.n_draws = int(draws.means.shape[0])
        self.n_components = int(draws.means.shape[-2])
        self.n_rows, d = np.shape(x)
        self.missing = bool(np.isnan(np.asarray(x)).any())
        k = self.n_components
        per_row = k * max(d, 1)
        if self.missing and draws.covariance_type in ("full", "tied"):
            per_row *= max(d, 1)  # one factorisation of the observed block per row and component
        # power-of-two block shapes: nearby sizes share one compilation of each kernel
        # (small sizes share the smallest bucket: compile time, not flops, dominates there)
        rows = max(1, min(self.n_rows, max(256, budget // per_row)))
        self.block_rows = _pow2_ceil(max(rows, 256))
        fit = max(1, budget // (self.block_rows * per_row))
        self.block_draws = min(_pow2_ceil(max(self.n_draws, 64)), 1 << (fit.bit_length() - 1))
        n_rb = -(-self.n_rows // self.block_rows)
        xp = np.zeros((n_rb * self.block_rows, d))
        xp[: self.n_rows] = x
        self._x = to_device(xp, dtype)
        # host arrays: a block of draws is taken on the host and sent (to_device), not gathered
        # on the device (an eager gather compiles a program per field and block shape)
        self._draws = jax.tree_util.tree_map(lambda a: np.asarray(a, dtype), draws)
        self._dtype = dtype

    # -- iteration helpers --------------------------------------------------------------------
    def _draw_blocks(self):
        b = self.block_draws
        for start in range(0, self.n_draws, b):
            stop = min(start + b, self.n_draws)
            idx = np.arange(start, start + b)
            mask = idx < stop
            idx = np.where(mask, idx, stop - 1)  # pad with a valid draw, masked out
            block = jax.tree_util.tree_map(lambda a: to_device(a[idx]), self._draws)
            yield start, stop, idx, to_device(mask), block

    def _row_blocks(self):
        r = self.block_rows
        for start in range(0, self._x.shape[0], r):
            yield start, min(start + r, self.n_rows), self._x[start : start + r]

    # -- reductions -----------------------------------------------------------------------------
    def pointwise_log_likelihood(self):
        """ndarray (S, N) float64 of ``log p(x_n | theta_s)``."""
        out = np.empty((self.n_draws, self.n_rows))
        for s0, s1, _, _, block in self._draw_blocks():
            for r0, r1, xr in self._row_blocks():
                ll = _loglik_kernel(block, xr, missing=self.missing)
                out[s0:s1, r0:r1] = np.asarray(ll)[: s1 - s0, : r1 - r0]
        return out

    def logsumexp_log_likelihood(self):
        """ndarray (N,) of ``logsumexp_s log p(x_n | theta_s)``."""
        out = np.full(self.n_rows, -np.inf)
        for s0, s1, _, _, block in self._draw_blocks():
            for r0, r1, xr in self._row_blocks():
                ll = np.asarray(_loglik_kernel(block, xr, missing=self.missing), np.float64)[: s1 - s0, : r1 - r0]
                out[r0:r1] = np.logaddexp(out[r0:r1], _logsumexp0(ll))
        return out

    def mean_responsibilities(self, perms=None):
        """ndarray (N, K): ``mean_s r[s, n, perms[s, k]]`` (``perms=None``: no relabelling)."""
        k = self.n_components
        out = np.zeros((self.n_rows, k))
        if perms is None:
            perms = np.broadcast_to(np.arange(k), (self.n_draws, k))
        for _, _, idx, mask, block in self._draw_blocks():
            pb = to_device(perms[idx], np.int32)
            for r0, r1, xr in self._row_blocks():
                part = _perm_resp_sum_kernel(block, mask, pb, xr, missing=self.missing)
                out[r0:r1] += np.asarray(part, np.float64)[: r1 - r0]
        return out / self.n_draws

    def impute(self, seed: int):
        """ndarray (S, N, D) float64: for every draw ``s``, one draw of the missing (NaN) cells
        from ``p(x_m | x_o, theta_s)`` (:func:`bayesgmm.core.missing.impute_draw`), standardised
        units; the observed cells are those of ``x`` (up to the device's rounding).

        Draw ``s`` of the row block starting at ``r0`` uses the PRNG key
        ``fold_in(fold_in(key(seed), s), r0)``: the same seed gives the same draws.
        """
        key = jax.random.key(int(seed))
        d = self._x.shape[1]
        out = np.empty((self.n_draws, self.n_rows, d))
        for s0, s1, idx, _, block in self._draw_blocks():
            pos = to_device(idx, np.int32)
            for r0, r1, xr in self._row_blocks():
                part = _impute_kernel(block, xr, key, pos, jnp.int32(r0))
                out[s0:s1, r0:r1] = np.asarray(part, np.float64)[: s1 - s0, : r1 - r0]
        return out

    def cross_entropy_costs(self, qw):
        """ndarray (S, K, K): ``c[s, k, j] = -sum_n qw[n, k] log r[s, n, j]``.

        ``qw`` of shape (N, K) (e.g. Stephens' ``Q`` times sample weights).
        """
        qp = np.zeros((self._x.shape[0], self.n_components))
        qp[: self.n_rows] = qw  # padding rows carry weight 0
        qp = to_device(qp, self._dtype)
        out = np.zeros((self.n_draws, self.n_components, self.n_components))
        r = self.block_rows
        for s0, s1, _, _, block in self._draw_blocks():
            for r0, _, xr in self._row_blocks():
                part = _cross_entropy_kernel(block, xr, qp[r0 : r0 + r], missing=self.missing)
                out[s0:s1] += np.asarray(part, np.float64)[: s1 - s0]
        return out
