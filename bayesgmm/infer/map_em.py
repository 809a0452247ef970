"""MAP-EM runner: ``(rng_key, x, spec) -> MAPResult``.

Host-side orchestration around the pure core: resolve the prior in data units, standardise the data
(a per-feature affine map under which the model is equivariant, which keeps float32 sound), batch
``n_init`` restarts with ``vmap``, keep the best, and map everything back to data units.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._compile_cache import enable_compilation_cache
from ..core.density import default_block_size
from ..core.em import EMInfo
from ..core.hc import hc_rows, hc_start
from ..core.init import INIT_METHODS
from ..core.layouts import standardise_covariances
from ..core.missing import estep_stats_missing, pattern_blocks
from ..core.programs import StartValues, compile_profile, component_bucket, default_dtype, fit_em, run_em
from ..core.params import GMMParams, check_covariance_type
from ..core.sharding import data_mesh, device_blocks, sharded_block_sum, sharded_estep
from ..core.prior import Prior, ResolvedPrior, resolve_prior
from ..core.units import has_missing, log_jacobian, observed_weight, standardisation, standardise_rows

__all__ = ["MAPResult", "fit_map"]


@dataclasses.dataclass(frozen=True)
class MAPResult:
    """Result of :func:`fit_map` (immutable).

    Attributes
    ----------
    params : GMMParams
        Best parameters, data units.
    objective : float
        Log posterior (or log-likelihood when ``prior`` is None) at ``params``; equals
        ``log_posterior(params, x, prior, sample_weight)``.
    log_likelihood : float
        ``sum_n w_n log p(x_n | params)``.
    converged : bool
    n_iter : int
    history : ndarray of shape (n_iter + 1,)
        Objective after 0, 1, ..., n_iter M-steps of the best run.
    n_empty : int
        Components with weight exactly zero (emptied by a sparse Dirichlet prior).
    best_index : int
        Which restart won: the highest objective -- unless that restart collapsed and, pruned,
        ended below another restart that did not collapse, which then wins.
    restart_objectives : ndarray of shape (n_init,)
    prior : ResolvedPrior or None
        The prior in data units.
    shift, scale : ndarray of shape (n_features,)
        The standardisation ``(x - shift) / scale`` the EM ran in.
    info : EMInfo
        What every restart reported, in standardised units.
    collapsed : ndarray of int
        Components that collapsed (covariance singular -- under a covariance floor: the floor
        alone in every direction --, or less than half a sample's weight; see ``_collapsed``).
    pruned : ndarray of int
        The collapsed components that were pruned: weight exactly 0, EM re-run with the others
        (``n_iter`` and ``history`` are then those of the re-run). A subset of ``collapsed``.
    """

    params: GMMParams
    objective: float
    log_likelihood: float
    converged: bool
    n_iter: int
    history: np.ndarray
    n_empty: int
    best_index: int
    restart_objectives: np.ndarray
    prior: ResolvedPrior | None
    shift: np.ndarray = dataclasses.field(repr=False, default=None)
    scale: np.ndarray = dataclasses.field(repr=False, default=None)
    info: EMInfo = dataclasses.field(repr=False, default=None)
    collapsed: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, int))
    pruned: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, int))


def fit_map(
    rng_key,
    x,
    *,
    n_components: int,
    covariance_type: str = "full",
    prior: Prior | None = None,
    sample_weight=None,
    tol: float = 1e-3,
    max_iter: int = 100,
    reg_covar: float = 1e-6,
    n_init: int = 1,
    init_params_method: str = "kmeans",
    weights_init=None,
    means_init=None,
    covariances_init=None,
    block_size: int | None = None,
    dtype=None,
    devices=None,
) -> MAPResult:
    """Fit a Gaussian mixture by MAP-EM (or ML-EM with ``prior=None``).

    Parameters
    ----------
    rng_key : jax PRNG key
    x : array of shape (n_samples, n_features)
        Finite, except NaN for missing cells: those are marginalised out (missing at random;
        EM with expected sufficient statistics, on one device); every row needs an observed cell.
    n_components : int
    covariance_type : {"full", "tied", "diag", "spherical"}
    prior : Prior or None
    sample_weight : array of shape (n_samples,), optional
    tol, max_iter, reg_covar : EM controls (traced: changing them does not recompile)
    n_init : int, restarts batched with vmap
    init_params_method : {"kmeans", "k-means++", "random", "random_from_data", "hc"}
        How each restart starts (see :class:`bayesgmm.GaussianMixture`'s ``init_params``).
        ``"hc"``: restart 0 starts from mclust's model-based hierarchical agglomeration (VVV
        criterion, on the standardised data; deterministic), restarts 1, 2, ... as with
        ``"kmeans"``. The agglomeration runs on the host in O(m^2) memory, on at most
        ``bayesgmm.core.hc.HC_MAX_ROWS`` (2000) rows: larger data are subsampled (fixed seed,
        proportional to ``sample_weight``) and the other rows join their likeliest group in
        the first E-step.
    weights_init, means_init, covariances_init : optional user starts, data units,
        covariances in scikit-learn's layout for the covariance type
    block_size : rows per block of the chunked passes (default: automatic)
    dtype : float32 or float64 (default: float64 iff JAX x64 is enabled)
    devices : None, int, sequence of jax devices or jax.sharding.Mesh
        Devices the samples are split over (see :func:`bayesgmm.core.sharding.data_mesh`);
        ``None`` means all local devices. Each device scans its share of the blocks and the
        sufficient statistics are summed across devices; with one device the data are not
        sharded at all.

    Returns
    -------
    MAPResult
        Parameters in data units as numpy float64 (the EM itself runs in ``dtype`` on
        standardised data). Components that collapsed in the best start are pruned -- weight
        exactly 0, EM re-run with the others -- and listed in ``collapsed`` / ``pruned``; if
        another start ended higher than that re-run without collapsing, it is the result.
    """
    check_covariance_type(covariance_type)
    enable_compilation_cache()
    if init_params_method not in INIT_METHODS:
        raise ValueError(
            f"init_params={init_params_method!r} is not supported; use one of "
            f"{', '.join(repr(m) for m in INIT_METHODS)}."
        )
    dtype = dtype or default_dtype()
    # no whole-data float64 copy: the host passes below work chunk by chunk
    x64 = np.asarray(x)
    if x64.dtype.kind != "f":
        x64 = x64.astype(np.float64)
    n, d = x64.shape
    w64 = np.ones(n) if sample_weight is None else np.asarray(sample_weight, np.float64)
    total_weight = float(w64.sum())

    # host side: the prior and the standardisation in float64, so that data units (offsets of
    # 1e15, scales of 1e-20 or 1e20) never pass through float32; only standardised values go to JAX
    rprior = None
    if prior is not None:
        rprior = resolve_prior(prior, x64, n_components, covariance_type, w64, "host")
    shift, scale = standardisation(x64, covariance_type, w64, reg_covar=None if prior is not None else reg_covar)
    missing = has_missing(x64)
    # the masked pass (NaN cells marginalised) runs on one device
    mesh = None if missing else data_mesh(devices)
    np_dtype = np.dtype(dtype)
    reg_z64 = np.full(d, float(reg_covar)) / scale**2
    # reg_covar is used in maximum likelihood only (where the standardisation keeps it <= 1); under
    # a prior it can exceed float32's range on data of scale 1e-100, so it is not passed on
    reg_z = (reg_z64 if prior is None else np.zeros(d)).astype(np_dtype)

    block = block_size or default_block_size(n_components, d)
    if missing:  # rows grouped by pattern of missingness, blocks of one pattern each
        xb, wb = jax.device_put(pattern_blocks(standardise_rows(x64, shift, scale, np_dtype), w64, block, np_dtype))
        passes = {"estep": estep_stats_missing}
    else:
        xb, wb = device_blocks(x64, w64, shift, scale, block, mesh, np_dtype)
        passes = {} if mesh is None else {"estep": sharded_estep(mesh), "block_sum": sharded_block_sum(mesh)}

    # one program serves every n_components up to a bucket (padding of weight 0) on small data
    n_rows = int(np.prod(xb.shape[:2]))
    k_pad = component_bucket(n_components, n_rows, d, covariance_type)
    profile = compile_profile(n_rows, k_pad, d, covariance_type)
    zprior = None
    if rprior is not None:
        zp = rprior.affine(shift, scale)
        wc = np.ones(k_pad)
        wc[:n_components] = np.asarray(zp.weight_concentration, np.float64)
        zprior = jax.tree_util.tree_map(lambda a: np.asarray(a, np_dtype), zp.replace(weight_concentration=wc))
    start = _start_values(weights_init, means_init, covariances_init, shift, scale, covariance_type,
                          n_components, k_pad, np_dtype)

    partition = None
    if init_params_method == "hc":
        partition = _hc_partition(x64, w64, shift, scale, n_components, k_pad, covariance_type,
                                  reg_z64 if prior is None else np.full(d, _HC_RIDGE))

    # restart i uses fold_in(key, i): the first start of n_init > 1 is the n_init = 1 run, so more
    # restarts can never do worse
    fit_args = (xb, wb, zprior, reg_z, tol, max_iter)
    # the k-means starts try the standardised view and the data's own scale (see
    # bayesgmm.core.programs.SHORT_RUN); one view when the two coincide (D = 1, spherical)
    feature_scale = scale / scale.max()
    if np.allclose(feature_scale, 1.0):
        feature_scale = None
    params_all, info = fit_em(
        _key_data(rng_key), *fit_args, n_init=n_init, n_components=k_pad, n_active=n_components,
        covariance_type=covariance_type, method=init_params_method, start=start, profile=profile,
        feature_scale=feature_scale, partition=partition, **passes,
    )
    objs = np.asarray(info.objective, dtype=np.float64)
    finite = np.isfinite(objs) & info.finite
    if not finite.any():
        raise FloatingPointError(_failure_message(covariance_type, prior is None, reg_covar, n, d, n_components))
    best = int(np.argmax(np.where(finite, objs, -np.inf)))
    restart_objectives = objs.copy()

    real = np.arange(n_components)
    best_pad = params_all[best]
    best_z = best_pad.take_components(real).to_numpy()
    best_info = jax.tree_util.tree_map(lambda a: np.asarray(a)[best], info)
    n_eff = float(w64.sum() ** 2 / np.sum(w64**2))
    floor_z = None if rprior is None else rprior.affine(shift, scale).covariance_floor

    def find_collapsed(p):
        return _collapsed(p, reg_z64 if prior is None else None, n_eff, floor_z, total_weight)

    collapsed = find_collapsed(best_z)
    pruned = np.zeros(n_components, bool)
    # the collapse policy: prune a collapsed component (weight exactly 0, which the EM keeps) and
    # re-run the EM with the others from where it stopped; never every component
    while (collapsed & ~pruned).any() and not (collapsed | pruned).all():
        pruned |= collapsed
        w_new = np.where(pruned, 0.0, best_z.weights)
        start_p = best_z.replace(weights=w_new / w_new.sum()).pad_components(k_pad)
        start_p = jax.tree_util.tree_map(lambda a: np.asarray(a, np_dtype)[None], start_p)
        p1, info1 = run_em(start_p, *fit_args, n_active=n_components, profile=profile, estep=passes.get("estep"))
        if not (np.isfinite(info1.objective[0]) and info1.finite[0]):
            pruned &= ~collapsed  # the re-run failed: keep the collapsed fit, reported as such
            break
        best_z = p1[0].take_components(real).to_numpy()
        best_info = jax.tree_util.tree_map(lambda a: np.asarray(a)[0], info1)
        collapsed = find_collapsed(best_z)
    if pruned.any():
        # the objective of a collapsed optimum is not one the fit can keep: another restart that
        # ended higher than the pruned re-run, with no collapsed component, is the better fit
        for r in np.argsort(-np.where(finite, objs, -np.inf), kind="stable"):
            if not finite[r] or objs[r] <= float(best_info.objective):
                break
            if r != best and not find_collapsed(params_all[r].take_components(real).to_numpy()).any():
                best = int(r)
                best_z = params_all[r].take_components(real).to_numpy()
                best_info = jax.tree_util.tree_map(lambda a: np.asarray(a)[r], info)
                collapsed, pruned = np.zeros(n_components, bool), np.zeros(n_components, bool)
                break
    collapsed |= pruned

    params = best_z.unstandardise(shift, scale)  # float64 numpy, data units
    # with missing cells, each feature's observed weight (a missing cell has no density to convert)
    jac_weight = observed_weight(x64, w64) if missing else total_weight
    offset = log_jacobian(scale, jac_weight, params if rprior is not None else None)
    ll_offset = log_jacobian(scale, jac_weight)
    n_iter_best = int(best_info.n_iter)
    n_zero = int(np.sum(best_z.weights <= 0))
    return MAPResult(
        params=params,
        objective=float(best_info.objective + offset),
        log_likelihood=float(best_info.log_likelihood + ll_offset),
        converged=bool(best_info.converged),
        n_iter=n_iter_best,
        history=np.asarray(best_info.history[: n_iter_best + 1], np.float64) + offset,
        n_empty=n_zero - int(np.sum(pruned)),
        best_index=best,
        restart_objectives=restart_objectives + offset,
        prior=rprior,
        shift=shift,
        scale=scale,
        info=info,
        collapsed=np.flatnonzero(collapsed),
        pruned=np.flatnonzero(pruned),
    )


def _key_data(rng_key):
    """Raw uint32 key data of a PRNG key (typed or raw), or of an int seed (``jax.random.key``'s
    bits, made on the host without compiling anything)."""
    if isinstance(rng_key, (int, np.integer)):
        seed = int(rng_key)
        if jax.config.jax_default_prng_impl == "threefry2x32" and 0 <= seed < 2**32:
            return np.array([0, seed], np.uint32)
        rng_key = jax.random.key(seed)
    if jnp.issubdtype(getattr(rng_key, "dtype", None), jax.dtypes.prng_key):
        return jax.random.key_data(rng_key)
    return rng_key


def _collapsed(params_z: GMMParams, reg_z, n_eff: float, floor_z=None, total_weight=None) -> np.ndarray:
    """Which components collapsed, shape (K,) bool (host, standardised units).

    A component collapsed when its covariance is singular in some direction: its smallest
    variance is below ``_COLLAPSE_VAR`` of the data's variance or, in maximum likelihood, it is
    ``reg_covar`` alone (the smallest generalised eigenvalue of the covariance against
    ``diag(reg_covar)`` is below ``1 + 1e-3``: the data add less than 0.1% to the floor in some
    direction) -- or when it holds less than half a sample (positive weight, ``weight * n_eff <
    0.5``). A tied covariance is shared: only the weight test applies.

    Under a prior with a covariance floor ``Psi`` (``floor_z``, the diagonal, with the total
    sample weight ``total_weight``) no covariance is singular: a direction that holds no data gets
    the variance ``Psi / n_k`` up to a few counts of prior (``n_k = weight * total_weight``). That
    is the honest MAP when a component has fewer points than features (every component of a
    50-component fit of 41-dimensional data has such directions), so it is not a collapse. A
    component collapsed when it is floor-dominated in *every* direction -- every generalised
    eigenvalue of its covariance against ``Psi / n_k`` is below ``_FLOOR_ONLY`` -- i.e. it is a
    point mass at the floor's resolution on duplicated (or tied, in 1-D) points, which describes
    no spread of the data. (Measured: such a spike on 8 or 12 duplicates in 2-D gives at most
    2.4; real clusters give thousands.)
    """
    ct = params_z.covariance_type
    w = params_z.weights
    cov = params_z.covariances()
    reg = None if reg_z is None or np.any(np.asarray(reg_z) <= 0) else np.asarray(reg_z, np.float64)
    if ct == "full":
        low = np.linalg.eigvalsh(cov)[:, 0]
        if reg is not None:
            r = 1.0 / np.sqrt(reg)
            rel = np.linalg.eigvalsh(r[:, None] * cov * r[None, :])[:, 0]
    elif ct == "diag":
        low = cov.min(axis=-1)
        if reg is not None:
            rel = (cov / reg).min(axis=-1)
    elif ct == "spherical":
        low = cov
        if reg is not None:
            rel = cov / reg.mean()
    else:
        low = np.full(w.shape, np.inf)
        rel = np.full(w.shape, np.inf)
    singular = low <= _COLLAPSE_VAR
    if reg is not None:
        singular |= rel <= 1.0 + 1e-3
    floor = None if floor_z is None else np.asarray(floor_z, np.float64)
    if floor is not None and np.all(floor > 0) and ct != "tied":
        nk = w * float(total_weight)
        if ct == "full":
            r = 1.0 / np.sqrt(floor)
            high = np.linalg.eigvalsh(r[:, None] * cov * r[None, :])[:, -1]
        elif ct == "diag":
            high = (cov / floor).max(axis=-1)
        else:
            high = cov / floor.mean()
        singular |= high * nk < _FLOOR_ONLY
    vanishing = (w > 0) & (w * n_eff < 0.5)
    return (w > 0) & (singular | vanishing)


#: A component variance (in units of the data's variance) below which it counts as collapsed.
_COLLAPSE_VAR = 1e-10
#: Under a covariance floor: a component whose every variance is below this many times the floor
#: alone (``Psi / n_k``) is a point mass on duplicated points (see :func:`_collapsed`).
_FLOOR_ONLY = 3.0


def _failure_message(covariance_type, ml: bool, reg_covar, n, d, k) -> str:
    hint = ""
    if covariance_type in ("full", "tied") and n / k <= d:
        hint = (
            f" With {n} samples, {k} components and {d} features, a component holds about "
            f"{n / k:.3g} points, fewer than the {d} a full covariance needs to be non-singular; "
            "use covariance_type='diag' or 'spherical', fewer components, or more data."
        )
    fixes = (
        f"increase reg_covar (now {reg_covar}), use fewer components, or fit with the default "
        "prior (prior='default')"
        if ml
        else "use fewer components, a simpler covariance_type, rescale or deduplicate the data, "
        "or a stronger prior (e.g. a larger Prior(covariance_floor=...), by default 1e-4 of each "
        "feature's variance by default, or a larger Prior(lkj_concentration=...))"
    )
    return (
        "EM failed: a covariance became singular (the component collapsed) and the objective "
        f"became non-finite in every start (covariance_type={covariance_type!r}). To fix it, "
        + fixes + "." + hint
    )


#: Ridge (standardised units) on the covariances of the hc partition's groups under a prior (where
#: ``reg_covar`` is not used): a group of tied rows must still have a density for the E-step that
#: starts the EM; the M-step's prior then sets its covariance.
_HC_RIDGE = 1e-6


def _hc_partition(x, w, shift, scale, k, k_pad, ct, reg_z) -> GMMParams:
    """The Gaussians of the hc partition (host, standardised units, padded to ``k_pad``)."""
    rows, row_w = hc_rows(w)
    z = (np.asarray(x[rows], np.float64) - shift) / scale
    z = np.where(np.isnan(z), 0.0, z)  # missing cells at the (standardised) column means, as k-means
    weights, means, cov = hc_start(z, row_w, k, ct, reg_z)
    return GMMParams.from_covariances(weights, means, cov, ct, xp=np).pad_components(k_pad)


def _start_values(weights_init, means_init, covariances_init, shift, scale, ct, k, k_pad, dtype) -> StartValues:
    """User starting values in standardised units, padded to ``k_pad`` components (host)."""
    out = {}
    if weights_init is not None:
        w = np.zeros(k_pad)
        w[:k] = np.asarray(weights_init, np.float64)
        out["weights"] = w.astype(dtype)
    if means_init is not None:
        m = np.zeros((k_pad, len(shift)))
        m[:k] = (np.asarray(means_init, np.float64) - shift) / scale
        out["means"] = m.astype(dtype)
    if covariances_init is not None:
        cov_z = standardise_covariances(covariances_init, ct, scale)
        d = len(shift)
        user = GMMParams.from_covariances(np.full(k, 1.0 / k), np.zeros((k, d)), cov_z, ct, xp=np).pad_components(k_pad)
        out["scales"] = user.scales.astype(dtype)
        if user.corr_chol is not None:  # full and tied
            out["corr_chol"] = user.corr_chol.astype(dtype)
    return StartValues(**out)
