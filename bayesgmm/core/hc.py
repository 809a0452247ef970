"""Model-based hierarchical agglomeration (mclust's ``hc``), the start of ``init_params="hc"``.

Host code (numpy): the agglomeration is a sequential, data-dependent greedy loop, and its result
-- a partition into ``K`` groups, summarised by their weights, means and covariances -- enters the
compiled EM program as data (:class:`bayesgmm.core.programs.StartValues`), so that it compiles no
program per data set.

Criterion (Banfield & Raftery 1993; Fraley 1998; mclust's ``hcVVV``): starting from singletons,
repeatedly merge the two groups whose merge lowers the classification likelihood of the
unconstrained-covariance ("VVV") Gaussian model least, i.e. minimise the increase of

    sum_k n_k log det((W_k + alpha I) / n_k)

where ``W_k`` is group ``k``'s scatter matrix and ``alpha`` the data's mean variance per feature
(mclust's default ``alpha = 1``); ``alpha`` keeps the criterion finite for groups of fewer points
than features (and for ties). On one-dimensional data this is mclust's ``hcV``. Two singletons
merge at a cost increasing with their squared distance, so the first merges are those of
nearest neighbours, as in Ward's method (mclust's ``hcEII``); as groups grow, their shapes count.

The rows are agglomerated in mclust's default coordinates (``hcUse = "SVD"``,
:func:`hc_transform`): standardised, rotated to their principal axes and scaled by the inverse
square roots of the singular values -- halfway between the standardised data and sphered data.
On the data sets of ``bench/starts.py`` the EM from this start reached the best-known optimum in
more cells than from the same criterion on the standardised data or from Ward's criterion.

Cost: O(m^2) memory and about O(m^2 D^3) time for ``m`` rows. Larger data are agglomerated on a
subsample of :data:`HC_MAX_ROWS` rows (mclust's ``subset`` option has the same default); the
partition's Gaussians then classify the remaining rows in the first E-step of the EM.
"""

from __future__ import annotations

import numpy as np

__all__ = ["HC_MAX_ROWS", "hc_labels", "hc_rows", "hc_start", "hc_transform"]

#: Rows the agglomeration runs on at most (a subsample of larger data); its pair-cost matrix
#: holds ``HC_MAX_ROWS**2`` float64 (32 MB).
HC_MAX_ROWS = 2000


def _group_cost(n, w, alpha):
    """``n log det((W + alpha I) / n)`` for groups of sizes ``n`` (m,) and scatters ``w`` (m, D, D)."""
    d = w.shape[-1]
    if d == 1:
        return n * np.log((w[:, 0, 0] + alpha) / n)
    return n * np.linalg.slogdet((w + alpha * np.eye(d)) / n[:, None, None])[1]


