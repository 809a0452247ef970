"""Label-free cluster summaries of a posterior: assignments, co-clustering, a point partition.

A mixture posterior says two things about the clustering of the data: for every draw ``theta_s``,
the conditional posterior of the labels is ``p(z_n = k | x_n, theta_s) = r[s, n, k]``
(independent over points given ``theta_s``), and the draws themselves vary. The summaries here
combine both:

* :func:`assignment_probabilities` -- per point and component the posterior mean of ``r``, a
  credible interval over draws, and the entropy of the assignment (relabelled components, so the
  per-component numbers refer to the labels of the MAP pivot);
* :func:`coclustering` -- the posterior similarity matrix ``P[i, j] = Pr(z_i = z_j | data)``,
  label-free, computed as ``mean_s sum_k r[s, i, k] r[s, j, k]`` (``i != j``, unit diagonal);
* :func:`partition` -- a point partition minimising the posterior expected Binder loss or Variation
  of Information (VI), found by a greedy search (SALSO-style "sweetening": move one point at a time
  to the cluster that lowers the expected loss most) started from candidates;
* :func:`n_occupied` -- per draw, the number of components that hold at least one data point when
  the labels are drawn from their conditional posterior: the posterior of the number of clusters
  for an overfitted mixture with a sparse Dirichlet (``weight_concentration < 1``), where ``K`` is
  only an upper bound.

Every pass over the draws runs in blocks of draws and rows (``S x N x K`` arrays never exist whole
on the device); the co-clustering matrix itself is ``N x N``.

References: Binder (1978) "Bayesian cluster analysis", Biometrika 65; Wade & Ghahramani (2018)
"Bayesian cluster analysis: point estimation and credible balls", Bayesian Analysis 13; Dahl,
Johnson & Mueller (2022) "Search algorithms and loss functions for Bayesian clustering" (SALSO),
JCGS 31; Malsiner-Walli, Fruehwirth-Schnatter & Gruen (2016) "Model-based clustering based on
sparse finite Gaussian mixtures", Statistics and Computing 26.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from ._compute import _resp_kernel

__all__ = [
    "AssignmentProbabilities",
    "PARTITION_LOSSES",
    "Partition",
    "assignment_probabilities",
    "coclustering",
    "expected_loss",
    "minimise_expected_loss",
    "n_occupied",
    "partition",
]

#: Losses accepted by :func:`partition`.
PARTITION_LOSSES = ("binder", "vi")

#: Floats of the host-side ``(draws, rows, K)`` responsibility array gathered for the quantiles.
_QUANTILE_BUDGET = 1 << 23


# -- per-draw responsibilities, in blocks ----------------------------------------------------------
def _iter_responsibilities(post, X, draws=None):
    """Yield ``(s0, s1, r)`` with ``r`` of shape (s1 - s0, N, K) float64, over blocks of draws.

    ``draws`` (GMMParams with leading (chain, draw) axes, data units) defaults to the relabelled
    draws of ``post``. The block sizes come from :class:`~bayesgmm.posterior._compute.DrawEvaluator`,
    whose budget keeps ``block_draws * N * K`` moderate.
    """
    ev = post._evaluator(post.draws if draws is None else draws, X)
    k = ev.n_components
    for s0, s1, _, _, block in ev._draw_blocks():
        r = np.empty((s1 - s0, ev.n_rows, k))
        for r0, r1, xr in ev._row_blocks():
            rb = _resp_kernel(block, xr, missing=ev.missing)  # NaN cells: observed cells' densities
            r[:, r0:r1] = np.asarray(rb, np.float64)[: s1 - s0, : r1 - r0]
        yield s0, s1, r


def _data(post, X):
    return post.x if X is None else post._check_X(X)


def _entropy(p, axis=-1):
    """Shannon entropy in nats, ``0 log 0 = 0``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return -np.sum(t, axis=axis)


def _pivot_labels(post, X):
    """Labels of ``X`` under the MAP pivot (argmax of its responsibilities), shape (N,)."""
    one = jax.tree_util.tree_map(lambda a: np.asarray(a)[None, None], post.pivot)
    for _, _, r in _iter_responsibilities(post, X, draws=one):
        return np.argmax(r[0], axis=-1)
    raise AssertionError("unreachable")


