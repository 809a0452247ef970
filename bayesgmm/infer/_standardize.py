"""Transitional: the old names of the standardisation, for :mod:`bayesgmm.infer.sampling` only.

The standardisation lives in :mod:`bayesgmm.core.units` (``standardisation``, ``standardise_rows``,
``log_jacobian``) and on :class:`~bayesgmm.core.params.GMMParams` (``standardise``,
``unstandardise``, ``to_numpy``). ``infer/sampling.py`` is being split in parallel and still
imports the names below; once it calls the core directly this module is deleted. Nothing else
may import it.
"""

from __future__ import annotations

from ..core import units as _units
from ..core.params import GMMParams

__all__ = ["standardisation", "to_std", "from_std", "log_jacobian"]


def standardisation(x, w, covariance_type, reg_covar=None):
    """:func:`bayesgmm.core.units.standardisation` with the old argument order."""
    return _units.standardisation(x, covariance_type, w, reg_covar=reg_covar)


def to_std(params: GMMParams, shift, scale) -> GMMParams:
    """:meth:`GMMParams.standardise`."""
    return params.standardise(shift, scale)


def from_std(params: GMMParams, shift, scale) -> GMMParams:
    """:meth:`GMMParams.unstandardise`."""
    return params.unstandardise(shift, scale)


def log_jacobian(params: GMMParams, scale, total_weight, with_prior: bool) -> float:
    """:func:`bayesgmm.core.units.log_jacobian` with the old arguments."""
    return _units.log_jacobian(scale, total_weight, params if with_prior else None)
