"""The sampling problem: checked inputs, standardised data and prior, the start, the site transforms.

Both samplers (:mod:`bayesgmm.infer.nuts`, :mod:`bayesgmm.infer.svi`) run the NumPyro model
:func:`bayesgmm.models.gmm_model` on *standardised* data (the per-feature affine map of
:mod:`bayesgmm.core.units`, under which the model is equivariant, with the prior mapped
along). This module validates their inputs and builds that common set-up -- a :class:`_Problem`
(:func:`_prepare`): the standardised data and weights, the resolved prior in data and in
standardised units, and the start as the model's constrained site values -- together with the
bijections between the model's unconstrained space and its sites (:func:`_site_transforms`,
:func:`_constrain`) and the final check that a sampler's draws are finite.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from numpyro import handlers
from numpyro.distributions import biject_to

from .._validation import check_finite, check_sample_weight
from ..core.params import GMMParams, check_covariance_type
from ..core.programs import default_dtype
from ..core.prior import Prior, ResolvedPrior, resolve_prior
from ..core.units import observed_weight, standardisation
from ..models.gmm import gmm_model, sample_from_params

#: Weights of the start are clipped to at least this (then renormalised): a component emptied by a
#: sparse prior has weight exactly 0, which is -inf in the unconstrained (stick-breaking) space.
_MIN_INIT_WEIGHT = 1e-4


@dataclasses.dataclass(frozen=True)
class _Problem:
    """One sampling problem in standardised units (what both samplers run on)."""

    z: Any  # standardised data, (N, D) in dtype
    w: Any  # sample weights in dtype or None
    zprior: ResolvedPrior  # the prior in standardised units
    rprior: ResolvedPrior  # the prior in data units
    shift: np.ndarray  # the standardisation (x - shift) / scale, float64
    scale: np.ndarray
    total_weight: float
    init_sites: dict  # constrained site values of the start, standardised units
    k: int
    d: int
    covariance_type: str
    dtype: Any
    #: the ordered prior is sampled as the unordered one and the draws sorted (:func:`_folds`)
    fold: bool = False
    #: the data have missing (NaN) cells, marginalised out (the model's static ``missing``)
    missing: bool = False
    #: with missing cells, each feature's observed weight (:func:`~bayesgmm.core.units.observed_weight`)
    observed_weight: Any = None
    #: the data's rows; ``z`` may have more, of weight 0 (:func:`sampler_rows`)
    n_rows: int = 0

    @property
    def data(self) -> dict:
        """The model's data arguments: ``{"x", "prior", "sample_weight"}`` (standardised)."""
        return {"x": self.z, "prior": self.zprior, "sample_weight": self.w}

    @property
    def jacobian_weight(self):
        """The ``total_weight`` of :func:`~bayesgmm.core.units.log_jacobian` for the likelihood:
        the total weight, or with missing cells each feature's observed weight (D,)."""
        return self.observed_weight if self.missing else self.total_weight


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def sampler_rows(n: int) -> int:
    """The rows a sampler's program is compiled for: ``n`` rounded up, so that data of nearby
    sizes (cross-validation folds, subsamples, a grid's refits) share one compiled program.

    Up to 1024 rows the next power of two (at least 32): there a gradient costs mostly its fixed
    overhead (NUTS on 272 rows of Old Faithful padded to 512: about 0.05 s more in a 0.2 s run,
    against 4--5 s for compiling a program). Beyond, where the cost grows with the rows, the next
    multiple of an eighth of the power of two below ``n`` (at most 12.5% more rows), and beyond
    65536 rows, where sampling takes minutes, of a 64th (at most 1.6%).
    """
    n = int(n)
    if n <= 1024:
        return 1 << max(5, (n - 1).bit_length())
    step = 1 << ((n - 1).bit_length() - (4 if n <= 65536 else 7))
    return -(-n // step) * step


def draw_slots(n: int) -> int:
    """The draws per chain a sampler program's buffer holds when ``n`` are asked for: ``n``
    rounded up by the rule of :func:`sampler_rows`, so that runs of nearby lengths (500 or 400
    draws, ``extend`` by 100 or by 120) share one compiled program. The number of draws is an
    argument of the program, which runs exactly that many transitions; the buffer's other slots
    cost memory only and are cut off on the host."""
    return sampler_rows(n)


def _device_rows(z64, w64, dtype, pad: bool):
    """Standardised data ``z64`` (n, D) and weights ``w64`` (n,) (float64 host arrays, ``w64``
    None for unit weights) on the device in ``dtype``. ``pad``: extended to :func:`sampler_rows`
    rows with rows of zeros of weight 0 (the model leaves them out exactly: ``where(w != 0, ...)``),
    so that the weights are then always given."""
    np_dtype = np.dtype(dtype)
    n = z64.shape[0]
    if pad:
        extra = sampler_rows(n) - n
        z64 = np.concatenate([z64, np.zeros((extra, z64.shape[1]))])
        w64 = np.concatenate([np.ones(n) if w64 is None else w64, np.zeros(extra)])
    # host arrays of the compute dtype (jnp.asarray would compile a small program per shape)
    z = jax.device_put(z64.astype(np_dtype))
    w = None if w64 is None else jax.device_put(w64.astype(np_dtype))
    return z, w


def _prepare(x, n_components, covariance_type, prior, init, sample_weight, caller, batch_size=None) -> _Problem:
    """Check the inputs of a sampler and build its :class:`_Problem` (``caller`` names it in errors).

    The data rows are padded to :func:`sampler_rows` (see :func:`_device_rows`), unless a
    ``batch_size`` smaller than the data is given: minibatches are drawn from the real rows.
    """
    check_covariance_type(covariance_type)
    k = _check_int("n_components", n_components, 1)
    if not isinstance(prior, Prior):
        raise TypeError(
            f"{caller} needs a proper prior: pass prior=bayesgmm.Prior(...) (got {prior!r}); "
            "maximum likelihood (prior=None) is only available for the MAP/EM fit."
        )
    x64 = np.asarray(x, dtype=np.float64)
    if x64.ndim != 2 or x64.shape[0] < 1:
        raise ValueError(f"x must have shape (n_samples, n_features), got {x64.shape}.")
    missing = _check_data(x64)
    n, d = x64.shape
    w64 = check_sample_weight(sample_weight, n)
    if w64 is None:
        w64 = np.ones(n)
    dtype = default_dtype()
    # resolved and mapped in float64 on the host (data units never pass through float32)
    rprior = resolve_prior(prior, x64, k, covariance_type, w64, "host")
    shift, scale = standardisation(x64, covariance_type, w64)
    # host arrays of the compute dtype (jnp.asarray would compile a small program per shape)
    np_dtype = np.dtype(dtype)
    zprior = jax.tree_util.tree_map(lambda a: np.asarray(a, np_dtype), rprior.affine(shift, scale))
    fold = _folds(rprior)
    if fold:
        zprior = zprior.replace(ordered_means=False)
    pad = batch_size is None or batch_size >= n
    z, w = _device_rows((x64 - shift) / scale, None if sample_weight is None else w64, dtype, pad)

    init = _check_init(init, k, d, covariance_type)
    if prior.ordered_means:  # the ordered model's support: increasing first-feature means
        init = init.permute(np.argsort(init.means[:, 0], kind="stable"))
    wts = np.maximum(init.weights, _MIN_INIT_WEIGHT)
    init = init.replace(weights=wts / wts.sum())
    sites = _std_sites(init, shift, scale, dtype, zprior.ordered_means)
    return _Problem(z, w, zprior, rprior, shift, scale, float(w64.sum()), sites, k, d,
                    covariance_type, dtype, fold, missing, observed_weight(x64, w64) if missing else None, n)


def _check_data(x64) -> bool:
    """Whether host data ``x64`` have missing (NaN) cells, after refusing infinite values and rows
    with every cell missing (NaN marks a missing cell, marginalised out of the likelihood)."""
    if np.all(np.isfinite(x64)):
        return False
    check_finite(x64, "x", allow_nan=True)
    empty = np.flatnonzero(np.isnan(x64).all(axis=0))
    if empty.size:
        raise ValueError(
            f"x has {empty.size} column(s) with every cell missing (NaN): columns "
            f"{', '.join(str(c) for c in empty[:10])}. Nothing can be learnt about such a feature; "
            "drop it first."
        )
    return True


def _folds(rprior: ResolvedPrior) -> bool:
    """Whether the samplers run an ``ordered_means`` prior as the unordered model and sort each draw.

    The ordered posterior is the unordered one restricted to increasing first-feature means. In
    the unconstrained space of NumPyro's ordered transform, ``(m_1, log(m_2 - m_1), ...)``, that
    region's boundary ``m_j = m_{j+1}`` lies infinitely far away, so when two components' first
    means are not well separated the ordered posterior falls into pieces (which cluster is
    component 1) that no chain can move between: a chain started at the MAP samples only the
    MAP's piece, its intervals are too narrow, and the approach to the boundary diverges. With an
    exchangeable prior (the same weight concentration for every component; every other prior
    value is shared by the components) the unordered posterior is invariant under permuting the
    components, and sorting the components of its draws by their first-feature mean gives exactly
    the ordered posterior -- for a chain confined to one labelling just as for one that switches
    labels. Simulation-based calibration (``bench/sbc.py``, bench/VALIDATION.md) fails for the
    constrained sampler and passes for this one. A non-exchangeable prior keeps the constrained
    sampler (sorting would not give its posterior).
    """
    if not rprior.ordered_means:
        return False
    wc = np.asarray(rprior.weight_concentration, np.float64).reshape(-1)
    return bool(np.all(wc == wc[0]))


def _fold_draws(draws: GMMParams) -> GMMParams:
    """Draws (numpy, any leading batch axes) with the components of each sorted by the first
    feature's mean (the ordered model's labelling)."""
    return draws.permute(np.argsort(draws.means[..., 0], axis=-1, kind="stable"))


def _std_sites(params: GMMParams, shift, scale, dtype, ordered_means) -> dict:
    """Constrained site values of ``params`` (data units, no batch axes) in standardised units."""
    init_z = jax.tree_util.tree_map(lambda a: np.asarray(a, np.dtype(dtype)), params.standardise(shift, scale))
    sites = sample_from_params(init_z, ordered_means=ordered_means)  # host arrays: nothing compiled
    if params.means.shape[-1] == 1:
        sites.pop("corr_chol", None)  # a deterministic site for D == 1
    return sites


def _check_init(init, k, d, covariance_type) -> GMMParams:
    """``init`` as float64 numpy, after checking that it is a finite start of the right shapes."""
    if not isinstance(init, GMMParams):
        raise TypeError(
            "init must be a GMMParams in data units (e.g. fit_map(...).params), "
            f"got {type(init).__name__}."
        )
    if init.covariance_type != covariance_type:
        raise ValueError(
            f"init has covariance_type={init.covariance_type!r}, expected {covariance_type!r}."
        )
    init = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), init)
    if init.means.shape != (k, d):
        raise ValueError(
            f"init.means has shape {init.means.shape}; expected ({k}, {d}) (no batch axes)."
        )
    leaves = jax.tree_util.tree_leaves(init)
    if not all(np.all(np.isfinite(a)) for a in leaves):
        raise ValueError("init contains non-finite values.")
    if np.any(init.weights < 0) or np.any(init.scales <= 0):
        raise ValueError("init must have weights >= 0 and scales > 0.")
    return init


