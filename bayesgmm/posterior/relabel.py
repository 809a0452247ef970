"""Relabelling of mixture draws: undo label switching before any per-component summary.

The mixture likelihood and the (exchangeable) prior are invariant under permutations of the
components, so MCMC chains may visit the ``K!`` symmetric modes and per-component summaries
(means, R-hat, ESS) of raw draws mix components. Relabelling finds, for every draw, the
permutation that makes its components correspond to a common reference.

Convention
----------
A permutation ``perm`` of shape (K,) maps *new* labels to *old* ones::

    relabelled[k] = draw[perm[k]]        for every per-component field

(``weights[k]``, ``means[k]``, ``scales[k]`` and ``corr_chol[k]`` where these have a component
axis; the shared ``tied`` covariance has none and is unchanged). ``perm`` is the ``order`` argument
of :meth:`bayesgmm.core.params.GMMParams.permute`; :func:`apply_permutations` applies a whole array
of them at once, one per draw.

Methods
-------
``"pivot"``
    Per draw, the assignment problem between the draw's components and those of a pivot (the MAP
    estimate) with the cost

    .. math::

        c_{kj} = \\mathrm{KL}_{sym}(\\mathcal N_j^{draw}, \\mathcal N_k^{pivot})
               + (w_j - \\hat w_k)(\\mathrm{logit}\\, w_j - \\mathrm{logit}\\, \\hat w_k),

    the symmetric Kullback-Leibler divergence between the two Gaussian components plus the
    symmetric KL divergence between Bernoulli(``w_j``) and Bernoulli(``w_hat_k``). *Why this cost*:
    it is invariant under affine changes of the data units (so features on different scales need
    no tuning), it tells apart components that share a mean but differ in shape (a broad
    "background" component) -- which the Mahalanobis distance of the means does not -- and for
    ``tied`` covariances it reduces to the Mahalanobis distance of the means under the shared
    covariances. It is solved exactly: by enumerating the ``K!`` permutations for ``K <= 6`` and by
    :func:`scipy.optimize.linear_sum_assignment` above.
``"stephens"``
    Stephens (2000, JRSS B 62(4), "Dealing with label switching in mixture models"), the KL
    algorithm on the classification probabilities ``p[s, n, k]`` of the data under every draw:
    starting from the pivot labelling, iterate (a) ``Q[n, k] = mean_s p[s, n, perm_s[k]]`` and (b)
    per draw the permutation minimising ``sum_n w_n KL(Q[n] || p[s, n, perm])``, an assignment
    problem with cost ``-sum_n w_n Q[n, k] log p[s, n, j]``; stop when no permutation changes.
    It uses the data, is invariant to how the pivot was chosen once converged, and handles
    overlapping components better. Responsibilities are computed in blocks of draws and rows
    (never ``S x N x K`` at once).
"""

from __future__ import annotations

import itertools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import linear_sum_assignment

from .._validation import check_sample_weight
from ..core.params import GMMParams
from ..core.programs import default_dtype
from ..core.units import standardisation
from ._compute import DrawEvaluator, flatten_draws

__all__ = ["RELABEL_METHODS", "apply_permutations", "pivot_costs", "relabel", "solve_assignments"]

RELABEL_METHODS = ("pivot", "stephens")

#: Largest K for which the assignment problems are solved by enumerating all K! permutations.
_BRUTE_FORCE_MAX_K = 6


