"""Input validation on the host: clear errors that name the argument and the fix."""

from __future__ import annotations

import numbers

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import check_random_state, validate_data

from .core.params import COVARIANCE_TYPES
from .core.prior import HOST_CHUNK, Prior, weighted_moments

__all__ = [
    "check_data",
    "check_sample_weight",
    "check_finite",
    "check_missing_option",
    "check_params",
    "check_scales",
    "check_rank",
    "resolve_prior_arg",
    "seed_from",
]

#: Feature standard deviations outside ``[_MIN_STD, _MAX_STD]`` are refused: their variances
#: (the covariances reported in data units) would leave float64's range (about 1e-308 .. 1e308).
_MIN_STD = 1e-150
_MAX_STD = 1e150
#: Smallest eigenvalue of the features' correlation matrix below which they count as collinear.
_COLLINEAR_EIG = 1e-10


def check_finite(X, name="X", *, allow_nan: bool = False):
    """Raise a ValueError naming where NaN or infinite values are (rows and columns).

    ``allow_nan``: NaN marks a missing cell (``missing="marginalize"``); infinite values and rows
    with every cell missing are still refused.
    """
    if allow_nan:
        _check_missing(X, name)
        return
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
    hint = (
        " If NaN marks missing cells, GaussianMixture(missing='marginalize') integrates them out "
        "(and impute() fills them)."
        if n_nan and not n_inf
        else ""
    )
    raise ValueError(
        f"Input {name} contains {' and '.join(kinds)}, first at {first}. Gaussian mixtures need "
        f"finite data: drop or impute those rows first, e.g. {name}[np.isfinite({name}).all(axis=1)]."
        + hint
    )


def _check_missing(X, name):
    inf = np.isinf(X)
    if inf.any():
        rows, cols = np.nonzero(inf)
        first = ", ".join(f"(row {r}, column {c})" for r, c in list(zip(rows, cols))[:3])
        raise ValueError(
            f"Input {name} contains {int(inf.sum())} infinite value(s), first at {first}. NaN marks a "
            "missing cell (missing='marginalize'), but infinity is not a value a Gaussian can "
            f"explain: replace it by NaN (a missing cell) or drop those rows first."
        )
    empty = np.flatnonzero(np.isnan(X).all(axis=1)) if X.shape[1] else np.zeros(0, int)
    if empty.size:
        shown = ", ".join(str(r) for r in empty[:10]) + (", ..." if empty.size > 10 else "")
        raise ValueError(
            f"Input {name} has {empty.size} row(s) with every cell missing (NaN): rows {shown}. Such a "
            "row carries no information about the mixture; drop it first, e.g. "
            f"{name}[~np.isnan({name}).all(axis=1)]."
        )


def check_missing_option(missing):
    """The ``missing`` option: "error" or "marginalize"."""
    if not isinstance(missing, str) or missing not in MISSING_OPTIONS:
        raise ValueError(
            f"missing={missing!r} is not supported; use 'error' (NaN is refused) or 'marginalize' "
            "(NaN marks a missing cell, integrated out of the likelihood under missing at random)."
        )


#: The values of the estimator's ``missing`` option.
MISSING_OPTIONS = ("error", "marginalize")


def check_data(estimator, X, *, reset: bool, min_samples: int = 1):
    """Validate ``X`` with scikit-learn's conventions and return a float ndarray (n, D).

    Sets ``n_features_in_`` / ``feature_names_in_`` when ``reset``; checks the feature count
    otherwise.
    """
    _check_dataframe_columns(X)
    if (
        not isinstance(X, np.ndarray)
        and not hasattr(X, "dtypes")
        and not hasattr(X, "__array__")
        and not sp.issparse(X)  # scikit-learn's own error: sparse input is not supported
    ):
        try:  # lists of lists, tuples: decide the dtype here so that the errors below apply
            X = np.asarray(X)
        except (ValueError, TypeError) as exc:
            raise ValueError(
                f"X must be a rectangular array of numbers of shape (n_samples, n_features); "
                f"converting it failed ({exc}). Check that every row has the same length."
            ) from None
    if isinstance(X, np.ndarray):
        if X.dtype.kind in "SUMmV":
            raise TypeError(
                f"X must hold numbers, got an array of dtype {X.dtype}; convert it first, e.g. "
                "X.astype(float) or pandas.to_numeric for text holding numbers."
            )
        if X.dtype.kind == "c":  # a ValueError with scikit-learn's wording (its checks match it)
            raise ValueError(
                f"Complex data not supported: X must hold real numbers, got dtype {X.dtype}; "
                "pass X.real or np.abs(X) if that is what you mean."
            )
        if X.dtype.kind == "O":
            try:
                X = X.astype(np.float64)
            except (ValueError, TypeError) as exc:
                raise TypeError(
                    f"X must hold numbers, got an object array with non-numeric entries ({exc}); "
                    "convert it first (e.g. X.astype(float)) or drop the non-numeric columns."
                ) from None
    if isinstance(X, np.ndarray) and X.ndim == 1:
        raise ValueError(
            "Expected 2D array, got 1D array instead: X has shape "
            f"{X.shape}. Reshape your data either using X.reshape(-1, 1) if your data has a single "
            "feature or X.reshape(1, -1) if it contains a single sample."
        )
    if isinstance(X, numbers.Number) or getattr(X, "ndim", None) == 0:
        raise ValueError(
            f"Expected 2D array, got scalar array instead: X = {X!r}. Pass X as a 2-D array of "
            "shape (n_samples, n_features)."
        )
    try:
        X = validate_data(
            estimator,
            X,
            reset=reset,
            dtype=[np.float64, np.float32],
            ensure_all_finite=False,
            ensure_min_samples=min_samples,
        )
    except ValueError as exc:  # scikit-learn's text (its checks match it), plus what to do
        msg = str(exc)
        if not reset and "feature" in msg:
            fix = (
                f" Pass X with the {estimator.n_features_in_} features (columns, same names and "
                "order) the estimator was fitted on."
            )
        else:
            fix = (
                " Pass X as a 2-D array of numbers of shape (n_samples, n_features) with at least "
                f"{min_samples} row(s) and one column."
            )
        raise ValueError(msg + fix) from None
    check_finite(X, allow_nan=getattr(estimator, "missing", "error") == "marginalize")
    return np.ascontiguousarray(X)


