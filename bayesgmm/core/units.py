"""Data units and standardised units: the per-feature affine map every fit and evaluation runs in.

The model is equivariant under ``z = (x - shift) / scale`` when the prior is mapped along
(:meth:`bayesgmm.core.prior.ResolvedPrior.affine`): parameters map exactly
(:meth:`GMMParams.standardise <bayesgmm.core.params.GMMParams.standardise>` /
:meth:`~bayesgmm.core.params.GMMParams.unstandardise`) and log densities change by a constant
(:func:`log_jacobian`). Running EM, NUTS and VI -- and evaluating densities of posterior draws --
on standardised data keeps float32 sound (no differences of large, nearly equal numbers on the
device) and makes step sizes and mass matrices comparable across data sets. For ``spherical``
covariances the scale is common to all features so that the structure is preserved.

Everything here is host-side numpy in float64: data units never pass through float32.
"""

from __future__ import annotations

import numpy as np

from . import prior as _prior
from .params import GMMParams
from .prior import weighted_moments

__all__ = ["has_missing", "log_jacobian", "observed_weight", "row_log_jacobians", "standardisation", "standardise_rows"]


def standardisation(x, covariance_type: str, sample_weight=None, *, reg_covar=None):
    """``(shift, scale)``: the weighted mean and standard deviation of every feature.

    Parameters
    ----------
    x : array of shape (n, D)
        Any float dtype, or a memmap: the moments are accumulated in float64 chunk by chunk
        (:func:`bayesgmm.core.prior.weighted_moments`).
    covariance_type : {"full", "tied", "diag", "spherical"}
        For ``spherical`` every feature gets the same scale, the root mean square of the
        standard deviations.
    sample_weight : array of shape (n,), optional
    reg_covar : float, optional
        Maximum likelihood's ``reg_covar``: the scale is then ``sqrt(std**2 + reg_covar)``, so that
        ``reg_covar`` in standardised units is at most 1 whatever the data's scale (float32 cannot
        hold ``reg_covar / std**2`` for data of scale 1e-20).

    Returns
    -------
    shift, scale : ndarrays of shape (D,), float64
        A constant feature gets scale 1.
    """
    mean, std = weighted_moments(x, sample_weight)
    if reg_covar is not None:
        std = np.sqrt(std**2 + float(reg_covar))
    std = np.where(std > 0, std, 1.0)
    if covariance_type == "spherical":
        std = np.full_like(std, np.sqrt(np.mean(std**2)))
    return mean, std


def standardise_rows(x, shift, scale, dtype, n_rows=None):
    """``(x - shift) / scale`` as a host array of ``dtype``, zero-padded to ``n_rows`` rows.

    Computed in float64 chunk by chunk, so that peak memory is the result plus one chunk (no
    whole-data float64 temporaries); the padding rows are zeros.

    Parameters
    ----------
    x : array of shape (n, D) (any float dtype, or a memmap)
    shift, scale : arrays of shape (D,)
    dtype : numpy dtype of the result
    n_rows : int >= n, optional (default n)

    Returns
    -------
    ndarray of shape (n_rows, D)
    """
    n, d = x.shape
    out = np.zeros((n if n_rows is None else int(n_rows), d), np.dtype(dtype))
    chunk = _prior.HOST_CHUNK
    for i in range(0, n, chunk):
        j = min(i + chunk, n)
        out[i:j] = (np.asarray(x[i:j], np.float64) - shift) / scale
    return out


def log_jacobian(scale, total_weight=1.0, params: GMMParams | None = None) -> float:
    """``log p_x - log p_z`` for the standardisation ``z = (x - shift) / scale`` (a constant).

    Parameters
    ----------
    scale : array of shape (D,)
    total_weight : float or array of shape (D,), default=1.0
        The (weighted) number of points whose log-likelihood is converted; 1 for the log density
        of one point (``score_samples``, pointwise log-likelihoods). With missing cells, the
        weight of each feature's observed cells (:func:`observed_weight`).
    params : GMMParams, optional
        Also convert the log prior density of these parameters (only their covariance type and
        number of components matter): for a log posterior.

    Returns
    -------
    float
        ``-total_weight * sum(log scale)``, minus with ``params`` the log scales of the prior's
        means and covariance scales.
    """
    logs = np.log(scale)
    if np.ndim(total_weight) == 0:
        out = -total_weight * logs.sum()
    else:  # missing cells: each feature's observed weight
        out = -float(np.sum(np.asarray(total_weight, np.float64) * logs))
    if params is not None:
        ct = params.covariance_type
        k = params.n_components
        out -= k * logs.sum()  # means
        if ct in ("full", "diag"):
            out -= k * logs.sum()
        elif ct == "tied":
            out -= logs.sum()
        else:
            out -= k * logs[0]
    return float(out)


def observed_weight(x, sample_weight=None):
    """Per feature, the total weight of the observed (non-NaN) cells of ``x`` (n, D): the
    ``total_weight`` of :func:`log_jacobian` for data with missing cells. Shape (D,), float64."""
    n = x.shape[0]
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, np.float64)
    chunk = _prior.HOST_CHUNK
    return sum(
        (w[i : i + chunk, None] * ~np.isnan(np.asarray(x[i : i + chunk]))).sum(0) for i in range(0, n, chunk)
    ) + np.zeros(x.shape[1])


def row_log_jacobians(x, scale) -> np.ndarray:
    """:func:`log_jacobian` of each row of ``x`` (n, D) on its observed cells: ``-sum_d log scale_d``
    over the non-NaN cells, shape (n,)."""
    return -((~np.isnan(np.asarray(x))) @ np.log(scale))


def has_missing(x) -> bool:
    """Whether host data ``x`` (any float array or memmap) hold a NaN cell (checked chunk by chunk)."""
    n = x.shape[0]
    chunk = _prior.HOST_CHUNK
    return any(np.isnan(np.asarray(x[i : i + chunk])).any() for i in range(0, n, chunk))
