"""Input validation on the host: clear errors that name the argument and the fix."""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.utils.validation import check_random_state, validate_data

from .core.params import COVARIANCE_TYPES
from .core.prior import Prior

__all__ = ["check_data", "check_sample_weight", "check_finite", "check_params", "resolve_prior_arg", "seed_from"]


def check_finite(X, name="X"):
    """Raise a ValueError naming where NaN or infinite values are (rows and columns)."""
    bad = ~np.isfinite(X)
    if not bad.any():
        return
    n_nan = int(np.isnan(X).sum())
    n_inf = int(np.isinf(X).sum())
    rows, cols = np.nonzero(bad)
    kinds = []
    if n_nan:
        kinds.append(f"{n_nan} NaN value(s)")
    if n_inf:
        kinds.append(f"{n_inf} infinite value(s) (infinity)")
    first = ", ".join(f"(row {r}, column {c})" for r, c in list(zip(rows, cols))[:3])
    raise ValueError(
        f"Input {name} contains {' and '.join(kinds)}, first at {first}. Gaussian mixtures need "
        f"finite data: drop or impute those rows first, e.g. {name}[np.isfinite({name}).all(axis=1)]."
    )


def check_data(estimator, X, *, reset: bool, min_samples: int = 1):
    """Validate ``X`` with scikit-learn's conventions and return a float ndarray (n, D).

    Sets ``n_features_in_`` / ``feature_names_in_`` when ``reset``; checks the feature count
    otherwise.
    """
    if isinstance(X, np.ndarray) and X.dtype.kind in "SU":
        raise TypeError(f"X must hold numbers, got an array of dtype {X.dtype}; convert it first.")
    if isinstance(X, np.ndarray) and X.ndim == 1:
        raise ValueError(
            "Expected 2D array, got 1D array instead: X has shape "
            f"{X.shape}. Reshape your data either using X.reshape(-1, 1) if your data has a single "
            "feature or X.reshape(1, -1) if it contains a single sample."
        )
    X = validate_data(
        estimator,
        X,
        reset=reset,
        dtype=[np.float64, np.float32],
        ensure_all_finite=False,
        ensure_min_samples=min_samples,
    )
    check_finite(X)
    return np.ascontiguousarray(X)


def check_sample_weight(sample_weight, n_samples: int):
    """Validate ``sample_weight``: shape (n_samples,), finite, non-negative, positive total."""
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight)
    if w.dtype.kind not in "biuf":
        raise TypeError(f"sample_weight must hold numbers, got dtype {w.dtype}.")
    w = w.astype(np.float64)
    if w.ndim == 0:
        w = np.full(n_samples, float(w))
    if w.shape != (n_samples,):
        raise ValueError(
            f"sample_weight has shape {w.shape}; expected ({n_samples},), one weight per row of X."
        )
    if not np.all(np.isfinite(w)):
        raise ValueError("sample_weight contains NaN or infinite values; weights must be finite.")
    if np.any(w < 0):
        raise ValueError(
            f"sample_weight has {int((w < 0).sum())} negative value(s); weights must be >= 0 "
            "(use 0 to leave a row out)."
        )
    if w.sum() <= 0:
        raise ValueError(
            "All sample weights are zero (sample_weight sums to 0); at least one row needs a "
            "positive weight."
        )
    return w


def _check_int(name, value, low):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")


def _check_number(name, value, low, strict=False):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}.")
    if value < low or (strict and value == low):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {low}, got {value!r}.")


def check_params(est, init_methods):
    """Validate the estimator's constructor arguments at fit time."""
    _check_int("n_components", est.n_components, 1)
    if est.covariance_type not in COVARIANCE_TYPES:
        raise ValueError(
            f"covariance_type={est.covariance_type!r} is not supported; use one of "
            f"{', '.join(repr(c) for c in COVARIANCE_TYPES)}."
        )
    _check_number("tol", est.tol, 0.0)
    _check_number("reg_covar", est.reg_covar, 0.0)
    _check_int("max_iter", est.max_iter, 1)
    _check_int("n_init", est.n_init, 1)
    if est.init_params not in init_methods:
        raise ValueError(
            f"init_params={est.init_params!r} is not supported; use one of "
            f"{', '.join(repr(m) for m in init_methods)}."
        )
    resolve_prior_arg(est.prior)


def resolve_prior_arg(prior):
    """``"default"`` -> ``Prior()``, ``None`` -> None (maximum likelihood), a Prior -> itself."""
    if prior is None:
        return None
    if isinstance(prior, str):
        if prior == "default":
            return Prior()
        raise ValueError(
            f"prior={prior!r} is not supported; use 'default', None (maximum likelihood) or a "
            "bayesgmm.Prior(...)."
        )
    if isinstance(prior, Prior):
        return prior
    if isinstance(prior, dict):
        return Prior(**prior)
    raise TypeError(
        f"prior must be 'default', None or a bayesgmm.Prior, got {type(prior).__name__}."
    )


def seed_from(random_state) -> int:
    """An int seed from ``random_state`` (None, int or RandomState), scikit-learn style."""
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