def _check_dataframe_columns(X):
    """A TypeError naming the non-numeric columns of a pandas DataFrame (before any conversion)."""
    dtypes = getattr(X, "dtypes", None)
    if dtypes is None or not hasattr(X, "columns") or not hasattr(dtypes, "items"):
        return
    bad = []
    for name, dt in dtypes.items():
        kind = getattr(dt, "kind", "O")
        if kind in "biuf":
            continue
        if kind == "O" and str(dt) != "category":
            try:  # an object column may still hold numbers only
                np.asarray(X[name], dtype=np.float64)
                continue
            except (ValueError, TypeError):
                pass
        bad.append((name, str(dt)))
    if bad:
        listed = ", ".join(f"{n!r} ({d})" for n, d in bad)
        names = [n for n, _ in bad]
        raise TypeError(
            f"X has non-numeric column(s) {listed}; a Gaussian mixture needs numbers. Drop them "
            f"(X.drop(columns={names!r})), select the numeric ones (X.select_dtypes('number')) or "
            "encode them as numbers first."
        )


def check_scales(X, sample_weight=None, *, with_prior: bool):
    """Refuse features whose spread float64 cannot represent as a variance.

    Standard deviations above ``1e150`` (either mode) or, with a prior, below ``1e-150`` (but not
    zero) give covariances outside float64's range; the error says to rescale ``X``.
    """
    with np.errstate(all="ignore"):
        _, std = weighted_moments(X, sample_weight)
    bad = ~np.isfinite(std) | (std > _MAX_STD) | (with_prior & (std > 0) & (std < _MIN_STD))
    if bad.any():
        cols = np.flatnonzero(bad).tolist()
        shown = ", ".join(f"{std[c]:.3g}" for c in cols[:5])
        raise ValueError(
            f"X has feature(s) {cols} with standard deviation(s) {shown}, outside the range whose "
            f"variances float64 can hold ({_MIN_STD:g} to {_MAX_STD:g}). Rescale X first, e.g. "
            "X / X.std(axis=0), and map the fitted means and covariances back."
        )


def check_rank(X, sample_weight=None, *, covariance_type: str, with_prior: bool):
    """Refuse linearly dependent (collinear) features for full/tied covariances under a prior.

    Then every covariance can shrink onto the subspace the data span. Without the prior's
    covariance floor (``Prior(covariance_floor=0)``) the log posterior grows without bound there
    (the LKJ density vanishes only polynomially), so no MAP exists; with it the MAP exists but its
    variance across the subspace is about ``covariance_floor * var / n_k`` (measured: 2 clusters
    of 15000 points, 3 features of which 2 collinear, default floor: float32 EM fails; 150 points
    each: fits), too thin for float32 on large data. So the data are refused either way.
    """
    if not with_prior or covariance_type not in ("full", "tied"):
        return
    X = np.asarray(X)
    n, d = X.shape
    if d < 2:
        return
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, np.float64)
    mean, std = weighted_moments(X, w)
    keep = np.flatnonzero(std > 0)  # constant features have their own error (the prior's scales)
    if keep.size < 2:
        return
    # the weighted correlation matrix, accumulated in float64 over chunks of rows (a large float32
    # X is never copied whole to float64)
    corr = np.zeros((keep.size, keep.size))
    for i in range(0, n, HOST_CHUNK):
        j = min(i + HOST_CHUNK, n)
        z = (np.asarray(X[i:j, keep], np.float64) - mean[keep]) / std[keep]
        z = np.where(np.isnan(z), 0.0, z)  # a missing cell (missing="marginalize") at the mean
        corr += (z * (w[i:j] / w.sum())[:, None]).T @ z
    eigval, eigvec = np.linalg.eigh(corr)
    if eigval[0] >= _COLLINEAR_EIG * max(eigval[-1], 1.0):
        return
    v = np.abs(eigvec[:, 0])
    cols = keep[v > 0.1 * v.max()].tolist()
    rank_hint = (
        f" (only {n} samples for {d} features)" if np.count_nonzero(w) <= d else ""
    )
    raise ValueError(
        f"X has linearly dependent (collinear) features: columns {cols} are an exact linear "
        f"combination of each other{rank_hint}. Under a prior with covariance_type="
        f"{covariance_type!r} a covariance then shrinks onto the data's subspace, down to the "
        "prior's covariance floor (too thin for float32 on large data) or, without it, without "
        "bound (no MAP exists). Drop redundant columns (or reduce them with "
        "PCA), use covariance_type='diag' or 'spherical', or fit by maximum likelihood "
        "(prior=None) with reg_covar."
    )


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
    check_missing_option(getattr(est, "missing", "error"))


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