# -- assignment probabilities ------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class AssignmentProbabilities:
    """Per point and component: posterior mean, credible interval, and assignment entropy.

    Attributes
    ----------
    mean : ndarray of shape (n_samples, n_components)
        ``mean_s r[s, n, k]``, the posterior probability that point ``n`` belongs to (relabelled)
        component ``k``; rows sum to 1. Equal to :meth:`bayesgmm.Posterior.predict_proba`.
    lower, upper : ndarray of shape (n_samples, n_components)
        Quantiles ``interval`` of ``r[s, n, k]`` over the draws ``s``: how much the assignment
        probability itself is uncertain because the parameters are.
    entropy : ndarray of shape (n_samples,)
        Entropy (nats) of ``mean[n]``: the total uncertainty of the assignment, 0 for a sure point
        and at most ``log(n_components)``. Label-free.
    expected_entropy : ndarray of shape (n_samples,)
        ``mean_s`` of the entropy of ``r[s, n]``: the part due to overlapping components given
        the parameters.
    interval : tuple of float
        The probabilities of ``lower`` and ``upper``.
    """

    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    entropy: np.ndarray
    expected_entropy: np.ndarray
    interval: tuple

    @property
    def mutual_information(self) -> np.ndarray:
        """``entropy - expected_entropy`` (nats), shape (n_samples,): the part of the assignment
        uncertainty due to uncertain parameters (zero when every draw agrees)."""
        return np.maximum(self.entropy - self.expected_entropy, 0.0)

    @property
    def labels(self) -> np.ndarray:
        """Most probable component of each point, shape (n_samples,)."""
        return np.argmax(self.mean, axis=1)


def _check_interval(interval):
    try:
        lo, hi = (float(v) for v in interval)
    except (TypeError, ValueError):
        raise ValueError(f"interval must be two probabilities (lower, upper), got {interval!r}.") from None
    if not 0.0 <= lo < hi <= 1.0:
        raise ValueError(f"interval must satisfy 0 <= lower < upper <= 1, got {interval!r}.")
    return lo, hi


