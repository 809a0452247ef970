"""The per-feature affine standardisation every runner works in.

The model is equivariant under ``z = (x - shift) / scale`` when the prior is mapped along
(:meth:`bayesgmm.core.prior.ResolvedPrior.affine`): parameters map exactly and log densities change
by a constant (:func:`log_jacobian`). Running EM, NUTS and VI on standardised data keeps float32
sound and makes step sizes and mass matrices comparable across data sets. For ``spherical``
covariances the scale is common to all features so that the structure is preserved.
"""

from __future__ import annotations

import numpy as np

from ..core.params import GMMParams
from ..core.prior import weighted_moments

__all__ = ["standardisation", "to_std", "from_std", "log_jacobian"]


def standardisation(x, w, covariance_type):
    """``(shift, scale)``, each of shape (D,): the weighted mean and standard deviation."""
    mean, std = weighted_moments(x, w)
    std = np.where(std > 0, std, 1.0)
    if covariance_type == "spherical":
        std = np.full_like(std, np.sqrt(np.mean(std**2)))
    return mean, std


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