# ---------------------------------------------------------------------------------------------
# applying permutations
# ---------------------------------------------------------------------------------------------
def apply_permutations(draws: GMMParams, perms) -> GMMParams:
    """Relabel every draw: ``relabelled[..., k] = draws[..., perms[..., k]]``.

    Parameters
    ----------
    draws : GMMParams with batch shape ``B`` (e.g. ``(chain, draw)``)
        Fields ``weights (*B, K)``, ``means (*B, K, D)``, ``scales`` and ``corr_chol`` of the
        covariance type (see :class:`~bayesgmm.core.params.GMMParams`).
    perms : int array of shape ``(*B, K)``
        One permutation per draw.

    Returns
    -------
    GMMParams
        Same shapes as ``draws``. NumPy in, NumPy out (no change of dtype); JAX arrays give JAX
        arrays. (:meth:`GMMParams.permute <bayesgmm.core.params.GMMParams.permute>`, which also
        takes one permutation for all draws.)
    """
    batch = draws.batch_shape
    if tuple(np.shape(perms)) != batch + (draws.n_components,):
        raise ValueError(
            f"perms must have shape batch_shape + (n_components,) = {batch + (draws.n_components,)}, "
            f"got {tuple(np.shape(perms))}."
        )
    return draws.permute(perms)


