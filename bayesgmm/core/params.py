"""The parameters pytree shared by EM, NUTS and VI.

One vocabulary for every fitting method: mixture ``weights``, component ``means`` and the covariance
factors of the covariance type, in the *natural* parameters of the model

* ``scales``: per-feature standard deviations,
* ``corr_chol``: the lower Cholesky factor of the correlation matrix (``full`` and ``tied`` only),

so that ``covariance = diag(scales) @ corr_chol @ corr_chol.T @ diag(scales)``. Every field may carry
extra leading axes (``(n_init, ...)`` for restarts, ``(chain, draw, ...)`` for MCMC, ``(sample, ...)``
for VI); the trailing shapes are

============  ==============  =============  ================
type          weights / means  scales         corr_chol
============  ==============  =============  ================
full          (K,) / (K, D)    (K, D)         (K, D, D)
tied          (K,) / (K, D)    (D,)           (D, D)
diag          (K,) / (K, D)    (K, D)         None
spherical     (K,) / (K, D)    (K,)           None
============  ==============  =============  ================

The class owns the conversions between layouts (scikit-learn's covariance layouts:
:meth:`GMMParams.covariances`, :meth:`GMMParams.full_covariances`, per-feature standard deviations:
:meth:`GMMParams.component_sds`, the free-parameter count :attr:`GMMParams.n_parameters`; the
functions on bare arrays are in :mod:`bayesgmm.core.layouts`), between data and standardised
units (:meth:`GMMParams.standardise`, :meth:`GMMParams.unstandardise`; the standardisation itself
is :mod:`bayesgmm.core.units`), relabellings (:meth:`GMMParams.permute`) and host copies
(:meth:`GMMParams.to_numpy`).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import layouts
from .linalg import inv_lower

__all__ = ["COVARIANCE_TYPES", "GMMParams", "check_covariance_type"]

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


def check_covariance_type(covariance_type: Any) -> str:
    """Return ``covariance_type`` if valid, else raise a ValueError that lists the valid ones."""
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(
            f"covariance_type={covariance_type!r} is not supported; use one of "
            f"{', '.join(repr(c) for c in COVARIANCE_TYPES)}."
        )
    return covariance_type


@dataclasses.dataclass(frozen=True)
class GMMParams:
    """Parameters of a Gaussian mixture in natural coordinates (a JAX pytree).

    Parameters
    ----------
    weights : array of shape (..., n_components)
        Mixture weights on the simplex.
    means : array of shape (..., n_components, n_features)
        Component means.
    scales : array
        Per-feature standard deviations; shape ``(..., K, D)`` for full and diag, ``(..., D)`` for
        tied, ``(..., K)`` for spherical.
    corr_chol : array or None
        Lower Cholesky factor of the correlation matrix: ``(..., K, D, D)`` for full,
        ``(..., D, D)`` for tied, ``None`` for diag and spherical.
    covariance_type : {"full", "tied", "diag", "spherical"}
        Static (not traced) structure of the covariance.
    """

    weights: Any
    means: Any
    scales: Any
    corr_chol: Any = None
    covariance_type: str = "full"

    # -- shapes ---------------------------------------------------------------------------------
    @property
    def n_components(self) -> int:
        return self.means.shape[-2]

    @property
    def n_features(self) -> int:
        return self.means.shape[-1]

    @property
    def batch_shape(self) -> tuple:
        return tuple(self.means.shape[:-2])

    # -- derived covariance quantities ------------------------------------------------------------
    def cov_chol(self):
        """Lower Cholesky factor of each covariance.

        Returns
        -------
        array of shape (..., K, D, D) for full, (..., D, D) for tied.
        For diag and spherical, the per-feature standard deviations ``(..., K, D)`` / ``(..., K)``.
        """
        if self.covariance_type in ("full", "tied"):
            return self.scales[..., :, None] * self.corr_chol
        return self.scales

    def covariances(self):
        """Covariances in scikit-learn's layout.

        Returns
        -------
        array of shape (..., K, D, D) for full, (..., D, D) for tied, (..., K, D) for diag
        (variances) and (..., K) for spherical (variances).
        """
        if self.covariance_type in ("full", "tied"):
            u = self.cov_chol()
            return u @ self._xp.swapaxes(u, -1, -2)
        return self.scales**2

    @property
    def _xp(self):
        """numpy for host parameters (numpy leaves, kept in float64), else jax.numpy."""
        return np if isinstance(self.scales, np.ndarray) else jnp

    def precisions_cholesky(self):
        """scikit-learn's ``precisions_cholesky_``: upper-triangular ``inv(cov_chol).T``.

        For diag and spherical, the inverse standard deviations.
        """
        if self.covariance_type in ("full", "tied"):
            u = self.cov_chol()
            if self._xp is np:
                return np.swapaxes(np.linalg.inv(u), -1, -2)
            return jnp.swapaxes(inv_lower(u), -1, -2)  # no LAPACK in jitted code (see bayesgmm.core.linalg)
        return 1.0 / self.scales

    def precisions(self):
        """Precision matrices (inverse covariances), scikit-learn's layout."""
        if self.covariance_type in ("full", "tied"):
            p = self.precisions_cholesky()
            return p @ self._xp.swapaxes(p, -1, -2)
        return 1.0 / self.scales**2

    def full_covariances(self):
        """Full covariance matrices for every covariance type.

        ``tied`` is repeated for every component, ``diag`` and ``spherical`` variances are put on
        the diagonals (see :func:`bayesgmm.core.layouts.full_covariances`).

        Returns
        -------
        array of shape (..., K, D, D)
            numpy for host parameters (numpy leaves), else jax.
        """
        return layouts.full_covariances(
            self.covariances(), self.covariance_type, self.n_components, self.n_features
        )

    def component_sds(self):
        """Per-component, per-feature standard deviations (the square roots of the variances).

        Returns
        -------
        array of shape (..., K, D)
            ``scales`` repeated over the components (``tied``) or the features (``spherical``).
        """
        xp = self._xp
        shape = self.batch_shape + (self.n_components, self.n_features)
        ct = self.covariance_type
        if ct in ("full", "diag"):
            return self.scales
        sds = self.scales[..., None, :] if ct == "tied" else self.scales[..., :, None]
        sds = xp.broadcast_to(sds, shape)
        return sds.copy() if xp is np else sds

    @property
    def n_parameters(self) -> int:
        """Number of free parameters of the mixture (the penalty of BIC and AIC; see
        :func:`bayesgmm.core.layouts.n_parameters`)."""
        return layouts.n_parameters(self.covariance_type, self.n_components, self.n_features)

    # -- units ------------------------------------------------------------------------------------
    def _unit_scale(self, scale):
        """The per-feature scale, or for ``spherical`` the common one (a scalar)."""
        return scale[0] if self.covariance_type == "spherical" else scale

    def standardise(self, shift, scale) -> "GMMParams":
        """Parameters of the data ``x`` -> parameters of ``z = (x - shift) / scale``.

        The model is equivariant under this map (:func:`bayesgmm.core.units.standardisation`
        gives ``shift`` and ``scale``; :func:`bayesgmm.core.units.log_jacobian` the change of the
        log densities). Any leading batch axes.

        Parameters
        ----------
        shift, scale : arrays of shape (D,)
            For ``spherical``, every entry of ``scale`` equals ``scale[0]``, which is used.

        Returns
        -------
        GMMParams
            ``means (..., K, D)`` shifted and scaled, ``scales`` divided by ``scale``; weights and
            correlations unchanged.
        """
        return self.replace(means=(self.means - shift) / scale, scales=self.scales / self._unit_scale(scale))

    def unstandardise(self, shift, scale) -> "GMMParams":
        """The inverse of :meth:`standardise`: parameters of ``z`` -> parameters of
        ``x = z * scale + shift`` (any leading batch axes; ``shift``, ``scale`` of shape (D,))."""
        return self.replace(means=self.means * scale + shift, scales=self.scales * self._unit_scale(scale))

    # -- constructors ---------------------------------------------------------------------------
    @classmethod
    def from_covariances(cls, weights, means, covariances, covariance_type: str, *, xp=None) -> "GMMParams":
        """Build parameters from covariances in scikit-learn's layout (see :meth:`covariances`).

        ``xp=numpy`` builds host parameters (numpy float64, nothing compiled); the default is
        ``jax.numpy``.
        """
        check_covariance_type(covariance_type)
        if xp is np:
            weights, means = np.asarray(weights, np.float64), np.asarray(means, np.float64)
            covariances = np.asarray(covariances, np.float64)
            return cls(weights, means, *_factors(np, covariances, covariance_type), covariance_type)
        weights = to_device(weights)
        means = to_device(means)
        covariances = to_device(covariances, means.dtype)
        # one program, not one per operation (outside jit each would compile on its own)
        return cls(weights, means, *_jax_factors(covariances, covariance_type), covariance_type)

    @classmethod
    def zeros(cls, n_components: int, n_features: int, covariance_type: str, dtype=np.float64, *,
              xp=None) -> "GMMParams":
        """Parameters of zeros with the shapes of ``covariance_type`` (a placeholder of the right
        structure; not a valid mixture). ``xp`` as in :meth:`from_covariances`."""
        check_covariance_type(covariance_type)
        xp = jnp if xp is None else xp
        k, d = int(n_components), int(n_features)
        scales = {"full": (k, d), "diag": (k, d), "tied": (d,), "spherical": (k,)}[covariance_type]
        corr = {"full": (k, d, d), "tied": (d, d)}.get(covariance_type)
        return cls(xp.zeros((k,), dtype), xp.zeros((k, d), dtype), xp.zeros(scales, dtype),
                   None if corr is None else xp.zeros(corr, dtype), covariance_type)

    # -- the component axis ---------------------------------------------------------------------
    def _component_axes(self):
        """Per field, the position of the component axis counted from the end (None: shared)."""
        ct = self.covariance_type
        return {
            "weights": -1,
            "means": -2,
            "scales": {"full": -2, "diag": -2, "spherical": -1, "tied": None}[ct],
            "corr_chol": -3 if ct == "full" else None,
        }

    def permute(self, order) -> "GMMParams":
        """Relabel the components: ``out[..., k] = self[..., order[..., k]]`` for every
        per-component field (``tied`` covariances, shared, are unchanged).

        Parameters
        ----------
        order : int array of shape (K,) or ``batch_shape + (K,)``
            A permutation (new label -> old label) applied to every batch element, or one
            permutation per batch element (e.g. per draw, ``(chain, draw, K)``).

        Returns
        -------
        GMMParams
            Same shapes and dtypes; numpy leaves give numpy (a jax ``order`` is copied to the
            host), jax leaves give jax (also under ``jit``).

        Raises
        ------
        ValueError
            ``order`` has neither shape.
        """
        leaves = jax.tree_util.tree_leaves(self)
        xp = jnp if any(isinstance(a, jax.Array) for a in leaves) else np
        if not (xp is jnp and isinstance(order, jax.Array)):  # (a tracer under jit is left as it is)
            order = xp.asarray(order)
        k = self.n_components
        if order.ndim == 1 and order.shape[0] == k:
            return self.take_components(order)
        batch = self.batch_shape
        if tuple(order.shape) != batch + (k,):
            raise ValueError(
                f"order must have shape ({k},) or batch_shape + (n_components,) = {batch + (k,)}, "
                f"got {tuple(order.shape)}."
            )
        out = {}
        for name, axis in self._component_axes().items():
            a = getattr(self, name)
            if axis is None or a is None:
                out[name] = a
                continue
            event_ndim = -axis - 1
            idx = order.reshape(order.shape + (1,) * event_ndim)
            out[name] = xp.take_along_axis(a, idx, axis=order.ndim - 1)
        return self.replace(**out)

    def take_components(self, index) -> "GMMParams":
        """Components ``index`` (an int array of shape (K',), e.g. a permutation or ``arange(K')``)
        of every per-component field, any leading batch axes kept; tied covariances are shared."""
        xp = self._xp
        out = {}
        for name, axis in self._component_axes().items():
            a = getattr(self, name)
            out[name] = a if axis is None or a is None else xp.take(a, index, axis=a.ndim + axis)
        return self.replace(**out)

    def as_full(self) -> "GMMParams":
        """The same mixture in the ``"full"`` layout, exactly (values are copied, not computed).

        ``scales`` become ``(..., K, D)`` (a tied or spherical scale repeated) and ``corr_chol``
        ``(..., K, D, D)`` (the tied factor repeated; the identity for diag and spherical), so
        that ``cov_chol()`` and every density are those of the original layout.
        """
        ct = self.covariance_type
        if ct == "full":
            return self
        xp = self._xp
        k, d, batch = self.n_components, self.n_features, self.batch_shape
        s = self.scales
        scales = s[..., :, None] if ct == "spherical" else s[..., None, :] if ct == "tied" else s
        corr = (self.corr_chol[..., None, :, :] if ct == "tied"
                else xp.eye(d, dtype=s.dtype))
        return GMMParams(self.weights, self.means, xp.broadcast_to(scales, batch + (k, d)),
                         xp.broadcast_to(corr, batch + (k, d, d)), "full")

    def pad_components(self, n_components: int) -> "GMMParams":
        """Append components up to ``n_components``: weight exactly 0, mean 0, unit covariance.

        Padding lets one compiled program serve every smaller ``n_components``; a component of
        weight 0 takes no part in the likelihood or the EM (see :func:`bayesgmm.core.em.m_step`).
        """
        xp = self._xp
        extra = int(n_components) - self.n_components
        if extra <= 0:
            return self
        out = {}
        fill = {"weights": 0.0, "means": 0.0, "scales": 1.0}
        for name, axis in self._component_axes().items():
            a = getattr(self, name)
            if axis is None or a is None:
                out[name] = a
                continue
            ax = a.ndim + axis
            shape = a.shape[:ax] + (extra,) + a.shape[ax + 1 :]
            if name == "corr_chol":
                pad = xp.broadcast_to(xp.eye(a.shape[-1], dtype=a.dtype), shape)
            else:
                pad = xp.full(shape, fill[name], dtype=a.dtype)
            out[name] = xp.concatenate([a, pad], axis=ax)
        return self.replace(**out)

    def replace(self, **changes) -> "GMMParams":
        return dataclasses.replace(self, **changes)

    def astype(self, dtype) -> "GMMParams":
        return jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), self)

    def to_numpy(self, dtype=np.float64) -> "GMMParams":
        """Every field as a host numpy array of ``dtype`` (``None``: keep each dtype; a field that
        already is one is not copied).

        Host parameters in float64 keep data units exact (they never pass through float32).
        """
        return jax.tree_util.tree_map(lambda a: np.asarray(a, dtype), self)

    def __getitem__(self, index) -> "GMMParams":
        """Index the leading (batch) axes, e.g. ``params[best]`` or ``params[chain, draw]``."""
        return jax.tree_util.tree_map(lambda a: a[index], self)


