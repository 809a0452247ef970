"""Starting points for EM (pure JAX): k-means++, k-means, random responsibilities, random data
points, and mclust's model-based hierarchical agglomeration (``"hc"``).

Each method produces responsibilities block by block; one M-step from them (at unit covariances)
gives the starting parameters, exactly as scikit-learn initialises from ``resp``. The ``"hc"``
partition is found on the host (:mod:`bayesgmm.core.hc`) and comes in as data: the Gaussians of
its groups, whose posterior responsibilities give the M-step.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from .density import estep_stats
from .em import m_step
from .params import GMMParams
from .sharding import local_block_sum

__all__ = ["INIT_METHODS", "kmeans_plus_plus", "kmeans", "init_params"]

#: The ``init_params`` methods. ``"hc"`` starts the first restart from mclust's model-based
#: hierarchical agglomeration (the others from ``"kmeans"``, see
#: :func:`bayesgmm.core.programs.em_start`).
INIT_METHODS = ("kmeans", "k-means++", "random", "random_from_data", "hc")
_KMEANS_MAX_ITER = 100


def _sq_dist(x, c, scale=None):
    """Squared distances (n, K) between rows of x (n, D) and centres c (K, D); with ``scale``
    (D,), those between ``x * scale`` and ``c * scale``."""
    if scale is not None:
        x, c = x * scale, c * scale
    return jnp.maximum(
        jnp.sum(x * x, axis=-1)[:, None] - 2 * x @ c.T + jnp.sum(c * c, axis=-1)[None], 0.0
    )


def kmeans_plus_plus(key, x, w, n_components: int, n_local_trials: int | None = None):
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007) with sample weights.

    Each new centre is the best of ``n_local_trials`` candidates drawn with probability
    proportional to ``w * d2`` (the one that lowers the weighted potential ``sum w min d2`` most),
    as in scikit-learn's ``KMeans``; ``n_local_trials = 2 + floor(ln K)`` by default. A single
    candidate per centre (the original k-means++) too often seeds two centres in one cluster.

    Parameters
    ----------
    key : PRNG key
    x : (n, D); w : (n,) non-negative weights (0 for padding rows)
    n_components : int
    n_local_trials : int, optional

    Returns
    -------
    centres : (n_components, D)
    """
    return kmeans_plus_plus_blocks(key, x[None], w[None], n_components, n_local_trials)


def _n_trials(k: int) -> int:
    return 2 + int(math.log(k))


def _draw_rows(key, p, m: int):
    """``m`` flat row indices drawn with probability proportional to ``p`` (n_blocks, block), >= 0.

    Inverse-CDF sampling: one uniform per draw against the cumulative sums (within blocks, plus
    the blocks' offsets, so that float32 rounding stays at the level of a block and the block
    count), O(n) memory -- a Gumbel-max draw over n rows needs n random words per draw. Rows of
    probability 0 (padding) are never drawn, and appending them leaves the draws unchanged.
    """
    within = jnp.cumsum(p, axis=1)
    totals = within[:, -1]
    cdf = (within + (jnp.cumsum(totals) - totals)[:, None]).reshape(-1)
    u = jax.random.uniform(key, (m,), p.dtype) * cdf[-1]
    return jnp.minimum(jnp.searchsorted(cdf, u, side="right"), cdf.shape[0] - 1)