def assignment_probabilities(post, X=None, *, interval=(0.05, 0.95)) -> AssignmentProbabilities:
    """Posterior assignment probabilities with credible intervals and entropies.

    Parameters
    ----------
    post : bayesgmm.Posterior
    X : array-like of shape (n_samples, n_features), optional
        Points to assign; default: the data the posterior was conditioned on.
    interval : (float, float), default=(0.05, 0.95)
        Lower and upper quantile over the draws.

    Returns
    -------
    AssignmentProbabilities
        ``mean``, ``lower``, ``upper`` of shape (n_samples, n_components); ``entropy``,
        ``expected_entropy`` of shape (n_samples,).

    Notes
    -----
    Cost O(S N K D) time. The quantiles need every draw of a point at once: rows are processed in
    chunks so that at most about 8M floats (``S x rows x K``) are held.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm import GaussianMixture
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(-3, 1, (100, 2)), rng.normal(3, 1, (100, 2))])
    >>> post = GaussianMixture(2, random_state=0).fit(X).fit_posterior(
    ...     X, num_warmup=100, num_samples=100, num_chains=2)
    >>> a = post.assignment_probabilities(X)
    >>> a.mean.shape, a.lower.shape, a.entropy.shape
    ((200, 2), (200, 2), (200,))
    """
    lo, hi = _check_interval(interval)
    X = _data(post, X)
    n, k, s = X.shape[0], post.n_components, post.n_draws
    out = {name: np.empty((n, k)) for name in ("mean", "lower", "upper")}
    expected_entropy = np.empty(n)
    chunk = max(1, _QUANTILE_BUDGET // (s * k))
    for c0 in range(0, n, chunk):
        c1 = min(c0 + chunk, n)
        r = np.empty((s, c1 - c0, k))
        for s0, s1, rb in _iter_responsibilities(post, X[c0:c1]):
            r[s0:s1] = rb
        out["mean"][c0:c1] = r.mean(axis=0)
        q = np.quantile(r, [lo, hi], axis=0)
        out["lower"][c0:c1], out["upper"][c0:c1] = q[0], q[1]
        expected_entropy[c0:c1] = _entropy(r).mean(axis=0)
    return AssignmentProbabilities(
        mean=out["mean"],
        lower=out["lower"],
        upper=out["upper"],
        entropy=_entropy(out["mean"]),
        expected_entropy=expected_entropy,
        interval=(lo, hi),
    )


# -- co-clustering ---------------------------------------------------------------------------------
def coclustering(post, X=None) -> np.ndarray:
    """Posterior similarity (co-clustering) matrix ``P[i, j] = Pr(z_i = z_j | data)``.

    ``P[i, j] = mean_s sum_k r[s, i, k] r[s, j, k]`` for ``i != j`` -- given a draw, the labels of
    two points are independent with probabilities ``r[s, i]`` and ``r[s, j]`` -- and
    ``P[i, i] = 1``. It does not depend on how the components are labelled.

    Parameters
    ----------
    post : bayesgmm.Posterior
    X : array-like of shape (n_samples, n_features), optional
        Default: the data the posterior was conditioned on.

    Returns
    -------
    ndarray of shape (n_samples, n_samples)
        Symmetric, unit diagonal, entries in [0, 1].

    Notes
    -----
    Time O(S N^2 K) (one ``(N, B K) @ (B K, N)`` product per block of ``B`` draws), memory
    O(N^2) for the output (8 N^2 bytes: 0.8 GB at N = 10,000) plus one block of responsibilities.
    """
    X = _data(post, X)
    n = X.shape[0]
    out = np.zeros((n, n))
    for s0, s1, r in _iter_responsibilities(post, X):
        a = np.ascontiguousarray(np.transpose(r, (1, 0, 2)).reshape(n, -1))  # (N, B K)
        out += a @ a.T
    out /= post.n_draws
    out += out.T
    out *= 0.5
    np.clip(out, 0.0, 1.0, out=out)
    np.fill_diagonal(out, 1.0)
    return out


# -- losses ------------------------------------------------------------------------------------------
def _canonical(labels) -> np.ndarray:
    """Relabel to 0..L-1 in order of first appearance."""
    _, first, inv = np.unique(labels, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))
    return order[inv.reshape(-1)].astype(np.int64)


def _binder_from_psm(labels, psm, psm_sum=None) -> float:
    """Expected Binder loss (fraction of pairs misclassified) of ``labels`` under ``psm``.

    ``sum_{i<j} [1(c_i = c_j) (1 - P_ij) + 1(c_i != c_j) P_ij]
    = sum_{i<j} P_ij + sum_l [n_l (n_l - 1) / 2 - (z_l' P z_l - n_l)]``, in O(N^2 L) without
    forming pair indices.
    """
    n = labels.shape[0]
    if n < 2:
        return 0.0
    z = np.zeros((n, int(labels.max()) + 1))
    z[np.arange(n), labels] = 1.0
    within = np.sum(z * (psm @ z), axis=0)  # z_l' P z_l, includes the unit diagonal
    nl = z.sum(axis=0)
    total = float(psm.sum()) if psm_sum is None else psm_sum
    loss = 0.5 * (total - n) + np.sum(0.5 * nl * (nl - 1) - (within - nl))
    return float(max(loss, 0.0) / (0.5 * n * (n - 1)))


def _xlog2x_table(n):
    x = np.arange(n + 2, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > 0, x * np.log2(np.where(x > 0, x, 1.0)), 0.0)


def _expected_vi(labels, draws_labels) -> float:
    """``mean_s VI(labels, draws_labels[s])`` in bits."""
    s, n = draws_labels.shape
    f = _xlog2x_table(n)
    nl = int(labels.max()) + 1
    nk = int(draws_labels.max()) + 1
    idx = (np.arange(s)[:, None] * nl + labels[None, :]) * nk + draws_labels
    joint = np.bincount(idx.ravel(), minlength=s * nl * nk).reshape(s, nl, nk)
    sizes = np.bincount(labels)
    other = joint.sum(axis=1)  # (S, K) cluster sizes of every drawn partition
    vi = f[sizes].sum() + f[other].sum(axis=1) - 2.0 * f[joint].sum(axis=(1, 2))
    return float(np.mean(vi) / n)