def hc_transform(z) -> np.ndarray:
    """mclust's ``"SVD"`` coordinates of the rows ``z`` (m, D) for the agglomeration.

    The rows are centred and scaled to unit variance per feature, then ``U S V^T`` being their
    singular value decomposition, mapped to ``z V S^{-1/2}``: principal axes, with the variance
    along axis ``j`` proportional to ``s_j`` (sphering would make every variance equal). Axes of
    zero singular value (constant or collinear features) are dropped.

    Examples
    --------
    >>> import numpy as np
    >>> z = np.random.default_rng(0).normal(size=(50, 3)) @ np.array([[2.0, 1, 0], [0, 1, 0], [0, 0, 0.5]])
    >>> t = hc_transform(z)
    >>> t.shape, bool(np.allclose(np.cov(t.T) - np.diag(np.diag(np.cov(t.T))), 0))
    ((50, 3), True)
    """
    z = np.asarray(z, np.float64)
    sd = z.std(axis=0)
    c = (z - z.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    _, s, vt = np.linalg.svd(c, full_matrices=False)
    keep = s > s.max(initial=0.0) * 1e-10
    if not keep.any():
        return c[:, :1]
    return c @ vt[keep].T / np.sqrt(s[keep])


def hc_labels(z, n_groups: int, alpha: float | None = None) -> np.ndarray:
    """Hierarchical agglomeration of the rows of ``z`` into ``n_groups`` groups (VVV criterion).

    Parameters
    ----------
    z : array of shape (m, D)
        The rows (e.g. standardised data); ``m`` at most a few thousand (O(m^2) memory).
    n_groups : int
        At most ``m``.
    alpha : float, optional
        The regularisation of the criterion (see the module's docstring); default: the mean
        variance per feature of ``z``, as mclust's ``hcVVV(alpha = 1)``.

    Returns
    -------
    labels : ndarray of int of shape (m,)
        Group of every row, ``0 .. n_groups - 1``, numbered in order of the groups' first rows.
        Deterministic: ties are broken by row order.

    Examples
    --------
    >>> import numpy as np
    >>> z = np.array([[0.0], [0.1], [5.0], [5.2], [9.9], [10.0]])
    >>> hc_labels(z, 3).tolist()
    [0, 0, 1, 1, 2, 2]
    """
    z = np.asarray(z, np.float64)
    if z.ndim != 2:
        raise ValueError(f"z must be 2-dimensional, got shape {z.shape}")
    m, d = z.shape
    k = int(n_groups)
    if not 1 <= k <= m:
        raise ValueError(f"n_groups={k} must be between 1 and the number of rows ({m})")
    if alpha is None:
        alpha = float(np.sum(np.var(z, axis=0))) / d
    alpha = max(float(alpha), np.finfo(np.float64).tiny / np.finfo(np.float64).eps)
    group = np.arange(m)
    if k == m:
        return group

    count = np.ones(m)
    mean = z.copy()
    scatter = np.zeros((m, d, d))
    cost = np.full(m, d * np.log(alpha))
    active = np.ones(m, bool)
    # pair costs of singletons: 2 log(1 + |x - y|^2 / (2 alpha)) - 2 D log 2 (determinant lemma)
    sq = np.sum(z * z, axis=1)
    dist = np.maximum(sq[:, None] + sq[None, :] - 2.0 * z @ z.T, 0.0)
    pair = 2.0 * np.log1p(dist / (2.0 * alpha)) - 2.0 * d * np.log(2.0)
    del dist
    np.fill_diagonal(pair, np.inf)
    best = np.argmin(pair, axis=1)
    best_cost = pair[np.arange(m), best]

    for _ in range(m - k):
        i = int(np.argmin(best_cost))
        j = int(best[i])
        if j < i:
            i, j = j, i
        # merge group j into group i
        n_i, n_j = count[i], count[j]
        delta = mean[j] - mean[i]
        scatter[i] += scatter[j] + (n_i * n_j / (n_i + n_j)) * np.outer(delta, delta)
        mean[i] += delta * (n_j / (n_i + n_j))
        count[i] = n_i + n_j
        cost[i] = _group_cost(count[i : i + 1], scatter[i : i + 1], alpha)[0]
        group[group == j] = i
        active[j] = False
        pair[j, :] = np.inf
        pair[:, j] = np.inf
        best_cost[j] = np.inf
        # the merged group's costs against every other active group
        others = np.flatnonzero(active)
        others = others[others != i]
        row = np.full(m, np.inf)
        if others.size:
            n_o = count[others]
            n_new = n_o + count[i]
            dlt = mean[others] - mean[i]
            w_new = scatter[others] + scatter[i] + ((count[i] * n_o / n_new)[:, None, None]
                                                     * dlt[:, :, None] * dlt[:, None, :])
            row[others] = _group_cost(n_new, w_new, alpha) - cost[others] - cost[i]
        pair[i, :] = row
        pair[:, i] = row
        best[i] = int(np.argmin(row))
        best_cost[i] = row[best[i]]
        # rows whose best partner was i or j: search again; the others may now prefer i
        stale = np.flatnonzero(active & ((best == i) | (best == j)))
        stale = stale[stale != i]
        closer = active & (row < best_cost)
        closer[stale] = False
        best[closer] = i
        best_cost[closer] = row[closer]
        if stale.size:
            best[stale] = np.argmin(pair[stale], axis=1)
            best_cost[stale] = pair[stale, best[stale]]

    _, first = np.unique(group, return_index=True)
    relabel = np.empty(m, int)
    relabel[group[np.sort(first)]] = np.arange(k)  # groups in order of their first rows
    return relabel[group]


def hc_rows(weights, max_rows: int | None = None):
    """The rows the agglomeration runs on: those of positive weight, or a subsample of
    ``max_rows`` (default :data:`HC_MAX_ROWS`) of them, drawn with a fixed seed, with
    probability proportional to the weights.

    Returns
    -------
    rows : ndarray of int, sorted
    row_weights : ndarray of float64, the weights of ``rows`` (1 for a subsample's rows: the
        weights are in the draw)
    """
    max_rows = HC_MAX_ROWS if max_rows is None else int(max_rows)
    w = np.asarray(weights, np.float64)
    rows = np.flatnonzero(w > 0)
    if rows.size <= max_rows:
        return rows, w[rows]
    rng = np.random.default_rng(0)
    rows = np.sort(rng.choice(rows, size=max_rows, replace=False, p=w[rows] / w[rows].sum()))
    return rows, np.ones(max_rows)


def hc_start(z, weights, n_components: int, covariance_type: str, reg):
    """The hc start: the weights, means and covariances of the agglomeration's partition
    (:func:`hc_labels` of the rows in :func:`hc_transform`'s coordinates).

    Parameters
    ----------
    z : array of shape (m, D)
        Rows in the units of the EM (standardised), e.g. those of :func:`hc_rows`.
    weights : array of shape (m,), positive sample weights of the rows (the partition's
        parameters are weighted; the agglomeration is not)
    n_components : int
    covariance_type : {"full", "tied", "diag", "spherical"}
    reg : array of shape (D,)
        Added to every covariance's diagonal (``reg_covar`` in the EM's units), as the M-step
        from the partition's hard responsibilities does.

    Returns
    -------
    weights, means, covariances : ndarrays (float64) of shapes (K,), (K, D) and scikit-learn's
        layout for ``covariance_type``: the maximum likelihood M-step from the partition.
    """
    z = np.asarray(z, np.float64)
    w = np.asarray(weights, np.float64)
    m, d = z.shape
    k = int(n_components)
    labels = hc_labels(hc_transform(z), min(k, m))
    resp = np.zeros((m, k))
    resp[np.arange(m), labels] = w
    nk = resp.sum(0)
    nk_safe = np.where(nk > 0, nk, 1.0)
    means = resp.T @ z / nk_safe[:, None]
    reg = np.broadcast_to(np.asarray(reg, np.float64), (d,))
    cov = np.empty((k, d, d))
    for c in range(k):
        diff = z - means[c]
        cov[c] = (resp[:, c, None] * diff).T @ diff / nk_safe[c]
    if covariance_type == "full":
        covariances = cov + np.diag(reg)
    elif covariance_type == "tied":
        covariances = np.einsum("k,kij->ij", nk, cov) / nk.sum() + np.diag(reg)
    elif covariance_type == "diag":
        covariances = np.diagonal(cov, axis1=1, axis2=2) + reg
    else:
        covariances = np.mean(np.diagonal(cov, axis1=1, axis2=2) + reg, axis=1)
    return nk / nk.sum(), means, covariances
