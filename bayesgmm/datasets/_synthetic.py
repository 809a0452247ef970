"""Synthetic data with a known truth: the seed examples' data and general Gaussian mixtures."""

from __future__ import annotations

import numpy as np

from ..core.layouts import covariances_shape, full_covariances
from ..core.params import check_covariance_type

__all__ = ["make_mixture", "make_blobs_1d_three", "make_stretched_blobs"]


def _rng(random_state):
    """A numpy generator from None, an int, a SeedSequence, a Generator or a RandomState."""
    if isinstance(random_state, (np.random.Generator, np.random.RandomState)):
        return random_state
    return np.random.default_rng(random_state)


def _covariance_cholesky(covariances, covariance_type, n_components, n_features):
    """Per-component lower Cholesky factors (K, D, D) from covariances in scikit-learn's layout."""
    cov = np.asarray(covariances, dtype=np.float64)
    expected = covariances_shape(covariance_type, n_components, n_features)
    if cov.shape != expected:
        raise ValueError(
            f"covariances for covariance_type={covariance_type!r} must have shape {expected}, "
            f"got {cov.shape}"
        )
    full = full_covariances(cov, covariance_type, n_components, n_features)
    if covariance_type in ("diag", "spherical"):
        if not np.all(np.isfinite(cov)) or np.any(cov <= 0):
            raise ValueError("covariances (variances) must be finite and > 0")
        return np.sqrt(full)  # diagonal matrices: the square roots of the variances
    if not np.allclose(full, np.swapaxes(full, -1, -2)):
        raise ValueError("covariances must be symmetric")
    try:
        return np.linalg.cholesky(full)
    except np.linalg.LinAlgError:
        raise ValueError("covariances must be positive definite") from None


def make_mixture(
    n_samples, weights, means, covariances, random_state=None, *, covariance_type="full"
):
    """Draw samples from a Gaussian mixture with known parameters.

    Each sample's component is drawn independently with probabilities ``weights``, so the
    component counts are multinomial, not fixed.

    Parameters
    ----------
    n_samples : int
        Number of samples.
    weights : array-like of shape (n_components,)
        Mixture weights, non-negative and summing to 1.
    means : array-like of shape (n_components, n_features)
        Component means.
    covariances : array-like
        Covariances in scikit-learn's layout for ``covariance_type``: (n_components, n_features,
        n_features) for "full", (n_features, n_features) for "tied", (n_components, n_features)
        variances for "diag", (n_components,) variances for "spherical".
    random_state : None, int, numpy.random.Generator or numpy.random.RandomState, optional
        Source of randomness; an int gives reproducible draws.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        Layout of ``covariances``.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), float64
        The samples.
    labels : ndarray of shape (n_samples,), int64
        The component each sample was drawn from.

    Examples
    --------
    >>> X, labels = make_mixture(
    ...     500, weights=[0.3, 0.7], means=[[0.0, 0.0], [5.0, 5.0]],
    ...     covariances=[[[1.0, 0.5], [0.5, 1.0]], [[2.0, 0.0], [0.0, 0.5]]], random_state=0)
    >>> X.shape, labels.shape
    ((500, 2), (500,))
    >>> sorted(set(labels.tolist()))
    [0, 1]
    """
    n_samples = int(n_samples)
    if n_samples < 0:
        raise ValueError(f"n_samples must be >= 0, got {n_samples}")
    check_covariance_type(covariance_type)
    weights = np.asarray(weights, dtype=np.float64)
    means = np.asarray(means, dtype=np.float64)
    if weights.ndim != 1 or weights.size == 0:
        raise ValueError(f"weights must be a non-empty 1-D array, got shape {weights.shape}")
    if np.any(weights < 0) or not np.isclose(weights.sum(), 1.0, rtol=0, atol=1e-8):
        raise ValueError(f"weights must be non-negative and sum to 1, got {weights.tolist()}")
    n_components = weights.shape[0]
    if means.ndim != 2 or means.shape[0] != n_components:
        raise ValueError(
            f"means must have shape (n_components, n_features) = ({n_components}, n_features), "
            f"got {means.shape}"
        )
    n_features = means.shape[1]
    chol = _covariance_cholesky(covariances, covariance_type, n_components, n_features)

    rng = _rng(random_state)
    labels = rng.choice(n_components, size=n_samples, p=weights / weights.sum()).astype(np.int64)
    noise = rng.standard_normal((n_samples, n_features))
    X = means[labels] + np.einsum("nij,nj->ni", chol[labels], noise)
    return X, labels