def expected_loss(labels, loss="binder", *, psm=None, draws_labels=None) -> float:
    """Posterior expected loss of a partition.

    Parameters
    ----------
    labels : array-like of int, shape (n_samples,)
    loss : {"binder", "vi"}
        ``"binder"``: Binder's loss with equal costs, as the fraction of the ``N (N - 1) / 2``
        pairs of points on which ``labels`` and the random partition disagree (together in one,
        apart in the other); its expectation is exact given ``psm``. ``"vi"``: the Variation of
        Information ``H(c) + H(C) - 2 I(c, C)`` in bits (Meila 2007), averaged over
        ``draws_labels``.
    psm : ndarray of shape (n_samples, n_samples)
        Co-clustering matrix (:func:`coclustering`); needed for ``"binder"``.
    draws_labels : ndarray of int, shape (n_draws, n_samples)
        Partitions drawn from the posterior; needed for ``"vi"``.

    Returns
    -------
    float
    """
    labels = _canonical(np.asarray(labels).reshape(-1))
    if loss == "binder":
        if psm is None:
            raise ValueError("loss='binder' needs the co-clustering matrix psm.")
        return _binder_from_psm(labels, np.asarray(psm))
    if loss == "vi":
        if draws_labels is None:
            raise ValueError("loss='vi' needs partitions drawn from the posterior (draws_labels).")
        return _expected_vi(labels, np.asarray(draws_labels, np.int64))
    raise ValueError(f"loss={loss!r} is not supported; use one of {PARTITION_LOSSES}.")


# -- greedy search ("sweetening") ----------------------------------------------------------------
def _sweeten_binder(labels, m, max_sweeps, order_rng):
    """Greedy single-point moves under Binder; ``m = 1 - 2 psm`` with zero diagonal.

    The expected loss changes by ``cost[i, b] - cost[i, a]`` when point ``i`` moves from cluster
    ``a`` to ``b``, with ``cost[i, l] = sum_{j in l, j != i} m[i, j]`` (0 for a new cluster).
    """
    n = labels.shape[0]
    labels = labels.copy()
    n_l = int(labels.max()) + 1
    z = np.zeros((n, n_l))
    z[np.arange(n), labels] = 1.0
    cost = m @ z
    sizes = np.bincount(labels, minlength=n_l).astype(np.int64)
    for _ in range(max_sweeps):
        moved = 0
        for i in order_rng.permutation(n):
            a = labels[i]
            live = sizes > 0
            c = np.where(live, cost[i], np.inf)
            b = int(np.argmin(c))
            stay = cost[i, a]
            if min(c[b], 0.0) >= stay - 1e-12:
                continue
            if c[b] > 0.0:  # a new singleton cluster is best (0 < stay)
                empty = np.flatnonzero(~live)
                if empty.size:
                    b = int(empty[0])
                else:
                    cost = np.concatenate([cost, np.zeros((n, 1))], axis=1)
                    sizes = np.append(sizes, 0)
                    b = cost.shape[1] - 1
            col = m[:, i]
            cost[:, a] -= col
            cost[:, b] += col
            sizes[a] -= 1
            sizes[b] += 1
            labels[i] = b
            moved += 1
        if not moved:
            break
    return _canonical(labels)


