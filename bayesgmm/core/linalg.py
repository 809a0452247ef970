"""Small batched Cholesky factorisations and triangular solves in plain XLA operations.

The jitted EM loop uses these instead of ``jnp.linalg.cholesky`` / ``solve_triangular``. On CPU
those lower to jaxlib's LAPACK kernels, which in jaxlib 0.10 split a batch over XLA's intra-op
thread pool *from inside a pool worker* and block until the pieces finish: when as many LAPACK
calls run at once as the pool has threads (two on a 2-core machine: e.g. two independent solves
in one M-step, or an E-step and M-step solve scheduled side by side), every worker waits for work
that no free worker is left to run, and the program hangs with all threads idle. The loops below
are ordinary XLA while-loops over the matrix order ``D`` (the matrices are small, ``D x D`` per
component), so they cannot deadlock and cost ``O(D)`` short steps.

Semantics follow LAPACK's: a matrix that is not numerically positive definite gives a factor
with non-finite entries (callers test ``isfinite``), never an exception.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["cholesky", "solve_lower", "solve_lower_transpose", "inv_lower"]


def cholesky(a):
    """Lower Cholesky factor ``L`` with ``L @ L.T = (a + a.T) / 2``.

    Parameters
    ----------
    a : array of shape (..., D, D), symmetric positive definite

    Returns
    -------
    array of shape (..., D, D), lower triangular; non-finite entries where ``a`` is not
    numerically positive definite.
    """
    a = 0.5 * (a + jnp.swapaxes(a, -1, -2))
    d = a.shape[-1]
    rows = jnp.arange(d)

    def body(j, l):
        # column j of A minus the contributions of the columns already done (zero beyond j)
        lj = jax.lax.dynamic_index_in_dim(l, j, axis=-2, keepdims=False)  # (..., D) row j of L
        aj = jax.lax.dynamic_index_in_dim(a, j, axis=-1, keepdims=False)  # (..., D) column j of A
        v = aj - jnp.einsum("...ik,...k->...i", l, lj, precision=jax.lax.Precision.HIGHEST)
        piv = jnp.sqrt(jax.lax.dynamic_index_in_dim(v, j, axis=-1, keepdims=True))
        col = jnp.where(rows > j, v / piv, jnp.where(rows == j, piv, 0.0))
        return jax.lax.dynamic_update_index_in_dim(l, col[..., :, None], j, axis=-1)

    return jax.lax.fori_loop(0, d, body, jnp.zeros_like(a))


def solve_lower(l, b):
    """Solve ``L @ X = B`` for lower-triangular ``L`` by forward substitution.

    Parameters
    ----------
    l : array of shape (..., D, D), lower triangular
    b : array of shape (..., D, M)

    Returns
    -------
    array of shape (..., D, M)
    """
    d = l.shape[-1]

    def body(i, x):
        li = jax.lax.dynamic_index_in_dim(l, i, axis=-2, keepdims=False)  # (..., D), zero beyond i
        bi = jax.lax.dynamic_index_in_dim(b, i, axis=-2, keepdims=False)  # (..., M)
        lii = jax.lax.dynamic_index_in_dim(li, i, axis=-1, keepdims=True)
        # rows >= i of x are still zero, so the full row product only sees the solved rows
        xi = (bi - jnp.einsum("...k,...km->...m", li, x, precision=jax.lax.Precision.HIGHEST)) / lii
        return jax.lax.dynamic_update_index_in_dim(x, xi, i, axis=-2)

    shape = jnp.broadcast_shapes(l.shape[:-2], b.shape[:-2]) + b.shape[-2:]
    return jax.lax.fori_loop(0, d, body, jnp.zeros(shape, jnp.result_type(l, b)))


def solve_lower_transpose(l, b):
    """Solve ``L.T @ X = B`` for lower-triangular ``L`` by back substitution.

    Parameters
    ----------
    l : array of shape (..., D, D), lower triangular
    b : array of shape (..., D, M)

    Returns
    -------
    array of shape (..., D, M)
    """
    d = l.shape[-1]

    def body(t, x):
        i = d - 1 - t
        li = jax.lax.dynamic_index_in_dim(l, i, axis=-1, keepdims=False)  # column i of L = row i of L.T
        bi = jax.lax.dynamic_index_in_dim(b, i, axis=-2, keepdims=False)
        lii = jax.lax.dynamic_index_in_dim(li, i, axis=-1, keepdims=True)
        xi = (bi - jnp.einsum("...k,...km->...m", li, x, precision=jax.lax.Precision.HIGHEST)) / lii
        return jax.lax.dynamic_update_index_in_dim(x, xi, i, axis=-2)

    shape = jnp.broadcast_shapes(l.shape[:-2], b.shape[:-2]) + b.shape[-2:]
    return jax.lax.fori_loop(0, d, body, jnp.zeros(shape, jnp.result_type(l, b)))


def inv_lower(l):
    """Inverse of a lower-triangular matrix, shape (..., D, D) -> (..., D, D) (lower)."""
    eye = jnp.broadcast_to(jnp.eye(l.shape[-1], dtype=l.dtype), l.shape)
    return solve_lower(l, eye)
