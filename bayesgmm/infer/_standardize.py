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
from ..core.prior import weighted_moments

__all__ = ["standardisation", "to_std", "from_std", "log_jacobian", "to_host"]


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