def _site_transforms(problem: _Problem) -> dict:
    """``{site: bijection unconstrained -> support}`` for the latent sites of the model."""
    model = partial(gmm_model, n_components=problem.k, covariance_type=problem.covariance_type)
    supports = {}

    def trace(init_sites, zprior):
        # substitute the start so that nothing is sampled; traced abstractly (eval_shape), since
        # run eagerly the distributions' constructors and checks compile dozens of small programs
        tr = handlers.trace(handlers.substitute(model, data=init_sites)).get_trace(
            x=None, prior=zprior, n_features=problem.d
        )
        for name, site in tr.items():
            if site["type"] == "sample" and not site["is_observed"]:
                supports[name] = site["fn"].support  # parameter-free constraints (static)
        return 0

    jax.eval_shape(trace, problem.init_sites, problem.zprior)
    return {name: biject_to(support) for name, support in supports.items()}


def _constrain(transforms, u):
    """Constrained site values and ``sum log|det J|`` of one unconstrained point ``u``."""
    out, ladj = {}, 0.0
    for name, t in transforms.items():
        v = t(u[name])
        out[name] = v
        ladj = ladj + jnp.sum(t.log_abs_det_jacobian(u[name], v))
    return out, ladj


def _check_finite_draws(draws: GMMParams, lp, method, fix):
    """Raise ``FloatingPointError`` (suggesting ``fix``) if a draw or a log posterior is not finite."""
    leaves = jax.tree_util.tree_leaves(draws)
    if not all(np.all(np.isfinite(a)) for a in leaves) or (lp is not None and not np.all(np.isfinite(lp))):
        raise FloatingPointError(
            f"{method} produced non-finite draws (a covariance became singular or a weight "
            f"vanished); {fix}, or rescale the data."
        )