def _sweeten_vi(labels, draws_labels, max_sweeps, order_rng):
    """Greedy single-point moves under the expected VI over ``draws_labels`` (S, N).

    With ``f(x) = x log2 x``, ``N VI = sum_l f(n_l) + sum_k f(m_k) - 2 sum_lk f(n_lk)``; adding point
    ``i`` to cluster ``l`` changes the expectation by
    ``f(n_l + 1) - f(n_l) - 2 mean_s [f(n_{l k_s} + 1) - f(n_{l k_s})]``, ``k_s`` its label in draw s.
    """
    s, n = draws_labels.shape
    f = _xlog2x_table(n)
    nk = int(draws_labels.max()) + 1
    labels = labels.copy()
    cap = int(labels.max()) + 1 + 8
    joint = np.zeros((s, cap, nk), np.int64)
    np.add.at(joint, (np.repeat(np.arange(s), n), np.tile(labels, s), draws_labels.ravel()), 1)
    sizes = np.bincount(labels, minlength=cap).astype(np.int64)
    rows = np.arange(s)
    for _ in range(max_sweeps):
        moved = 0
        for i in order_rng.permutation(n):
            a = labels[i]
            ks = draws_labels[:, i]
            empty = np.flatnonzero(sizes == 0)
            if empty.size == 0:  # keep one empty cluster available as "a new cluster"
                joint = np.concatenate([joint, np.zeros((s, 8, nk), np.int64)], axis=1)
                sizes = np.append(sizes, np.zeros(8, np.int64))
                empty = np.flatnonzero(sizes == 0)
            cand = np.append(np.flatnonzero(sizes > 0), empty[0])
            is_a = cand == a
            t = joint[rows, :, ks][:, cand] - is_a[None, :]  # counts without point i
            nb = sizes[cand] - is_a
            delta = (f[nb + 1] - f[nb]) - 2.0 * np.mean(f[t + 1] - f[t], axis=0)
            j = int(np.argmin(delta))
            b = int(cand[j])
            if b == a or delta[j] >= delta[np.flatnonzero(is_a)[0]] - 1e-12:
                continue
            joint[rows, a, ks] -= 1
            joint[rows, b, ks] += 1
            sizes[a] -= 1
            sizes[b] += 1
            labels[i] = b
            moved += 1
        if not moved:
            break
    return _canonical(labels)


@dataclasses.dataclass(frozen=True)
class Partition:
    """A point partition of the data with its posterior expected loss.

    Attributes
    ----------
    labels : ndarray of int64, shape (n_samples,)
        Cluster of each point, ``0 .. n_clusters - 1``. Clusters are numbered after the relabelled
        component that most of their points belong to (posterior mean probabilities), so with
        well-separated clusters ``labels`` usually equals :meth:`bayesgmm.Posterior.predict`.
    expected_loss : float
        Posterior expected loss of ``labels`` (see :func:`expected_loss`).
    loss : {"binder", "vi"}
    n_clusters : int
    sizes : ndarray of int64, shape (n_clusters,)
    map_expected_loss : float
        Expected loss of the partition of the MAP estimate (argmax of its responsibilities), for
        comparison.
    """

    labels: np.ndarray
    expected_loss: float
    loss: str
    n_clusters: int
    sizes: np.ndarray
    map_expected_loss: float


def _order_like_components(labels, mean_proba):
    """Renumber clusters by the component holding most of their probability mass, then size."""
    n_l = int(labels.max()) + 1
    mass = np.zeros((n_l, mean_proba.shape[1]))
    np.add.at(mass, labels, mean_proba)
    comp = np.argmax(mass, axis=1)
    sizes = np.bincount(labels, minlength=n_l)
    order = np.lexsort((-sizes, comp))  # clusters sorted by (component, -size)
    new = np.empty(n_l, np.int64)
    new[order] = np.arange(n_l)
    return new[labels]


def _draw_partitions(post, X, rng):
    """One partition per draw with labels drawn from ``r[s]``, shape (S, N)."""
    n = X.shape[0]
    out = np.empty((post.n_draws, n), np.int64)
    for s0, s1, r in _iter_responsibilities(post, X):
        cum = np.cumsum(r, axis=-1)
        u = rng.random((s1 - s0, n, 1)) * cum[..., -1:]
        out[s0:s1] = np.minimum(np.sum(cum < u, axis=-1), r.shape[-1] - 1)
    return out


def _allocate_binder(m, order):
    """Sequential allocation under Binder: each point in ``order`` joins the cheapest cluster of
    the points placed so far, or a new one."""
    n = m.shape[0]
    labels = np.full(n, -1, np.int64)
    cost = np.zeros((n, 0))
    for i in order:
        c = cost[i]
        if c.size and c.min() < 0.0:
            b = int(np.argmin(c))
        else:
            b = cost.shape[1]
            cost = np.concatenate([cost, np.zeros((n, 1))], axis=1)
        cost[:, b] += m[:, i]
        labels[i] = b
    return _canonical(labels)


