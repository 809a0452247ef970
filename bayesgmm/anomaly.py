"""Anomaly detection by density: the percentile threshold, and its Bayesian version.

The classic workflow (as in scikit-learn tutorials): fit a mixture, compute the log density
``score_samples`` of every training point, take its ``percentile``-th percentile (4% by default:
"about 4% of the products are defective") as the threshold, and call every point whose density
falls below it an anomaly::

    densities = gm.score_samples(X)
    threshold = np.percentile(densities, 4)
    anomalies = X[densities < threshold]

:func:`density_threshold` and :func:`detect_anomalies` do exactly that for a fitted
:class:`bayesgmm.GaussianMixture` (or anything with ``score_samples``).

:func:`anomaly_probability` is the Bayesian version on a :class:`bayesgmm.Posterior`: for every
draw ``theta_s`` the threshold ``t_s`` is the same percentile of the training log densities
``log p(x_train | theta_s)``, and the answer for a point is the posterior probability that it is an
anomaly, ``mean_s 1[log p(x | theta_s) < t_s]`` -- close to 0 or 1 for clear cases, in between for
points whose status depends on parameters the data do not pin down.
"""

from __future__ import annotations

import numpy as np

__all__ = ["anomaly_probability", "density_threshold", "detect_anomalies"]


def _check_percentile(percentile) -> float:
    if isinstance(percentile, bool) or not isinstance(percentile, (int, float, np.integer, np.floating)):
        raise ValueError(f"percentile must be a number in [0, 100], got {percentile!r}.")
    q = float(percentile)
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be in [0, 100], got {percentile!r}.")
    return q


def density_threshold(model, X, percentile: float = 4.0) -> float:
    """The ``percentile``-th percentile of the log densities ``model.score_samples(X)``.

    Parameters
    ----------
    model : fitted bayesgmm.GaussianMixture (or any estimator with ``score_samples``)
    X : array-like of shape (n_samples, n_features)
        The reference (training) data.
    percentile : float in [0, 100], default=4.0
        About this share (in percent) of ``X`` lies below the threshold.

    Returns
    -------
    float
        A log density.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm import GaussianMixture
    >>> from bayesgmm.anomaly import density_threshold
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(500, 2))
    >>> gm = GaussianMixture(1, random_state=0).fit(X)
    >>> t = density_threshold(gm, X, 4)
    >>> float(np.mean(gm.score_samples(X) < t))
    0.04
    """
    q = _check_percentile(percentile)
    return float(np.percentile(np.asarray(model.score_samples(X), np.float64), q))


def detect_anomalies(model, X, percentile: float = 4.0, *, X_train=None) -> np.ndarray:
    """Flag points whose log density is below :func:`density_threshold` of the training data.

    Parameters
    ----------
    model : fitted bayesgmm.GaussianMixture (or any estimator with ``score_samples``)
    X : array-like of shape (n_samples, n_features)
        Points to check.
    percentile : float in [0, 100], default=4.0
    X_train : array-like of shape (n_train, n_features), optional
        Data that define the threshold; default ``X`` itself.

    Returns
    -------
    ndarray of bool, shape (n_samples,)
        True for an anomaly: ``score_samples(X) < threshold``.
    """
    threshold = density_threshold(model, X if X_train is None else X_train, percentile)
    return np.asarray(model.score_samples(X), np.float64) < threshold


def _weighted_percentile(a, q, weights):
    """Row-wise weighted percentile (inverted CDF) of ``a`` (S, N) with ``weights`` (N,)."""
    order = np.argsort(a, axis=1)
    srt = np.take_along_axis(a, order, axis=1)
    cw = np.cumsum(weights[order], axis=1)
    target = q / 100.0 * cw[:, -1:]
    idx = np.minimum(np.sum(cw < target, axis=1), a.shape[1] - 1)
    return srt[np.arange(a.shape[0]), idx]


def anomaly_probability(post, X=None, percentile: float = 4.0, *, return_thresholds: bool = False):
    """Posterior probability that each point's density falls below the per-draw threshold.

    For every draw ``theta_s``: ``t_s`` = the ``percentile``-th percentile of
    ``log p(x_n | theta_s)`` over the data the posterior was conditioned on (weighted by
    ``sample_weight`` when given); then ``prob[m] = mean_s 1[log p(X_m | theta_s) < t_s]``.

    Parameters
    ----------
    post : bayesgmm.Posterior
    X : array-like of shape (n_samples, n_features), optional
        Points to check; default the training data.
    percentile : float in [0, 100], default=4.0
    return_thresholds : bool, default=False
        Also return the per-draw thresholds.

    Returns
    -------
    prob : ndarray of shape (n_samples,)
        In [0, 1]. ``prob > 0.5`` is the Bayesian counterpart of :func:`detect_anomalies`.
    thresholds : ndarray of shape (chain, draw)
        The log-density thresholds ``t_s`` (only with ``return_thresholds=True``).

    Notes
    -----
    O(S N) memory for the training log-likelihoods (cached by the posterior for LOO) and O(S M)
    for ``M`` new points.

    Rows with missing (NaN) cells, in ``X`` or in the training data, are scored by the density
    of their observed cells (the missing ones integrated out). A density over fewer coordinates
    is on another scale (per coordinate roughly the log density of one feature), so compare
    rows with the same pattern of missing cells, or impute first
    (:meth:`bayesgmm.Posterior.impute`), when the patterns vary.
    """
    q = _check_percentile(percentile)
    train = post.pointwise_log_likelihood().reshape(post.n_draws, -1)  # (S, N), data units
    if post.sample_weight is None:
        thresholds = np.percentile(train, q, axis=1)
    else:
        thresholds = _weighted_percentile(train, q, post.sample_weight)
    ll = train if X is None else post.pointwise_log_likelihood(X).reshape(post.n_draws, -1)
    prob = np.mean(ll < thresholds[:, None], axis=0)
    if return_thresholds:
        return prob, thresholds.reshape(post.num_chains, post.num_samples)
    return prob
