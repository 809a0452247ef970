"""The per-feature affine standardisation every runner works in.

The model is equivariant under ``z = (x - shift) / scale`` when the prior is mapped along
(:meth:`bayesgmm.core.prior.ResolvedPrior.affine`): parameters map exactly and log densities change
by a constant (:func:`log_jacobian`). Running EM, NUTS and VI on standardised data keeps float32
sound and makes step sizes and mass matrices comparable across data sets. For ``spherical``
covariances the scale is common to all features so that the structure is preserved.
"""

from __future__ import annotations

import jax
import numpy as np

from ..core.params import GMMParams
from ..core import prior as _prior
from ..core.prior import weighted_moments

__all__ = ["standardisation", "standardize_rows", "to_std", "from_std", "log_jacobian", "to_host"]


def standardisation(x, w, covariance_type, reg_covar=None):
    """``(shift, scale)``, each of shape (D,): the weighted mean and standard deviation.

    With ``reg_covar`` (maximum likelihood) the scale is ``sqrt(std**2 + reg_covar)``, so that
    ``reg_covar`` in standardised units is at most 1 whatever the data's scale (float32 cannot
    hold ``reg_covar / std**2`` for data of scale 1e-20).
    """
    mean, std = weighted_moments(x, w)
    if reg_covar is not None:
        std = np.sqrt(std**2 + float(reg_covar))
    std = np.where(std > 0, std, 1.0)
    if covariance_type == "spherical":
        std = np.full_like(std, np.sqrt(np.mean(std**2)))
    return mean, std


def to_host(params: GMMParams) -> GMMParams:
    """Parameters as numpy float64 arrays (host side: data units never pass through float32)."""
    return jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)


def standardize_rows(x, shift, scale, dtype, n_rows=None):
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


def to_std(params: GMMParams, shift, scale) -> GMMParams:
    """Parameters in data units -> standardised units (any leading batch axes)."""
    ct = params.covariance_type
    s = scale if ct != "spherical" else scale[0]
    return params.replace(means=(params.means - shift) / scale, scales=params.scales / s)


def from_std(params: GMMParams, shift, scale) -> GMMParams:
    """Standardised units -> data units (any leading batch axes)."""
    ct = params.covariance_type
    s = scale if ct != "spherical" else scale[0]
    return params.replace(means=params.means * scale + shift, scales=params.scales * s)


def log_jacobian(params: GMMParams, scale, total_weight, with_prior: bool) -> float:
    """``log p_x - log p_z`` for the standardisation (a constant in the parameters)."""
    ct = params.covariance_type
    k = params.n_components
    logs = np.log(scale)
    out = -total_weight * logs.sum()
    if with_prior:
        out -= k * logs.sum()  # means
        if ct in ("full", "diag"):
            out -= k * logs.sum()
        elif ct == "tied":
            out -= logs.sum()
        else:
            out -= k * logs[0]
    return float(out)