def _allocate_vi(draws_labels, order):
    """Sequential allocation under the expected VI (counts of the points placed so far)."""
    s, n = draws_labels.shape
    f = _xlog2x_table(n)
    nk = int(draws_labels.max()) + 1
    labels = np.full(n, -1, np.int64)
    joint = np.zeros((s, 0, nk), np.int64)
    sizes = np.zeros(0, np.int64)
    rows = np.arange(s)
    for i in order:
        ks = draws_labels[:, i]
        b = sizes.size  # a new cluster changes the loss by f(1) - f(0) - 2 (f(1) - f(0)) = 0
        if sizes.size:
            t = joint[rows, :, ks]  # (S, L)
            delta = (f[sizes + 1] - f[sizes]) - 2.0 * np.mean(f[t + 1] - f[t], axis=0)
            j = int(np.argmin(delta))
            if delta[j] < 0.0:
                b = j
        if b == sizes.size:
            joint = np.concatenate([joint, np.zeros((s, 1, nk), np.int64)], axis=1)
            sizes = np.append(sizes, 0)
        joint[rows, b, ks] += 1
        sizes[b] += 1
        labels[i] = b
    return _canonical(labels)


def minimise_expected_loss(
    loss: str,
    *,
    psm=None,
    draws_labels=None,
    candidates=(),
    n_starts: int = 4,
    n_sweeten: int = 4,
    max_sweeps: int = 50,
    random_state=0,
):
    """Greedy search for a partition with small posterior expected loss (SALSO-style).

    Starts are ``n_starts`` sequential allocations (points in random order, each joining the
    cluster that lowers the expected loss of the points placed so far, or a new one) and the
    ``n_sweeten`` best ``candidates``; every start is improved by single-point moves until no move
    lowers the expected loss ("sweetening"); the best result is returned. Local search: a good
    partition, not a certified optimum.

    Parameters
    ----------
    loss : {"binder", "vi"}
    psm : ndarray of shape (n_samples, n_samples)
        Co-clustering matrix (Binder).
    draws_labels : ndarray of int, shape (n_draws, n_samples)
        Partitions drawn from the posterior (VI).
    candidates : sequence of int arrays of shape (n_samples,)
    n_starts, n_sweeten, max_sweeps : int
    random_state : int, numpy Generator or None

    Returns
    -------
    labels : ndarray of int64, shape (n_samples,)
        Canonical labels (``0 .. L-1`` in order of first appearance).
    expected_loss : float
    """
    if loss not in PARTITION_LOSSES:
        raise ValueError(f"loss={loss!r} is not supported; use one of {PARTITION_LOSSES}.")
    rng = random_state if isinstance(random_state, np.random.Generator) else np.random.default_rng(random_state)
    if loss == "binder":
        if psm is None:
            raise ValueError("loss='binder' needs the co-clustering matrix psm.")
        psm = np.asarray(psm, np.float64)
        n = psm.shape[0]
        psm_sum = float(psm.sum())
        m = 1.0 - 2.0 * psm
        np.fill_diagonal(m, 0.0)

        def evaluate(c):
            return _binder_from_psm(c, psm, psm_sum)

        def allocate():
            return _allocate_binder(m, rng.permutation(n))

        def sweeten(c):
            return _sweeten_binder(c, m, max_sweeps, rng)

    else:
        if draws_labels is None:
            raise ValueError("loss='vi' needs partitions drawn from the posterior (draws_labels).")
        draws_labels = np.asarray(draws_labels, np.int64)
        n = draws_labels.shape[1]

        def evaluate(c):
            return _expected_vi(c, draws_labels)

        def allocate():
            return _allocate_vi(draws_labels, rng.permutation(n))

        def sweeten(c):
            return _sweeten_vi(c, draws_labels, max_sweeps, rng)

    uniq = {}
    for c in candidates:
        c = _canonical(np.asarray(c).reshape(-1))
        if c.shape != (n,):
            raise ValueError(f"candidate partitions must have {n} labels, got {c.shape}.")
        uniq[c.tobytes()] = c
    cands = list(uniq.values())
    scores = [evaluate(c) for c in cands]
    starts = [cands[i] for i in np.argsort(scores, kind="stable")[: int(n_sweeten)]]
    starts += [allocate() for _ in range(int(n_starts))]
    if not starts:
        raise ValueError("no start: give candidates or n_starts >= 1.")
    best_labels, best = None, np.inf
    for c in starts:
        c = sweeten(c)
        v = evaluate(c)
        if v < best - 1e-12:
            best_labels, best = c, v
    return best_labels, float(best)