def make_blobs_1d_three(n=(2000, 5000, 10000), random_state=None):
    """The one-dimensional three-component data of seed 000 (scikit-learn's ``score_samples``).

    Normals with (mean, sd) = (-0.5, 0.2), (-0.1, 0.07) and (0.2, 0.13), with fixed counts
    ``n``, concatenated in that order (not shuffled), as in the seed's
    ``np.random.normal(-0.5, 0.2, 2000)`` ... ``np.append`` code.

    Parameters
    ----------
    n : tuple of 3 ints, default=(2000, 5000, 10000)
        Number of samples from each of the three normals.
    random_state : None, int, numpy.random.Generator or numpy.random.RandomState, optional
        Source of randomness; an int gives reproducible draws.

    Returns
    -------
    X : ndarray of shape (sum(n), 1), float64
        The samples, as a column (the layout estimators expect).
    labels : ndarray of shape (sum(n),), int64
        Which normal each sample came from (0, 1, 2).

    Notes
    -----
    The true mixture has weights ``n / sum(n)`` (by default about 0.118, 0.294, 0.588), means
    (-0.5, -0.1, 0.2) and variances (0.04, 0.0049, 0.0169).

    Examples
    --------
    >>> X, labels = make_blobs_1d_three(random_state=0)
    >>> X.shape
    (17000, 1)
    >>> [int((labels == k).sum()) for k in range(3)]
    [2000, 5000, 10000]
    """
    counts = [int(c) for c in n]
    if len(counts) != 3 or min(counts) < 0:
        raise ValueError(f"n must be three non-negative counts, got {n!r}")
    rng = _rng(random_state)
    params = ((-0.5, 0.2), (-0.1, 0.07), (0.2, 0.13))
    parts = [rng.normal(loc, sd, size=c) for (loc, sd), c in zip(params, counts)]
    labels = np.repeat(np.arange(3, dtype=np.int64), counts)
    return np.concatenate(parts)[:, None], labels


def make_stretched_blobs(n_samples=400, random_state=0, *, cluster_std=0.6, return_params=False):
    """The stretched four-blob data of seed 003 (k-means fails, a tied-covariance GMM fits).

    Reproduces, with numpy only, the seed's
    ``X, y = sklearn.datasets.make_blobs(n_samples, centers=4, cluster_std=0.6, random_state)``,
    ``X = X[:, ::-1]``, ``X_stretched = X @ np.random.RandomState(13).randn(2, 2)``: four round
    blobs with centres drawn uniformly in ``[-10, 10]^2``, axes swapped, then one linear map
    ``A`` applied to all points. So every component has the same covariance
    ``cluster_std**2 * A.T @ A`` (a "tied" mixture) and the truth is known exactly.

    Parameters
    ----------
    n_samples : int, default=400
        Total number of points, split as evenly as possible over the four blobs (the first
        ``n_samples % 4`` blobs get one more), then shuffled.
    random_state : int, numpy.random.RandomState or None, default=0
        Seed of the centres, the points and the shuffle (scikit-learn's ``random_state``); the
        stretch ``A`` is always the seed's ``RandomState(13).randn(2, 2)``.
    cluster_std : float, default=0.6
        Standard deviation of each round blob before the stretch.
    return_params : bool, default=False
        Also return the true mixture parameters.

    Returns
    -------
    X : ndarray of shape (n_samples, 2), float64
    labels : ndarray of shape (n_samples,), int64
        The blob (0-3) of each point.
    params : dict, only if ``return_params``
        ``weights`` (4,) (the blob shares ``n_k / n_samples``), ``means`` (4, 2), ``covariance``
        (2, 2) -- the tied covariance shared by the four blobs -- and ``stretch`` (2, 2), the
        matrix ``A``.

    Examples
    --------
    >>> X, labels, truth = make_stretched_blobs(random_state=0, return_params=True)
    >>> X.shape, np.bincount(labels).tolist()
    ((400, 2), [100, 100, 100, 100])
    >>> truth["covariance"].shape
    (2, 2)
    """
    n_samples = int(n_samples)
    if n_samples < 4:
        raise ValueError(f"n_samples must be >= 4 (one point per blob), got {n_samples}")
    if not (np.isfinite(cluster_std) and cluster_std > 0):
        raise ValueError(f"cluster_std must be a finite number > 0, got {cluster_std!r}")
    rs = random_state if isinstance(random_state, np.random.RandomState) else np.random.RandomState(random_state)
    n_centers, n_features = 4, 2
    centers = rs.uniform(-10.0, 10.0, size=(n_centers, n_features))
    counts = [n_samples // n_centers] * n_centers
    for i in range(n_samples % n_centers):
        counts[i] += 1
    X = np.concatenate([rs.normal(loc=centers[i], scale=cluster_std, size=(c, n_features))
                        for i, c in enumerate(counts)])
    labels = np.repeat(np.arange(n_centers, dtype=np.int64), counts)
    order = np.arange(n_samples)
    rs.shuffle(order)
    X, labels = X[order], labels[order]
    stretch = np.random.RandomState(13).randn(2, 2)
    X = X[:, ::-1] @ stretch
    if not return_params:
        return X, labels
    params = {
        "weights": np.asarray(counts, np.float64) / n_samples,
        "means": centers[:, ::-1] @ stretch,
        "covariance": cluster_std**2 * stretch.T @ stretch,
        "stretch": stretch,
    }
    return X, labels, params
