"""Covariances in scikit-learn's layouts: shapes, full matrices, parameter counts, units.

scikit-learn stores the covariances of a mixture in one of four layouts, by ``covariance_type``:

============  =========================  ===============================================
type          ``covariances_``           meaning
============  =========================  ===============================================
full          (K, D, D)                  one matrix per component
tied          (D, D)                     one matrix shared by every component
diag          (K, D)                     per component, the variances of the features
spherical     (K,)                       per component, one variance for every feature
============  =========================  ===============================================

(``precisions_`` share them). This module is the one place that converts between them; it
works on bare arrays, so that code holding ``covariances_`` needs no :class:`GMMParams`, and
:class:`~bayesgmm.core.params.GMMParams` calls it for its own layout conversions
(:meth:`~bayesgmm.core.params.GMMParams.full_covariances`,
:meth:`~bayesgmm.core.params.GMMParams.n_parameters`). Every function accepts extra leading
(batch) axes where it says so; numpy in gives numpy out, jax arrays give jax arrays.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "covariances_from_precisions",
    "covariances_shape",
    "full_covariances",
    "n_parameters",
    "standardise_covariances",
]


def _xp(a):
    return jnp if isinstance(a, jax.Array) else np


def covariances_shape(covariance_type: str, n_components: int, n_features: int) -> tuple:
    """The shape of ``covariances_`` (and ``precisions_``) for a covariance type.

    Returns
    -------
    tuple
        ``(K, D, D)`` full, ``(D, D)`` tied, ``(K, D)`` diag, ``(K,)`` spherical.
    """
    k, d = int(n_components), int(n_features)
    return {"full": (k, d, d), "tied": (d, d), "diag": (k, d), "spherical": (k,)}[covariance_type]


def n_parameters(covariance_type: str, n_components: int, n_features: int) -> int:
    """Number of free parameters of a mixture: ``K - 1`` weights, ``K D`` means, the covariances.

    The covariances count ``K D (D + 1) / 2`` (full), ``D (D + 1) / 2`` (tied), ``K D`` (diag)
    or ``K`` (spherical) -- scikit-learn's ``_n_parameters``, the penalty of BIC and AIC.
    """
    k, d = n_components, n_features
    cov = {
        "full": k * d * (d + 1) / 2.0,
        "tied": d * (d + 1) / 2.0,
        "diag": k * d,
        "spherical": k,
    }[covariance_type]
    return int(cov + k * d + k - 1)


def full_covariances(covariances, covariance_type: str, n_components: int, n_features: int):
    """Covariances in the layout of ``covariance_type`` -> full matrices of shape (..., K, D, D).

    ``tied`` is repeated for every component, ``diag`` and ``spherical`` variances are put on
    the diagonals (zeros elsewhere). The dtype is kept.

    Parameters
    ----------
    covariances : array of shape (..., K, D, D) full, (..., D, D) tied, (..., K, D) diag,
        (..., K) spherical; the leading ``...`` are batch axes (e.g. ``(chain, draw)``)
    covariance_type : {"full", "tied", "diag", "spherical"}
    n_components, n_features : int

    Returns
    -------
    array of shape (..., K, D, D)
        numpy for numpy (or array-like) input, jax for jax input. For ``full``, ``covariances``
        itself.
    """
    xp = _xp(covariances)
    c = xp.asarray(covariances)
    k, d = int(n_components), int(n_features)
    if covariance_type == "full":
        return c
    if covariance_type == "tied":
        full = xp.broadcast_to(c[..., None, :, :], c.shape[:-2] + (k, d, d))
        return full.copy() if xp is np else full
    # diag (..., K, D), spherical (..., K): the variances on the diagonals, (..., K, D)
    var = c if covariance_type == "diag" else xp.broadcast_to(c[..., None], c.shape + (d,))
    batch = var.shape[:-1]
    idx = np.arange(d)
    if xp is np:
        out = np.zeros(batch + (d, d), c.dtype)
        out[..., idx, idx] = var
        return out
    return jnp.zeros(batch + (d, d), c.dtype).at[..., idx, idx].set(var)


def covariances_from_precisions(precisions, covariance_type: str) -> np.ndarray:
    """Precisions in scikit-learn's layout -> covariances in the same layout (numpy float64).

    The inverse matrices (full, tied) or the reciprocals (diag, spherical).
    """
    p = np.asarray(precisions, np.float64)
    if covariance_type in ("full", "tied"):
        return np.linalg.inv(p)
    return 1.0 / p


def standardise_covariances(covariances, covariance_type: str, scale) -> np.ndarray:
    """Covariances of ``x`` -> covariances of ``(x - shift) / scale``, in the same layout.

    Parameters
    ----------
    covariances : array in scikit-learn's layout (no batch axes)
    covariance_type : {"full", "tied", "diag", "spherical"}
    scale : array of shape (D,)
        Per-feature scales; for ``spherical`` they are all equal (see
        :func:`bayesgmm.core.units.standardisation`) and ``scale[0]`` is used.

    Returns
    -------
    ndarray, float64, the layout of ``covariances``
    """
    cov = np.asarray(covariances, np.float64)
    if covariance_type in ("full", "tied"):
        return cov / np.outer(scale, scale)
    if covariance_type == "diag":
        return cov / scale**2
    return cov / scale[0] ** 2