def partition(
    post,
    X=None,
    loss: str = "binder",
    *,
    psm=None,
    n_candidates: int = 50,
    n_starts: int = 4,
    n_sweeten: int = 4,
    max_sweeps: int = 50,
    random_state=0,
) -> Partition:
    """A partition of the points minimising the posterior expected Binder loss or VI.

    The search (:func:`minimise_expected_loss`) starts from ``n_starts`` sequential allocations
    and from the best of these candidates: the MAP partition, the posterior-mean partition
    (:meth:`Posterior.predict`) and the argmax partitions of ``n_candidates`` evenly spaced
    draws; each start is improved by greedy single-point moves (to another cluster or a new one)
    until no move lowers the expected loss ("sweetening", as in SALSO), and the best result is
    returned. The search is local: the result is a good partition, not a certified optimum.

    Parameters
    ----------
    post : bayesgmm.Posterior
    X : array-like of shape (n_samples, n_features), optional
        Default: the data the posterior was conditioned on.
    loss : {"binder", "vi"}, default="binder"
        ``"binder"`` (equal costs) is minimised exactly in expectation through the co-clustering
        matrix and tends to leave small uncertain groups as extra clusters; ``"vi"`` (Variation of
        Information, Wade & Ghahramani 2018) is estimated over one partition per draw (labels
        drawn from their conditional posterior) and prefers fewer, larger clusters.
    psm : ndarray of shape (n_samples, n_samples), optional
        A precomputed :func:`coclustering` of ``X`` (Binder only).
    n_candidates : int, default=50
        Number of draws whose argmax partitions are candidates.
    n_starts : int, default=4
        Sequential allocations in random order.
    n_sweeten : int, default=4
        Number of best candidates improved by the greedy search.
    max_sweeps : int, default=50
        Maximum passes over the points per search.
    random_state : int, numpy Generator or None, default=0
        Order of the points in the search; draws of the labels for ``"vi"``.

    Returns
    -------
    Partition

    Notes
    -----
    Binder: O(S N^2 K) for the co-clustering matrix, then O(N^2) per pass. VI: O(S N) per pass
    and O(S N) memory.

    Examples
    --------
    The sparse six-component posterior of :func:`n_occupied`'s example (a short NUTS run) has two
    clusters:

    >>> import numpy as np
    >>> from bayesgmm import GaussianMixture, Prior
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(-3, 0.6, (90, 2)), rng.normal(3, 0.6, (60, 2))])
    >>> gm = GaussianMixture(6, covariance_type="spherical", random_state=0,
    ...                      prior=Prior(weight_concentration=0.01))
    >>> post = gm.fit(X).fit_posterior(X, num_warmup=200, num_samples=200, num_chains=2)
    >>> part = post.partition(loss="vi")
    >>> part.n_clusters, sorted(part.sizes.tolist())
    (2, [60, 90])
    """
    if loss not in PARTITION_LOSSES:
        raise ValueError(f"loss={loss!r} is not supported; use one of {PARTITION_LOSSES}.")
    for name, v in (("n_candidates", n_candidates), ("n_starts", n_starts), ("n_sweeten", n_sweeten),
                    ("max_sweeps", max_sweeps)):
        low = 1 if name == "max_sweeps" else 0
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {v!r}.")
    rng = random_state if isinstance(random_state, np.random.Generator) else np.random.default_rng(random_state)
    X = _data(post, X)
    n = X.shape[0]
    mean_proba = post.predict_proba(X)
    map_labels = _canonical(_pivot_labels(post, X))
    candidates = [map_labels, _canonical(np.argmax(mean_proba, axis=1))]
    picks = np.unique(np.linspace(0, post.n_draws - 1, min(int(n_candidates), post.n_draws)).astype(int))
    if picks.size:
        for s0, s1, r in _iter_responsibilities(post, X):
            for s in picks[(picks >= s0) & (picks < s1)]:
                candidates.append(np.argmax(r[s - s0], axis=-1))

    if loss == "binder":
        if psm is None:
            psm = coclustering(post, X)
        psm = np.asarray(psm, np.float64)
        if psm.shape != (n, n):
            raise ValueError(f"psm must have shape ({n}, {n}), got {psm.shape}.")
        kwargs = {"psm": psm}
    else:
        kwargs = {"draws_labels": _draw_partitions(post, X, rng)}
    labels, best = minimise_expected_loss(
        loss, candidates=candidates, n_starts=n_starts, n_sweeten=max(int(n_sweeten), 1),
        max_sweeps=max_sweeps, random_state=rng, **kwargs,
    )
    labels = _order_like_components(labels, mean_proba)
    sizes = np.bincount(labels).astype(np.int64)
    return Partition(
        labels=labels,
        expected_loss=best,
        loss=loss,
        n_clusters=int(sizes.size),
        sizes=sizes,
        map_expected_loss=expected_loss(map_labels, loss, **kwargs),
    )


