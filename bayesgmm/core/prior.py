"""The one definition of the prior, used by MAP-EM, NUTS and VI.

``Prior`` is the user-facing immutable spec (values in data units, ``None`` meaning a data-derived
default); ``ResolvedPrior`` is the pytree of arrays the jitted code sees (all values traced, only the
scale family and ``ordered_means`` static). ``log_prior`` is exactly the log density that the NumPyro
model assigns to its sample sites

* ``weights   ~ Dirichlet(weight_concentration)``
* ``means     ~ Normal(mean_loc, mean_scale)`` independently per component and feature
* ``scales    ~ HalfNormal(scale_scale) | HalfCauchy(scale_scale) | LogNormal(log(scale_scale), 1)``
* ``corr_chol ~ LKJCholesky(n_features, lkj_concentration)`` (full: one per component; tied: one)
* times the covariance factor ``exp(-tr(Psi Sigma_k^{-1}) / 2)`` on every component covariance
  (tied: once), ``Psi = diag(covariance_floor)`` (see :func:`covariance_floor_log_density`)

in those natural parameters (no unconstrained-space Jacobian).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln, multigammaln

from . import linalg
from .params import GMMParams, to_device

__all__ = [
    "SCALE_PRIORS",
    "LOG_NORMAL_SIGMA",
    "Prior",
    "ResolvedPrior",
    "resolve_prior",
    "log_prior",
    "covariance_floor_log_density",
    "scale_log_density",
    "lkj_cholesky_log_density",
]

SCALE_PRIORS = ("half_normal", "half_cauchy", "log_normal")
#: Standard deviation of log(scale) under ``scale_prior="log_normal"`` (a factor of e either way).
LOG_NORMAL_SIGMA = 1.0
#: Default ``mean_scale`` as a multiple of each feature's standard deviation.
MEAN_SCALE_FACTOR = 2.0
#: Default ``covariance_floor``, relative to each feature's variance.
COVARIANCE_FLOOR = 1e-4


@dataclasses.dataclass(frozen=True)
class Prior:
    """Prior of the Gaussian mixture, shared by MAP-EM, NUTS and VI.

    All values are in data units. A ``None`` location/scale field takes a weakly informative,
    data-derived default computed from the (weighted) training data, so that fitting ``c * X``
    gives ``c *`` the means and covariances scale by ``c**2`` (scale equivariance).

    Parameters
    ----------
    weight_concentration : float or array-like of shape (n_components,), default=1.0
        Dirichlet concentration ``alpha`` of the weights. ``1`` is uniform on the simplex (the MAP
        weights equal the maximum-likelihood ones); ``> 1`` pulls weights towards equality;
        ``< 1`` is a sparse ("overfitted mixture") prior: MAP-EM empties a component whose
        expected count falls below ``1 - alpha`` (its weight becomes exactly 0 and it is reported
        as empty); it does not by itself merge a cluster shared by two components.
    mean_loc : float or array-like of shape (n_features,), optional
        Prior mean of every component mean. Default: the weighted mean of ``X``.
    mean_scale : float or array-like of shape (n_features,), optional
        Prior standard deviation of each mean coordinate. Default: ``2 *`` the weighted standard
        deviation of each feature of ``X``.
    scale_prior : {"log_normal", "half_normal", "half_cauchy"}, default="log_normal"
        Family of the prior on each component standard deviation. ``"log_normal"`` (location
        ``log(scale_scale)``, log-sd ``1``) vanishes at zero, so the MAP exists even when a
        component could collapse onto a single point or onto tied values; ``"half_normal"`` and
        ``"half_cauchy"`` (scale ``scale_scale``) are the usual NUTS choices but do not rule out a
        degenerate MAP.
    scale_scale : float or array-like, optional
        Scale of the scale prior, per feature ``(n_features,)`` (full, tied, diag) or a scalar
        (spherical). Default: the weighted standard deviation of each feature (spherical: the root
        mean of the feature variances).
    lkj_concentration : float, default=2.0
        LKJ ``eta`` of the correlation prior (full and tied). ``1`` is uniform over correlation
        matrices; larger values favour weaker correlations.
    ordered_means : bool, default=False
        Restrict the prior to components ordered by the mean of the first feature (an
        identifiability constraint). The restricted density is left unnormalised (it differs from
        the normalised one by ``log(n_components!)``). NUTS and VI sample it as the unordered
        model and sort each draw's components by their first-feature mean, which is exactly the
        ordered posterior when the prior is exchangeable (one ``weight_concentration`` for all
        components); a constrained sampler cannot cross between the pieces the ordering cuts the
        posterior into when two first-feature means are close (bench/VALIDATION.md).
    covariance_floor : float, default=1e-4
        Strength ``c`` of an inverse-Wishart-type factor ``exp(-tr(Psi Sigma_k^{-1}) / 2)`` on every
        component covariance (tied: on the one shared covariance), with ``Psi = c * diag(var(X))``
        (each feature's weighted variance; a constant feature gets 0). It is what makes the MAP
        exist for any data: as a covariance becomes singular in any direction the factor vanishes
        faster than any power of its determinant, so a component can no longer collapse onto
        fewer points than features (``n_k < n_features``), duplicated points or tied values --
        each MAP covariance keeps every eigenvalue above about ``Psi / (n_k + 2)``. In MAP-EM it
        adds ``Psi`` to each component's scatter matrix (mclust's conjugate regularisation,
        Fraley & Raftery 2007, here beside the LKJ correlation prior); the likelihood is
        unchanged. ``1e-4`` moves fits whose components hold many points by about
        ``1e-4 / n_k`` of a variance; raise it (e.g. ``1e-2``) for a stronger pull away from
        near-singular components, and ``0`` removes the factor (the model before it was added, in
        which a component with fewer points than features has no MAP). The factor is part of the
        density that NUTS and VI sample as well; prior *predictive* draws
        (``gmm_model(x=None)``) ignore it (a factor ``<= 1``, about 1 away from singular
        covariances).

    Examples
    --------
    >>> from bayesgmm import Prior
    >>> Prior(weight_concentration=0.5, scale_prior="half_normal")  # doctest: +ELLIPSIS
    Prior(weight_concentration=0.5, ..., scale_prior='half_normal', ...)
    """

    weight_concentration: Any = 1.0
    mean_loc: Any = None
    mean_scale: Any = None
    scale_prior: str = "log_normal"
    scale_scale: Any = None
    lkj_concentration: Any = 2.0
    ordered_means: bool = False
    covariance_floor: Any = COVARIANCE_FLOOR

    def __post_init__(self):
        if self.scale_prior not in SCALE_PRIORS:
            raise ValueError(
                f"Prior(scale_prior={self.scale_prior!r}) is not supported; use one of "
                f"{', '.join(repr(s) for s in SCALE_PRIORS)}."
            )
        _check_positive("weight_concentration", self.weight_concentration)
        _check_positive("mean_scale", self.mean_scale)
        _check_positive("scale_scale", self.scale_scale)
        _check_positive("lkj_concentration", self.lkj_concentration)
        if self.mean_loc is not None:
            loc = np.asarray(self.mean_loc, dtype=float)
            if not np.all(np.isfinite(loc)):
                raise ValueError("Prior(mean_loc=...) must be finite.")
        if not isinstance(self.ordered_means, (bool, np.bool_)):
            raise TypeError(f"Prior(ordered_means=...) must be a bool, got {self.ordered_means!r}.")
        floor = self.covariance_floor
        if isinstance(floor, (bool, np.bool_)) or not isinstance(floor, (int, float, np.integer, np.floating)):
            raise TypeError(
                f"Prior(covariance_floor=...) must be a number (a fraction of each feature's "
                f"variance), got {floor!r}."
            )
        if not (np.isfinite(floor) and floor >= 0):
            raise ValueError(
                f"Prior(covariance_floor={floor!r}) must be finite and >= 0 (0 turns the factor off)."
            )


def _check_positive(name, value):
    if value is None:
        return
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"Prior({name}=...) must be a number or an array of numbers, got {value!r}.")
    if arr.ndim > 1:
        raise ValueError(f"Prior({name}=...) must be a scalar or a 1-D array, got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)) or not np.all(arr > 0):
        raise ValueError(f"Prior({name}={value!r}) must be finite and > 0.")


@dataclasses.dataclass(frozen=True)
class ResolvedPrior:
    """Prior with every value an array of the right shape (a pytree; values are traced).

    Attributes
    ----------
    weight_concentration : (K,)
    mean_loc, mean_scale : (D,)
    scale_scale : (D,) for full/tied/diag, () for spherical
    lkj_concentration : ()
    covariance_floor : (D,) or None
        The diagonal of ``Psi`` in the factor ``exp(-tr(Psi Sigma_k^{-1}) / 2)``, in the units of
        a variance: ``Prior.covariance_floor`` times each feature's variance. ``None`` (or zeros)
        leaves the factor out.
    scale_prior : str (static)
    ordered_means : bool (static)
    """

    weight_concentration: Any
    mean_loc: Any
    mean_scale: Any
    scale_scale: Any
    lkj_concentration: Any
    covariance_floor: Any = None
    scale_prior: str = "log_normal"
    ordered_means: bool = False

    def replace(self, **changes) -> "ResolvedPrior":
        return dataclasses.replace(self, **changes)

    def affine(self, shift, scale) -> "ResolvedPrior":
        """The same prior for data ``(x - shift) / scale`` (``scale`` per feature or scalar).

        numpy inputs on a host prior (``resolve_prior(..., dtype="host")``) stay numpy float64.
        """
        xp = np if isinstance(shift, np.ndarray) and isinstance(self.mean_loc, np.ndarray) else jnp
        shift = xp.asarray(shift)
        scale = xp.asarray(scale)
        scale_for_scales = scale if np.ndim(self.scale_scale) == scale.ndim else xp.mean(scale)
        floor = self.covariance_floor
        return self.replace(
            mean_loc=(self.mean_loc - shift) / scale,
            mean_scale=self.mean_scale / scale,
            scale_scale=self.scale_scale / scale_for_scales,
            covariance_floor=None if floor is None else floor / scale**2,
        )


jax.tree_util.register_dataclass(
    ResolvedPrior,
    data_fields=[
        "weight_concentration", "mean_loc", "mean_scale", "scale_scale", "lkj_concentration",
        "covariance_floor",
    ],
    meta_fields=["scale_prior", "ordered_means"],
)


#: Rows per chunk of the host-side passes over the data (float64 temporaries stay small).
HOST_CHUNK = 1 << 16


def weighted_moments(x, sample_weight=None):
    """Weighted column mean and standard deviation (numpy, float64) of ``x`` (n, D).

    Accumulated in float64 over chunks of ``HOST_CHUNK`` rows, so that a large float32 ``x`` (or a
    ``numpy.memmap``) is never copied whole to float64.
    """
    x = np.asarray(x)
    n = x.shape[0]
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    total = w.sum()
    if n == 0:
        return np.full(x.shape[1], np.nan), np.full(x.shape[1], np.nan)
    chunks = [slice(i, min(i + HOST_CHUNK, n)) for i in range(0, n, HOST_CHUNK)]
    if any(np.isnan(x[c]).any() for c in chunks):
        return _observed_moments(x, w, chunks)
    # about a data row and scaled to [-1, 1]: a constant feature gives exactly 0, and no square can
    # overflow (values of 1e150 lose nothing)
    ref = np.asarray(x[0], np.float64)

    def dev(c):
        return np.asarray(x[c], np.float64) - ref

    amax = np.max([np.max(np.abs(dev(c)), axis=0) for c in chunks], axis=0)
    amax = np.where(amax > 0, amax, 1.0)
    mean_u = sum((w[c, None] * (dev(c) / amax)).sum(0) for c in chunks) / total
    var_u = sum((w[c, None] * (dev(c) / amax - mean_u) ** 2).sum(0) for c in chunks) / total
    return ref + mean_u * amax, np.sqrt(var_u) * amax


def _observed_moments(x, w, chunks):
    """:func:`weighted_moments` of the observed (non-NaN) cells of each column (missing values)."""

    def parts(c):
        xc = np.asarray(x[c], np.float64)
        obs = ~np.isnan(xc)
        return np.where(obs, xc, 0.0), w[c, None] * obs

    d = x.shape[1]
    ref = np.zeros(d)
    for c in chunks:  # the first observed value of each column
        xc, wc = parts(c)
        first = np.argmax(wc > 0, axis=0)
        has = (wc > 0).any(axis=0) & (ref == 0)
        ref = np.where(has, xc[first, np.arange(d)], ref)
    amax = np.max([np.max(np.abs(parts(c)[0] - ref) * (parts(c)[1] > 0), axis=0) for c in chunks], axis=0)
    amax = np.where(amax > 0, amax, 1.0)
    tot = sum(parts(c)[1].sum(0) for c in chunks)
    tot_safe = np.where(tot > 0, tot, 1.0)
    mean_u = sum((parts(c)[1] * (parts(c)[0] - ref) / amax).sum(0) for c in chunks) / tot_safe
    var_u = sum((parts(c)[1] * ((parts(c)[0] - ref) / amax - mean_u) ** 2).sum(0) for c in chunks) / tot_safe
    mean, std = ref + mean_u * amax, np.sqrt(var_u) * amax
    return np.where(tot > 0, mean, np.nan), np.where(tot > 0, std, np.nan)


def resolve_prior(
    prior: Prior, x, n_components: int, covariance_type: str, sample_weight=None, dtype=None
) -> ResolvedPrior:
    """Fill the data-derived defaults of ``prior`` from ``x`` and broadcast every value.

    Parameters
    ----------
    prior : Prior
    x : array-like of shape (n_samples, n_features)
    n_components : int
    covariance_type : str
    sample_weight : array-like of shape (n_samples,), optional
    dtype : dtype of the result (default: float32 unless JAX x64 is enabled). ``"host"`` gives
        numpy float64 arrays whatever JAX's x64 mode, for host-side arithmetic in data units.

    Returns
    -------
    ResolvedPrior
    """
    if not isinstance(prior, Prior):
        raise TypeError(f"prior must be a bayesgmm.Prior, 'default' or None, got {prior!r}.")
    x = np.asarray(x)
    n_features = x.shape[1]
    mean, std = weighted_moments(x, sample_weight)
    needs_std = prior.mean_scale is None or prior.scale_scale is None
    if needs_std and np.any(std <= 0):
        bad = np.flatnonzero(std <= 0).tolist()
        raise ValueError(
            f"X has constant feature(s) {bad}: the default prior scales are derived from each "
            "feature's standard deviation. Drop constant features or pass explicit "
            "Prior(mean_scale=..., scale_scale=...)."
        )
    if isinstance(dtype, str) and dtype == "host":
        asarray = lambda a: np.asarray(a, np.float64)  # noqa: E731
    else:
        dtype = dtype or (jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)
        asarray = lambda a: to_device(a, dtype)  # noqa: E731

    def vec(name, value, default, length):
        arr = np.asarray(default if value is None else value, dtype=np.float64)
        if arr.ndim == 0:
            arr = np.full(length, float(arr))
        if arr.shape != (length,):
            raise ValueError(
                f"Prior({name}=...) has shape {arr.shape}; expected a scalar or shape ({length},)."
            )
        return asarray(arr)

    if covariance_type == "spherical":
        default_ss = np.sqrt(np.mean(std**2))
        ss = np.asarray(default_ss if prior.scale_scale is None else prior.scale_scale, np.float64)
        if ss.ndim != 0:
            raise ValueError(
                "Prior(scale_scale=...) must be a scalar for covariance_type='spherical' "
                f"(one scale per component), got shape {ss.shape}."
            )
        scale_scale = asarray(ss)
    else:
        scale_scale = vec("scale_scale", prior.scale_scale, std, n_features)
    return ResolvedPrior(
        weight_concentration=vec(
            "weight_concentration", prior.weight_concentration, 1.0, n_components
        ),
        mean_loc=vec("mean_loc", prior.mean_loc, mean, n_features),
        mean_scale=vec("mean_scale", prior.mean_scale, MEAN_SCALE_FACTOR * std, n_features),
        scale_scale=scale_scale,
        lkj_concentration=asarray(float(prior.lkj_concentration)),
        covariance_floor=asarray(float(prior.covariance_floor) * std**2),
        scale_prior=prior.scale_prior,
        ordered_means=bool(prior.ordered_means),
    )


# ---------------------------------------------------------------------------------------------
# log densities (pure JAX)
# ---------------------------------------------------------------------------------------------
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def scale_log_density(s, scale_scale, family: str):
    """Elementwise log density of a standard deviation ``s`` under the scale prior."""
    if family == "half_normal":
        z = s / scale_scale
        return math.log(2.0) - _HALF_LOG_2PI - jnp.log(scale_scale) - 0.5 * z * z
    if family == "half_cauchy":
        z = s / scale_scale
        return math.log(2.0 / math.pi) - jnp.log(scale_scale) - jnp.log1p(z * z)
    if family == "log_normal":
        sig = LOG_NORMAL_SIGMA
        logs = jnp.log(s)
        z = (logs - jnp.log(scale_scale)) / sig
        return -logs - math.log(sig) - _HALF_LOG_2PI - 0.5 * z * z
    raise ValueError(f"unknown scale prior {family!r}")


def lkj_cholesky_log_density(corr_chol, eta):
    """``LKJCholesky(D, eta).log_prob`` (NumPyro's density, normalised), batched over leading axes."""
    d = corr_chol.shape[-1]
    if d == 1:
        return jnp.zeros(corr_chol.shape[:-2], corr_chol.dtype)
    i = jnp.arange(1, d)
    order = 2.0 * eta - (3 - d) - i  # = 2 eta - 2 + D - (i + 1), rows i = 1..D-1 (0-based)
    diag = corr_chol[..., i, i]
    unnorm = jnp.sum(order * jnp.log(diag), axis=-1)
    dm1 = d - 1
    alpha = eta + 0.5 * dm1
    log_norm = multigammaln(alpha - 0.5, dm1) - gammaln(alpha) * dm1 + 0.5 * dm1 * math.log(math.pi)
    return unnorm - log_norm


def dirichlet_log_density(weights, alpha):
    """Dirichlet log density; components with weight exactly 0 (emptied by a sparse prior) are
    left out, i.e. the density is that of the Dirichlet on the remaining face of the simplex."""
    active = weights > 0
    a = jnp.where(active, alpha, 0.0)
    logw = jnp.log(jnp.where(active, weights, 1.0))
    return (
        jnp.sum(jnp.where(active, (alpha - 1.0) * logw, 0.0), axis=-1)
        + gammaln(jnp.sum(a, axis=-1))
        - jnp.sum(jnp.where(active, gammaln(alpha), 0.0), axis=-1)
    )


def normal_log_density(x, loc, scale):
    z = (x - loc) / scale
    return -_HALF_LOG_2PI - jnp.log(scale) - 0.5 * z * z


def covariance_floor_log_density(params: GMMParams, floor, mask=None):
    """``-tr(Psi Sigma_k^{-1}) / 2`` summed over the components (tied: the one covariance).

    The inverse-Wishart-type factor of the prior that keeps every covariance away from singular
    (see ``Prior.covariance_floor``); unnormalised (its normaliser is a constant).

    Parameters
    ----------
    params : GMMParams, possibly with leading batch axes
    floor : array of shape (D,) or None
        The diagonal of ``Psi``; ``None`` gives 0.
    mask : bool array of shape (n_components,), optional
        The components of the model (the others are padding, see :func:`log_prior`).

    Returns
    -------
    array of shape params.batch_shape
    """
    if floor is None:
        return jnp.zeros(params.batch_shape, params.means.dtype)
    ct = params.covariance_type
    on = floor > 0  # a zero entry contributes exactly 0, even against a singular covariance

    per_k = (lambda a: a) if mask is None else (lambda a: jnp.where(mask, a, 0.0))  # noqa: E731

    if ct in ("full", "tied"):
        # tr(Psi U^-T U^-1) = sum_{i,d} (U^-1)_{id}^2 psi_d, U the covariance's Cholesky factor
        m = linalg.inv_lower(params.cov_chol())  # no LAPACK in jitted code
        tr = jnp.sum(jnp.where(on, m * m * floor, 0.0), axis=(-2, -1))
        return -0.5 * (jnp.sum(per_k(tr), axis=-1) if ct == "full" else tr)
    if ct == "diag":
        terms = jnp.where(on, floor / jnp.where(on, params.scales**2, 1.0), 0.0)
        return -0.5 * jnp.sum(per_k(jnp.sum(terms, axis=-1)), axis=-1)
    total = jnp.sum(floor)  # spherical: tr(Psi) / s_k^2
    terms = jnp.where(total > 0, total / jnp.where(total > 0, params.scales**2, 1.0), 0.0)
    return -0.5 * jnp.sum(per_k(terms), axis=-1)


def log_prior(params: GMMParams, prior: ResolvedPrior, mask=None):
    """Log prior density ``log p(theta)`` in natural parameters.

    Parameters
    ----------
    params : GMMParams, possibly with leading batch axes
    prior : ResolvedPrior
    mask : bool array of shape (n_components,), optional
        The components that belong to the model; the others are padding (a program compiled for
        more components than the fit has, see :func:`bayesgmm.core.em.em_start`), which have
        weight exactly 0 and contribute no prior term. Default: every component.

    Returns
    -------
    array of shape params.batch_shape
    """
    ct = params.covariance_type
    if mask is None:
        per_k = lambda a: a  # noqa: E731
    else:
        per_k = lambda a: jnp.where(mask, a, 0.0)  # noqa: E731  (a: (..., K))
    lp = dirichlet_log_density(params.weights, prior.weight_concentration)
    lp = lp + jnp.sum(per_k(jnp.sum(normal_log_density(params.means, prior.mean_loc, prior.mean_scale), axis=-1)), axis=-1)
    ls = scale_log_density(params.scales, prior.scale_scale, prior.scale_prior)
    if ct in ("full", "diag"):
        lp = lp + jnp.sum(per_k(jnp.sum(ls, axis=-1)), axis=-1)
    elif ct == "spherical":  # (K,)
        lp = lp + jnp.sum(per_k(ls), axis=-1)
    else:  # tied (D,): one covariance
        lp = lp + jnp.sum(ls, axis=-1)
    if ct == "full":
        lp = lp + jnp.sum(per_k(lkj_cholesky_log_density(params.corr_chol, prior.lkj_concentration)), axis=-1)
    elif ct == "tied":
        lp = lp + lkj_cholesky_log_density(params.corr_chol, prior.lkj_concentration)
    lp = lp + covariance_floor_log_density(params, prior.covariance_floor, mask)
    if prior.ordered_means:
        first = params.means[..., 0]
        if mask is not None:  # padding sorts last
            first = jnp.where(mask, first, jnp.inf)
        ordered = jnp.all(first[..., 1:] >= first[..., :-1], axis=-1)
        lp = jnp.where(ordered, lp, -jnp.inf)
    return lp