# ---------------------------------------------------------------------------------------------
# assignment problems
# ---------------------------------------------------------------------------------------------
def solve_assignments(costs) -> np.ndarray:
    """Minimum-cost permutations for a stack of square cost matrices.

    Parameters
    ----------
    costs : array of shape (S, K, K)
        ``costs[s, k, j]``: cost of giving label ``k`` to component ``j`` of draw ``s``.

    Returns
    -------
    ndarray of int64, shape (S, K)
        ``perm[s]`` minimising ``sum_k costs[s, k, perm[s, k]]``. Exact: all ``K!`` permutations are
        enumerated for ``K <= 6`` (ties go to the one first in lexicographic order, the identity
        first), :func:`scipy.optimize.linear_sum_assignment` solves larger ``K``.
    """
    costs = np.asarray(costs, np.float64)
    s, k, _ = costs.shape
    if not np.all(np.isfinite(costs)):
        costs = np.nan_to_num(costs, nan=np.finfo(np.float64).max / (4 * k), posinf=np.finfo(np.float64).max / (4 * k))
    if k == 1:
        return np.zeros((s, 1), np.int64)
    if k <= _BRUTE_FORCE_MAX_K:
        table = np.array(list(itertools.permutations(range(k))), np.int64)  # (P, K), identity first
        rows = np.arange(k)
        out = np.empty((s, k), np.int64)
        block = max(1, (1 << 22) // (table.shape[0] * k))
        for i in range(0, s, block):
            c = costs[i : i + block]
            total = c[:, rows[None, :], table].sum(-1)  # (b, P)
            out[i : i + block] = table[np.argmin(total, axis=1)]
        return out
    out = np.empty((s, k), np.int64)
    for i in range(s):
        r, c = linear_sum_assignment(costs[i])
        out[i, r] = c
    return out


# ---------------------------------------------------------------------------------------------
# pivot cost
# ---------------------------------------------------------------------------------------------
def _sym_kl_bernoulli(w, w_hat):
    dtype = w.dtype
    lo, hi = jnp.finfo(dtype).tiny, 1 - jnp.finfo(dtype).eps
    w = jnp.clip(w, lo, hi)
    w_hat = jnp.clip(w_hat, lo, hi)
    logit = lambda p: jnp.log(p) - jnp.log1p(-p)  # noqa: E731
    return (w[None, :] - w_hat[:, None]) * (logit(w)[None, :] - logit(w_hat)[:, None])


def _pivot_cost(draw: GMMParams, pivot: GMMParams):
    """(K, K) cost ``c[k, j]`` between pivot component ``k`` and draw component ``j``."""
    ct = pivot.covariance_type
    d_feat = pivot.n_features
    diff = draw.means[None, :, :] - pivot.means[:, None, :]  # (K, K, D): [k, j]
    if ct in ("diag", "spherical"):
        var_q = pivot.scales**2
        var_p = draw.scales**2
        if ct == "spherical":
            var_q = jnp.broadcast_to(var_q[:, None], pivot.means.shape)
            var_p = jnp.broadcast_to(var_p[:, None], draw.means.shape)
        tr = jnp.sum(var_p[None, :, :] / var_q[:, None, :] + var_q[:, None, :] / var_p[None, :, :], -1)
        maha = jnp.sum(diff**2 * (1 / var_q[:, None, :] + 1 / var_p[None, :, :]), -1)
    else:
        u_q = pivot.precisions_cholesky()  # full (K, D, D), tied (D, D); precision = u u^T
        u_p = draw.precisions_cholesky()
        s_q = pivot.covariances()
        s_p = draw.covariances()
        if ct == "tied":
            u_q, u_p = u_q[None], u_p[None]
            s_q, s_p = s_q[None], s_p[None]
        p_q = u_q @ jnp.swapaxes(u_q, -1, -2)
        p_p = u_p @ jnp.swapaxes(u_p, -1, -2)
        tr = jnp.einsum("kab,jab->kj", p_q, s_p) + jnp.einsum("jab,kab->kj", p_p, s_q)
        yq = jnp.einsum("kjd,kde->kje", diff, jnp.broadcast_to(u_q, (pivot.n_components,) + u_q.shape[1:]))
        yp = jnp.einsum("kjd,jde->kje", diff, jnp.broadcast_to(u_p, (draw.n_components,) + u_p.shape[1:]))
        maha = jnp.sum(yq**2, -1) + jnp.sum(yp**2, -1)
    kl = 0.5 * (tr - 2 * d_feat + maha)
    return kl + _sym_kl_bernoulli(draw.weights, pivot.weights)


_pivot_costs_kernel = jax.jit(jax.vmap(_pivot_cost, (0, None)))


def pivot_costs(draws: GMMParams, pivot: GMMParams, block: int = 1024) -> np.ndarray:
    """Pivot relabelling costs (see the module docstring), computed in blocks of draws.

    Parameters
    ----------
    draws : GMMParams with one leading draw axis (S, ...), numpy
    pivot : GMMParams without batch axes

    Returns
    -------
    ndarray of shape (S, K, K), ``c[s, k, j]`` between pivot component ``k`` and component ``j`` of
    draw ``s``.
    """
    dtype = default_dtype()
    s = draws.means.shape[0]
    k = pivot.n_components
    np_dtype = np.dtype(dtype)
    pv = jax.tree_util.tree_map(lambda a: np.asarray(a, np_dtype), pivot)
    out = np.empty((s, k, k))
    # one fixed block shape: a single compilation per model structure (padding is cheap here)
    for i in range(0, s, block):
        idx = np.minimum(np.arange(i, i + block), s - 1)  # fixed block shape: one compilation
        blk = jax.tree_util.tree_map(lambda a: np.asarray(a[idx], np_dtype), draws)
        n = min(block, s - i)
        out[i : i + n] = np.asarray(_pivot_costs_kernel(blk, pv), np.float64)[:n]
    return out


# ---------------------------------------------------------------------------------------------
# the public entry point
# ---------------------------------------------------------------------------------------------
def _check_pivot(draws: GMMParams, pivot: GMMParams):
    if pivot.covariance_type != draws.covariance_type:
        raise ValueError(
            f"pivot has covariance_type={pivot.covariance_type!r} but the draws have "
            f"{draws.covariance_type!r}; use the MAP of the same model as the pivot."
        )
    if pivot.batch_shape != ():
        raise ValueError(
            f"pivot must be a single parameter set (no batch axes), got batch shape {pivot.batch_shape}; "
            "pass e.g. the MAP estimate, or index one draw with pivot[i]."
        )
    if pivot.means.shape != draws.means.shape[-2:]:
        raise ValueError(
            f"pivot has (n_components, n_features) = {pivot.means.shape}, draws have "
            f"{tuple(draws.means.shape[-2:])}."
        )


def relabel(
    draws: GMMParams,
    pivot: GMMParams,
    method: str = "pivot",
    x=None,
    max_iter: int = 50,
    *,
    sample_weight=None,
    init_permutations=None,
    budget: int | None = None,
):
    """Relabel mixture draws to undo label switching.

    Parameters
    ----------
    draws : GMMParams with batch shape ``B`` (usually ``(chain, draw)``)
        Posterior draws in data units.
    pivot : GMMParams without batch axes
        Reference labelling, usually the MAP estimate of the same model.
    method : {"pivot", "stephens"}, default="pivot"
        See the module docstring.
    x : array-like of shape (n_samples, n_features), optional
        The data; required for ``"stephens"``.
    max_iter : int, default=50
        Maximum number of Stephens iterations (a warning is emitted when they do not settle).
    sample_weight : array-like of shape (n_samples,), optional
        Weights of the observations in Stephens' KL criterion.
    init_permutations : int array of shape ``(*B, K)``, optional
        Stephens only: start from these permutations instead of the pivot labelling.
    budget : int, optional
        Floats per kernel call for Stephens' blocked passes (default about 4M).

    Returns
    -------
    relabelled : GMMParams
        Same shapes as ``draws``, ``relabelled[..., k] = draws[..., perms[..., k]]``.
    perms : ndarray of int64, shape ``(*B, n_components)``

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm.core.params import GMMParams
    >>> from bayesgmm.posterior import relabel
    >>> pivot = GMMParams(np.array([0.3, 0.7]), np.array([[0.0], [5.0]]), np.ones((2, 1)),
    ...                   None, "diag")
    >>> swapped = GMMParams(np.array([[0.7, 0.3]]), np.array([[[5.0], [0.0]]]), np.ones((1, 2, 1)),
    ...                     None, "diag")
    >>> out, perms = relabel(swapped, pivot)
    >>> perms.tolist(), out.weights.tolist()
    ([[1, 0]], [[0.3, 0.7]])
    """
    if method not in RELABEL_METHODS:
        raise ValueError(f"method={method!r} is not a relabelling method; use one of {RELABEL_METHODS}.")
    _check_pivot(draws, pivot)
    batch = tuple(draws.means.shape[:-2])
    k = pivot.n_components
    ct = pivot.covariance_type
    flat = flatten_draws(draws, len(batch))
    n_draws = int(np.prod(batch, dtype=np.int64))

    if x is not None or method == "stephens":
        if x is None:
            raise ValueError("method='stephens' needs the data: pass x=X (n_samples, n_features).")
        x = np.asarray(x, np.float64)
        if x.ndim != 2 or x.shape[1] != pivot.n_features:
            raise ValueError(f"x must have shape (n_samples, {pivot.n_features}), got {x.shape}.")
        w = check_sample_weight(sample_weight, x.shape[0])
        shift, scale = standardisation(x, ct, w)
    else:
        # the pivot cost is affine invariant: standardise on the pivot only (float32 safety)
        shift = np.asarray(pivot.means, np.float64).mean(0)
        scale = np.ones_like(shift)
    flat_std = flat.to_numpy().standardise(shift, scale)
    pivot_std = pivot.to_numpy().standardise(shift, scale)

    if method == "pivot" or init_permutations is None:
        perms = solve_assignments(pivot_costs(flat_std, pivot_std))
    else:
        perms = np.asarray(init_permutations, np.int64).reshape(n_draws, k)
    if method == "stephens":
        perms = _stephens(flat_std, (x - shift) / scale, w, perms, max_iter, budget)
    relabelled = apply_permutations(draws, perms.reshape(batch + (k,)))
    return relabelled, perms.reshape(batch + (k,))


def _stephens(flat_std: GMMParams, z, w, perms, max_iter: int, budget):
    ev = DrawEvaluator(flat_std, z, **({} if budget is None else {"budget": budget}))
    wn = np.ones(z.shape[0]) if w is None else w
    for _ in range(int(max_iter)):
        q = ev.mean_responsibilities(perms)  # (N, K)
        new = solve_assignments(ev.cross_entropy_costs(q * wn[:, None]))
        if np.array_equal(new, perms):
            return perms
        perms = new
    warnings.warn(
        f"Stephens relabelling did not settle in max_iter={max_iter} iterations (some draws still "
        "switch labels); increase max_iter, or the components overlap so much that they are not "
        "identifiable -- consider fewer components.",
        UserWarning,
        stacklevel=3,
    )
    return perms