# -- occupied components -------------------------------------------------------------------------
def n_occupied(post, random_state=None) -> np.ndarray:
    """Per draw, the number of components holding at least one data point.

    For every draw ``theta_s``, labels are drawn from their conditional posterior
    ``z_n ~ Categorical(r[s, n])`` for the data the posterior was conditioned on (points with
    ``sample_weight == 0`` are left out) and the distinct labels are counted: a draw from the
    posterior of the number of occupied components ``K+``. With a sparse Dirichlet prior
    (``weight_concentration`` well below 1) and a deliberately large ``n_components``, the
    superfluous components empty out and the distribution of ``K+`` estimates the number of
    clusters (Malsiner-Walli et al. 2016).

    Parameters
    ----------
    post : bayesgmm.Posterior
    random_state : int, numpy Generator or None
        Seed of the label draws.

    Returns
    -------
    ndarray of int64, shape (chain, draw)

    Examples
    --------
    Six components and a sparse Dirichlet for two clusters (a short NUTS run):

    >>> import numpy as np
    >>> from bayesgmm import GaussianMixture, Prior
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(-3, 0.6, (90, 2)), rng.normal(3, 0.6, (60, 2))])
    >>> gm = GaussianMixture(6, covariance_type="spherical", random_state=0,
    ...                      prior=Prior(weight_concentration=0.01))
    >>> post = gm.fit(X).fit_posterior(X, num_warmup=200, num_samples=200, num_chains=2)
    >>> counts = post.n_occupied(random_state=0)
    >>> counts.shape
    (2, 200)
    >>> share = np.bincount(counts.ravel(), minlength=7) / counts.size  # of 0, 1, ..., 6 occupied
    >>> int(share.argmax())  # most draws occupy two components
    2
    """
    rng = random_state if isinstance(random_state, np.random.Generator) else np.random.default_rng(random_state)
    x = post.x
    if post.sample_weight is not None:
        x = x[post.sample_weight > 0]
    k = post.n_components
    out = np.empty(post.n_draws, np.int64)
    for s0, s1, r in _iter_responsibilities(post, x):
        b, n = s1 - s0, r.shape[1]
        cum = np.cumsum(r, axis=-1)
        u = rng.random((b, n, 1)) * cum[..., -1:]
        z = np.minimum(np.sum(cum < u, axis=-1), k - 1)  # (B, N)
        counts = np.bincount((np.arange(b)[:, None] * k + z).ravel(), minlength=b * k).reshape(b, k)
        out[s0:s1] = np.sum(counts > 0, axis=1)
    return out.reshape(post.num_chains, post.num_samples)