def kmeans_plus_plus_blocks(key, xb, wb, n_components: int, n_local_trials: int | None = None, n_active=None,
                            scale=None):
    """:func:`kmeans_plus_plus` on data blocks ``xb`` (n_blocks, block, D), ``wb`` (n_blocks, block).

    The candidates' potentials and the distance updates are passes over the blocks, so that the
    working memory is O(n) for the distances plus O(block x trials) -- not O(n x trials).

    ``n_active`` (traced, default ``n_components``): seed only the first ``n_active`` centres
    (the rest stay 0: padding of a program compiled for ``n_components``), with the trials of
    ``n_active``; the seeds are those of ``n_components = n_active``, draw for draw.
    ``scale`` (D,), optional: the distances are those of the data multiplied by it (see
    :func:`init_params`).
    """
    k = n_components
    if n_local_trials is not None or n_active is None:
        trials = n_local_trials or _n_trials(k)
        n_active = k
        n_try = jnp.asarray(trials)
    else:
        # as many candidates as the largest K needs; the extra ones are masked out (the uniforms
        # of a shorter draw are a prefix of a longer one's, so the draws do not change)
        trials = _n_trials(k)
        n_try = jnp.asarray([_n_trials(j) for j in range(1, k + 1)])[n_active - 1]
    keys = jax.random.split(key, n_components)
    _, block, d = xb.shape

    def rows(i):  # rows of the flattened data, gathered from the blocks (no flat copy of xb)
        return xb[i // block, i % block]

    i0 = _draw_rows(keys[0], wb, 1)[0]
    centres = jnp.zeros((n_components, d), xb.dtype).at[0].set(rows(i0))
    d2 = jnp.sum(((xb - rows(i0)) if scale is None else (xb - rows(i0)) * scale) ** 2, axis=-1)  # (n_blocks, block)

    def potentials(d2, cand):  # sum_n w min(d2, |x - cand_t|^2) for each candidate t: (trials,)
        def blk(acc, inp):
            x, w_, d2_ = inp
            return acc + jnp.sum(w_[:, None] * jnp.minimum(d2_[:, None], _sq_dist(x, cand, scale)), axis=0), None

        return jax.lax.scan(blk, jnp.zeros((cand.shape[0],), xb.dtype), (xb, wb, d2))[0]

    def updated(d2, c):  # min(d2, |x - c|^2), block by block
        return jax.lax.map(lambda inp: jnp.minimum(inp[1], _sq_dist(inp[0], c[None], scale)[:, 0]), (xb, d2))

    def body(i, carry):
        centres, d2 = carry
        p = wb * d2
        # all remaining mass at distance 0 (duplicated points): fall back to the weights
        p = jnp.where(jnp.sum(p) > 0, p, wb)
        cand = rows(_draw_rows(keys[i], p, trials))  # (trials, D)
        pot = jnp.where(jnp.arange(trials) < n_try, potentials(d2, cand), jnp.inf)
        best = jnp.argmin(pot)
        return centres.at[i].set(cand[best]), updated(d2, cand[best])

    centres, _ = jax.lax.fori_loop(1, n_active, body, (centres, d2))
    return centres


def kmeans(key, xb, wb, n_components: int, max_iter: int = _KMEANS_MAX_ITER, tol=1e-4, block_sum=None,
           n_active=None, scale=None):
    """Weighted Lloyd iterations from k-means++ seeds, in blocks. Returns centres (K, D).

    ``block_sum`` is the reduction over blocks (default: a ``lax.scan``; for blocks sharded over
    devices, :func:`bayesgmm.core.sharding.sharded_block_sum`). ``n_active``: only the first
    ``n_active`` centres are used (see :func:`kmeans_plus_plus_blocks`). ``scale`` (D,): cluster
    ``x * scale`` (the centres returned are in the units of ``x``; a centre is a mean either way).
    """
    d = xb.shape[-1]
    centres = kmeans_plus_plus_blocks(key, xb, wb, n_components, n_active=n_active, scale=scale)
    block_sum = block_sum or local_block_sum
    if n_active is None:
        far = 0.0
    else:  # padding centres are never the nearest
        far = jnp.where(jnp.arange(n_components) < n_active, 0.0, jnp.inf).astype(xb.dtype)

    def lloyd(c):
        def blk(x, w):
            lab = jnp.argmin(_sq_dist(x, c, scale) + far, axis=-1)
            oh = jax.nn.one_hot(lab, n_components, dtype=x.dtype) * w[:, None]
            return oh.sum(0), oh.T @ x

        init = (jnp.zeros(n_components, xb.dtype), jnp.zeros((n_components, d), xb.dtype))
        cnt, sums = block_sum(blk, init, xb, wb)
        new = jnp.where(cnt[:, None] > 0, sums / jnp.where(cnt > 0, cnt, 1.0)[:, None], c)
        return new

    def cond(s):
        c, shift, i = s
        return (i < max_iter) & (shift > tol)

    def step(s):
        c, _, i = s
        new = lloyd(c)
        return new, jnp.sum((new - c) ** 2), i + 1

    centres, _, _ = jax.lax.while_loop(cond, step, (centres, jnp.asarray(jnp.inf, xb.dtype), 0))
    return centres


def _unit_params(centres, n_components, covariance_type, dtype, mask):
    d = centres.shape[-1]
    k = n_components
    w = jnp.where(mask, 1.0 / jnp.sum(mask), 0.0).astype(dtype)
    if covariance_type == "full":
        return GMMParams(w, centres, jnp.ones((k, d), dtype), jnp.broadcast_to(jnp.eye(d, dtype=dtype), (k, d, d)), "full")
    if covariance_type == "tied":
        return GMMParams(w, centres, jnp.ones((d,), dtype), jnp.eye(d, dtype=dtype), "tied")
    if covariance_type == "diag":
        return GMMParams(w, centres, jnp.ones((k, d), dtype), None, "diag")
    return GMMParams(w, centres, jnp.ones((k,), dtype), None, "spherical")


def init_params(
    key, xb, wb, n_components: int, covariance_type: str, method: str, prior, reg_covar,
    estep=estep_stats, block_sum=None, n_active=None, scale=None, partition=None,
):
    """Starting parameters for one EM run.

    Parameters
    ----------
    key : PRNG key
    xb, wb : data blocks (see :func:`bayesgmm.core.density.to_blocks`)
    n_components : int
    covariance_type : str
    method : one of ``INIT_METHODS``
        ``"hc"`` needs ``partition``.
    prior : ResolvedPrior or None
    reg_covar : (D,)
    estep, block_sum : the passes over the blocks (defaults: single device; see
        :mod:`bayesgmm.core.sharding` for blocks sharded over devices)
    n_active : int (traced), optional
        Start only the first ``n_active`` components (default all); the others are padding of
        weight 0 (see :func:`bayesgmm.core.em.m_step`). The start is the one ``n_components =
        n_active`` gives, up to rounding.
    scale : array of shape (D,), optional
        For ``"kmeans"`` and ``"k-means++"``: cluster the rows multiplied by ``scale`` (e.g. the
        data's own feature scales, when ``xb`` is standardised); default: ``xb`` as it is.
    partition : GMMParams, optional
        For ``"hc"``: the Gaussians of the agglomeration's groups (:func:`bayesgmm.core.hc.hc_start`,
        padded to ``n_components``); the responsibilities are their posterior ones, so that the
        rows the agglomeration left out (a subsample of large data) join their likeliest group.

    Returns
    -------
    GMMParams
    """
    dtype = xb.dtype
    n_blocks, block, d = xb.shape
    k = n_components
    padded = n_active is not None
    n_active = jnp.asarray(k if n_active is None else n_active, jnp.int32)
    mask = jnp.arange(k) < n_active
    if method in ("kmeans", "k-means++"):
        if method == "kmeans":
            centres = kmeans(key, xb, wb, k, block_sum=block_sum, n_active=n_active if padded else None,
                             scale=scale)
        else:
            centres = kmeans_plus_plus_blocks(key, xb, wb, k, n_active=n_active if padded else None, scale=scale)
        far = jnp.where(mask, 0.0, jnp.inf).astype(dtype)

        def resp_fn(i, x):
            return jax.nn.one_hot(jnp.argmin(_sq_dist(x, centres, scale) + far, axis=-1), k, dtype=dtype)

    elif method == "random":
        centres = jnp.zeros((k, d), dtype)

        def resp_fn(i, x):
            # the uniforms of an (n, n_active) draw: entry (j, c) of it is number j * n_active + c
            # of one flat draw, whatever the padding
            n = x.shape[0]
            u = jax.random.uniform(jax.random.fold_in(key, i), (n * k,), dtype)
            idx = jnp.arange(n)[:, None] * n_active + jnp.minimum(jnp.arange(k), n_active - 1)[None, :]
            r = jnp.where(mask, u[idx], 0.0)
            return r / jnp.sum(r, axis=-1, keepdims=True)

    elif method == "random_from_data":
        w = wb.reshape(-1)
        logits = jnp.where(w > 0, 0.0, -jnp.inf)
        # k distinct rows among those with positive weight (Gumbel top-k = sampling w/o replacement)
        g = jax.random.gumbel(key, w.shape, dtype) + logits
        chosen = jax.lax.top_k(g, k)[1]
        centres = xb.reshape(-1, d)[chosen]

        def resp_fn(i, x):
            rows = i * block + jnp.arange(x.shape[0])
            return ((rows[:, None] == chosen[None, :]) & mask).astype(dtype)

    elif method == "hc":
        if partition is None:
            raise ValueError("init method 'hc' needs the partition's parameters")
        params0 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), partition)
        stats = estep(params0, xb, wb)
        return m_step(params0, stats, prior, reg_covar, start=True, mask=mask)
    else:
        raise ValueError(f"unknown init method {method!r}")
    params0 = _unit_params(centres, k, covariance_type, dtype, mask)
    stats = estep(params0, xb, wb, resp_fn=resp_fn)
    return m_step(params0, stats, prior, reg_covar, start=True, mask=mask)