jax.tree_util.register_dataclass(
    GMMParams,
    data_fields=["weights", "means", "scales", "corr_chol"],
    meta_fields=["covariance_type"],
)


def _factors(xp, covariances, covariance_type: str):
    """``(scales, corr_chol)`` of covariances in scikit-learn's layout (``corr_chol`` None for
    diag and spherical)."""
    if covariance_type in ("full", "tied"):
        scales = xp.sqrt(xp.diagonal(covariances, axis1=-2, axis2=-1))
        corr = covariances / (scales[..., :, None] * scales[..., None, :])
        return scales, xp.linalg.cholesky(corr)
    return xp.sqrt(covariances), None


_jax_factors = jax.jit(functools.partial(_factors, jnp), static_argnums=1)


def to_device(a, dtype=None):
    """``a`` as a JAX array of ``dtype`` (default: its own), in JAX's canonical dtype (float64
    becomes float32 without x64 mode).

    Host data are converted on the host and copied with ``jax.device_put``: ``jnp.asarray`` of a
    numpy array or a list runs a program on the device, compiled once per shape and dtype (about
    30 ms each in a fresh process). JAX arrays and tracers go through ``jnp.asarray``.
    """
    if isinstance(a, jax.Array):
        return jnp.asarray(a, dtype)
    h = np.asarray(a) if dtype is None else np.asarray(a, dtype)
    return jax.device_put(h.astype(jax.dtypes.canonicalize_dtype(h.dtype), copy=False))
