"""BIC, AIC and ICL: the one home of the information criteria of a fitted mixture.

:meth:`bayesgmm.GaussianMixture.bic` / ``aic`` / ``icl``, :func:`bayesgmm.selection.icl` and the
table of :func:`bayesgmm.select` all compute them here. Sign conventions, **lower is better**
(scikit-learn's; mclust reports the negatives and picks the maximum):

* ``bic = -2 log p(X | theta) + n_parameters log(n_samples)``,
* ``aic = -2 log p(X | theta) + 2 n_parameters``,
* ``icl = bic + 2 * entropy``, ``entropy = -sum_n sum_k r_nk log r_nk`` of the responsibilities at
  ``theta`` (Biernacki, Celeux & Govaert 2000; McLachlan & Peel 2000, "ICL-BIC").

``n_parameters`` is :attr:`bayesgmm.core.params.GMMParams.n_parameters`
(:func:`bayesgmm.core.layouts.n_parameters`, re-exported here).
"""

from __future__ import annotations

import numpy as np

from .core.layouts import n_parameters

__all__ = ["aic", "assignment_entropy", "bic", "icl", "n_parameters"]


def assignment_entropy(resp) -> float:
    """Total entropy ``-sum_n sum_k r_nk log r_nk`` of responsibilities ``resp`` (n, K) (``0 log 0 = 0``)."""
    r = np.asarray(resp, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(r > 0, r * np.log(np.where(r > 0, r, 1.0)), 0.0)
    return float(-np.sum(t))


def bic(log_likelihood: float, n_parameters: int, n_samples: int) -> float:
    """``-2 log_likelihood + n_parameters log(n_samples)`` (lower is better).

    Parameters
    ----------
    log_likelihood : float
        ``sum_n log p(x_n | theta)`` at the fitted parameters.
    n_parameters : int
        Free parameters (:func:`n_parameters`).
    n_samples : int
    """
    return float(-2.0 * log_likelihood + n_parameters * np.log(n_samples))


def aic(log_likelihood: float, n_parameters: int) -> float:
    """``-2 log_likelihood + 2 n_parameters`` (lower is better)."""
    return float(-2.0 * log_likelihood + 2.0 * n_parameters)


def icl(bic: float, resp) -> float:
    """``bic + 2 * assignment_entropy(resp)``: BIC penalised for overlapping components.

    Parameters
    ----------
    bic : float
        The BIC at the fitted parameters (:func:`bic`).
    resp : array of shape (n_samples, n_components)
        The responsibilities (``predict_proba``) at the same parameters.
    """
    return float(bic + 2.0 * assignment_entropy(resp))
