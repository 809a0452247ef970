"""The one module that talks to ArviZ: draws -> ``InferenceData`` with named dims, and diagnostics.

Everything ArviZ-specific lives here so that a move to ArviZ 1.x (DataTree based) is one change.
Written against ArviZ 0.23 (``az.dict_to_dataset``, ``az.InferenceData(**groups)``, ``az.rhat`` /
``az.ess`` on datasets, ``az.summary``, ``az.loo`` / ``az.waic``).

Groups and dims of :func:`to_inference_data`
--------------------------------------------
``posterior`` (relabelled draws)
    ``weights (chain, draw, component)``, ``means (chain, draw, component, feature)``,
    ``covariances (chain, draw, component, feature, feature_bis)`` -- full matrices for *every*
    covariance type (tied, diag and spherical are expanded) -- and the sampled factors
    ``scales`` (full, diag: ``(component, feature)``; tied: ``(feature,)``; spherical:
    ``(component,)``) and ``corr_chol`` (full: ``(component, feature, feature_bis)``; tied:
    ``(feature, feature_bis)``).
``unrelabelled_posterior``
    The raw draws, same variables and dims, plus ``permutation (chain, draw, component)`` with
    ``posterior[..., k] == unrelabelled_posterior[..., permutation[..., k]]`` when given.
``sample_stats``
    Whatever sampler statistics are given, each ``(chain, draw)``: ``diverging``, ``energy``,
    ``tree_depth``, ``n_steps``, ``step_size``, ``acceptance_rate``, ``lp`` (ArviZ's names).
``log_likelihood``
    ``obs (chain, draw, obs_id)``: pointwise ``log p(x_n | theta)`` for LOO and WAIC.
``observed_data``
    ``obs (obs_id, feature)``.
``constant_data``
    ``sample_weight (obs_id,)`` when given.

The observation dimension is called ``obs_id`` (PyMC's convention), not ``obs``: in xarray a
variable named like one of its dimensions becomes a *coordinate*, which would hide ``obs`` from
``az.loo``. Coordinates: ``component = 0..K-1``, ``feature`` = the feature names (e.g. a
DataFrame's columns) or ``0..D-1``, ``feature_bis`` = the same, ``obs_id = 0..N-1``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from .core.params import GMMParams, check_covariance_type

with warnings.catch_warnings():
    # ArviZ 0.2x announces its 1.0 refactor with a FutureWarning on import once a day
    warnings.filterwarnings("ignore", message=r"\s*ArviZ is undergoing", category=FutureWarning)
    import arviz as az

__all__ = [
    "DEFAULT_VAR_NAMES",
    "SAMPLE_STATS",
    "covariance_matrices",
    "ess",
    "hdi",
    "information_criterion",
    "loo",
    "param_variables",
    "read_netcdf",
    "plot_trace",
    "rhat",
    "rhat_ess",
    "summary",
    "to_inference_data",
    "waic",
    "write_netcdf",
]

#: Variables summarised and diagnosed by default.
DEFAULT_VAR_NAMES = ("weights", "means", "covariances")

#: Sampler statistics in ArviZ's naming.
SAMPLE_STATS = ("diverging", "energy", "tree_depth", "n_steps", "step_size", "acceptance_rate", "lp")

OBS_DIM = "obs_id"


def covariance_matrices(params: GMMParams) -> np.ndarray:
    """Full covariance matrices for every covariance type, shape (..., K, D, D), numpy.

    ``tied`` is broadcast over components, ``diag`` and ``spherical`` are put on the diagonal.
    """
    ct = params.covariance_type
    k, d = params.n_components, params.n_features
    batch = tuple(params.means.shape[:-2])
    scales = np.asarray(params.scales)
    if ct in ("full", "tied"):
        # in numpy: the draws' float64 must not pass through JAX's default float32
        u = scales[..., :, None] * np.asarray(params.corr_chol)
        cov = u @ np.swapaxes(u, -1, -2)
        if ct == "full":
            return cov
        return np.broadcast_to(cov[..., None, :, :], batch + (k, d, d)).copy()
    cov = scales**2
    if ct == "spherical":
        cov = np.broadcast_to(cov[..., None], batch + (k, d))
    out = np.zeros(batch + (k, d, d), cov.dtype)
    idx = np.arange(d)
    out[..., idx, idx] = cov
    return out


def param_variables(params: GMMParams):
    """``(variables, dims)`` of a GMMParams with leading ``(chain, draw)`` axes.

    Returns
    -------
    variables : dict of str -> ndarray
        ``weights``, ``means``, ``covariances`` (full matrices), ``scales`` and ``corr_chol`` (full
        and tied).
    dims : dict of str -> list of str
        The dims after ``(chain, draw)``.
    """
    ct = check_covariance_type(params.covariance_type)
    variables = {
        "weights": np.asarray(params.weights),
        "means": np.asarray(params.means),
        "covariances": covariance_matrices(params),
        "scales": np.asarray(params.scales),
    }
    dims = {
        "weights": ["component"],
        "means": ["component", "feature"],
        "covariances": ["component", "feature", "feature_bis"],
        "scales": {
            "full": ["component", "feature"],
            "diag": ["component", "feature"],
            "tied": ["feature"],
            "spherical": ["component"],
        }[ct],
    }
    if ct in ("full", "tied"):
        variables["corr_chol"] = np.asarray(params.corr_chol)
        dims["corr_chol"] = (["component"] if ct == "full" else []) + ["feature", "feature_bis"]
    return variables, dims


def _coords(k: int, d: int, n: int | None, feature_names):
    if feature_names is None:
        features = np.arange(d)
    else:
        features = np.asarray([str(f) for f in feature_names])
        if features.shape != (d,):
            raise ValueError(f"feature_names has {features.size} names for {d} features.")
        if len(set(features.tolist())) != d:
            raise ValueError(f"feature_names must be unique, got {features.tolist()}.")
    coords = {"component": np.arange(k), "feature": features, "feature_bis": features}
    if n is not None:
        coords[OBS_DIM] = np.arange(n)
    return coords


def _check_chain_draw(name, a, chain_draw):
    a = np.asarray(a)
    if a.shape[:2] != chain_draw:
        raise ValueError(f"{name} must have leading (chain, draw) = {chain_draw} axes, got shape {a.shape}.")
    return a


def to_inference_data(
    draws: GMMParams,
    *,
    covariance_type: str | None = None,
    raw_draws: GMMParams | None = None,
    permutations=None,
    sample_stats: Mapping[str, np.ndarray] | None = None,
    log_likelihood=None,
    observed=None,
    sample_weight=None,
    feature_names: Sequence[str] | None = None,
    attrs: Mapping[str, object] | None = None,
) -> az.InferenceData:
    """Build an :class:`arviz.InferenceData` with named dims from (relabelled) mixture draws.

    Parameters
    ----------
    draws : GMMParams with leading axes (chain, draw)
        Relabelled posterior draws (VI: ``chain = 1``).
    covariance_type : str, optional
        Must equal ``draws.covariance_type`` when given.
    raw_draws : GMMParams with leading axes (chain, draw), optional
        Un-relabelled draws, stored in the ``unrelabelled_posterior`` group.
    permutations : int array of shape (chain, draw, K), optional
        Relabelling permutations (``draws[..., k] = raw_draws[..., perm[..., k]]``), stored as
        ``unrelabelled_posterior.permutation``.
    sample_stats : dict of str -> array of shape (chain, draw), optional
        Sampler statistics (names as in :data:`SAMPLE_STATS`; others are kept too).
    log_likelihood : array of shape (chain, draw, n_obs), optional
        Pointwise log-likelihood, stored as ``log_likelihood.obs``.
    observed : array of shape (n_obs, D), optional
        The data, stored as ``observed_data.obs``.
    sample_weight : array of shape (n_obs,), optional
        Stored as ``constant_data.sample_weight``.
    feature_names : sequence of str, optional
        Coordinates of ``feature`` and ``feature_bis`` (default ``0..D-1``).
    attrs : dict, optional
        Extra attributes for every group (strings and numbers).

    Returns
    -------
    arviz.InferenceData
        Groups and dims as in the module docstring.
    """
    if covariance_type is not None and covariance_type != draws.covariance_type:
        raise ValueError(
            f"covariance_type={covariance_type!r} does not match the draws ({draws.covariance_type!r})."
        )
    if len(draws.means.shape) != 4:
        raise ValueError(
            f"draws must have leading (chain, draw) axes: means of shape (chain, draw, K, D), got "
            f"{tuple(draws.means.shape)}."
        )
    chain, ndraw, k, d = draws.means.shape
    chain_draw = (chain, ndraw)
    n = None
    if log_likelihood is not None:
        log_likelihood = _check_chain_draw("log_likelihood", log_likelihood, chain_draw)
        n = log_likelihood.shape[2]
    if observed is not None:
        observed = np.asarray(observed)
        if n is not None and observed.shape[0] != n:
            raise ValueError(f"observed has {observed.shape[0]} rows, log_likelihood {n} observations.")
        n = observed.shape[0]
    coords = _coords(k, d, n, feature_names)
    base_attrs = {"covariance_type": draws.covariance_type, "inference_library": "bayesgmm"}
    base_attrs.update(dict(attrs or {}))

    def dataset(variables, dims, default_dims=("chain", "draw")):
        return az.dict_to_dataset(
            variables,
            coords=coords,
            dims=dims,
            default_dims=list(default_dims),
            attrs=base_attrs,
            index_origin=0,
        )

    groups = {}
    variables, dims = param_variables(draws)
    groups["posterior"] = dataset(variables, dims)
    if raw_draws is not None:
        if raw_draws.covariance_type != draws.covariance_type or raw_draws.means.shape != draws.means.shape:
            raise ValueError("raw_draws must have the same covariance type and shapes as draws.")
        raw_vars, raw_dims = param_variables(raw_draws)
        if permutations is not None:
            raw_vars["permutation"] = _check_chain_draw("permutations", permutations, chain_draw).astype(np.int64)
            raw_dims["permutation"] = ["component"]
        groups["unrelabelled_posterior"] = dataset(raw_vars, raw_dims)
    if sample_stats:
        stats = {name: _check_chain_draw(f"sample_stats[{name!r}]", v, chain_draw) for name, v in sample_stats.items()}
        groups["sample_stats"] = dataset(stats, {})
    if log_likelihood is not None:
        groups["log_likelihood"] = dataset({"obs": log_likelihood}, {"obs": [OBS_DIM]})
    if observed is not None:
        groups["observed_data"] = dataset({"obs": observed}, {"obs": [OBS_DIM, "feature"]}, default_dims=())
    if sample_weight is not None and n is not None:
        sw = np.asarray(sample_weight, np.float64).reshape(n)
        groups["constant_data"] = dataset({"sample_weight": sw}, {"sample_weight": [OBS_DIM]}, default_dims=())
    return az.InferenceData(**groups)


# ---------------------------------------------------------------------------------------------
# summaries and diagnostics
# ---------------------------------------------------------------------------------------------
def summary(idata, var_names: Sequence[str] | None = DEFAULT_VAR_NAMES, **kwargs):
    """:func:`arviz.summary` of ``idata`` (default: weights, means and covariances).

    Extra keyword arguments go to :func:`arviz.summary` (``group``, ``hdi_prob``, ``kind``,
    ``fmt``, ``round_to``, ``coords``, ...). Returns a pandas DataFrame (``fmt="wide"``).
    """
    var_names = None if var_names is None else list(var_names)
    with warnings.catch_warnings():
        # constant variables (e.g. the diagonal of corr_chol) give 0/0 in R-hat
        warnings.simplefilter("ignore", RuntimeWarning)
        return az.summary(idata, var_names=var_names, **kwargs)


def _as_dataset(draws, var_names):
    if isinstance(draws, GMMParams):
        variables, _ = param_variables(draws)
    else:
        variables = {name: np.asarray(v) for name, v in dict(draws).items()}
    if var_names is not None:
        missing = [v for v in var_names if v not in variables]
        if missing:
            raise KeyError(f"no variable(s) {missing}; available: {sorted(variables)}")
        variables = {v: variables[v] for v in var_names}
    return az.convert_to_dataset(variables)


def _reduce(ds, how):
    out = {}
    for name, da in ds.data_vars.items():
        v = np.asarray(da.values, np.float64)
        finite = v[np.isfinite(v)]
        out[name] = float(how(finite)) if finite.size else float("nan")
    return out


def rhat(draws, var_names: Sequence[str] | None = DEFAULT_VAR_NAMES, method: str = "rank"):
    """Elementwise R-hat as a dict of arrays (variable -> array of the event shape).

    ``draws`` is a GMMParams or a dict of arrays, each with leading (chain, draw) axes.
    """
    ds = _as_dataset(draws, var_names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = az.rhat(ds, method=method)
    return {name: np.asarray(da.values) for name, da in res.data_vars.items()}


def ess(draws, var_names: Sequence[str] | None = DEFAULT_VAR_NAMES, method: str = "bulk"):
    """Elementwise ESS (``method`` "bulk", "tail", ...) as a dict of arrays."""
    ds = _as_dataset(draws, var_names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = az.ess(ds, method=method)
    return {name: np.asarray(da.values) for name, da in res.data_vars.items()}


def rhat_ess(draws, var_names: Sequence[str] | None = DEFAULT_VAR_NAMES):
    """Worst-case convergence diagnostics per variable.

    Parameters
    ----------
    draws : GMMParams or dict of str -> array, leading axes (chain, draw)
    var_names : sequence of str, optional
        Default weights, means, covariances (all variables when None).

    Returns
    -------
    dict of str -> dict
        ``{"rhat": {var: max rank-normalised split R-hat}, "ess_bulk": {var: min bulk ESS},
        "ess_tail": {var: min tail ESS}}``. Non-finite entries (constant quantities, e.g. the
        diagonal of a correlation factor) are ignored; a variable with none finite gives NaN.
    """
    ds = _as_dataset(draws, var_names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        r = az.rhat(ds, method="rank")
        eb = az.ess(ds, method="bulk")
        et = az.ess(ds, method="tail")
    return {"rhat": _reduce(r, np.max), "ess_bulk": _reduce(eb, np.min), "ess_tail": _reduce(et, np.min)}


def loo(idata, **kwargs):
    """PSIS-LOO of ``idata`` (:func:`arviz.loo`; needs the ``log_likelihood`` group)."""
    return az.loo(idata, var_name="obs", **kwargs)


def waic(idata, **kwargs):
    """WAIC of ``idata`` (:func:`arviz.waic`; needs the ``log_likelihood`` group)."""
    return az.waic(idata, var_name="obs", **kwargs)

def hdi(samples, hdi_prob: float = 0.94) -> np.ndarray:
    """Highest-density interval (:func:`arviz.hdi`) of draws with leading (chain, draw) axes.

    Parameters
    ----------
    samples : array of shape (chain, draw, *shape)
    hdi_prob : float in (0, 1), default=0.94

    Returns
    -------
    ndarray of shape (*shape, 2)
        Lower and upper bound.
    """
    samples = np.asarray(samples, np.float64)
    if samples.ndim < 2:
        raise ValueError(f"samples must have leading (chain, draw) axes, got shape {samples.shape}.")
    if not 0.0 < float(hdi_prob) < 1.0:
        raise ValueError(f"hdi_prob must be in (0, 1), got {hdi_prob!r}.")
    # chains pooled, one entry at a time: a (chain, draw) array with one chain (VI) would make
    # ArviZ log a shape-validation warning
    flat = samples.reshape(samples.shape[0] * samples.shape[1], -1)
    out = np.stack([np.asarray(az.hdi(flat[:, e], hdi_prob=float(hdi_prob))) for e in range(flat.shape[1])])
    return out.reshape(samples.shape[2:] + (2,))


def information_criterion(idata, criterion: str = "loo") -> dict:
    """PSIS-LOO or WAIC on the deviance scale, with ArviZ's warnings collected, not printed.

    Parameters
    ----------
    idata : arviz.InferenceData with a ``log_likelihood`` group (variable ``obs``)
    criterion : {"loo", "waic"}

    Returns
    -------
    dict
        ``elpd`` and ``se`` (log scale, higher is better), ``deviance = -2 elpd`` and
        ``deviance_se = 2 se`` (lower is better), ``p`` (effective number of parameters), and
        for LOO ``pareto_k`` (ndarray (n_obs,)), ``good_k`` (ArviZ's threshold
        ``min(1 - 1/log10(S), 0.7)``) and ``n_bad_k`` (points above it); ``warning`` (ArviZ's
        flag) and ``messages`` (the text of the warnings ArviZ raised).
    """
    if criterion not in ("loo", "waic"):
        raise ValueError(f"criterion={criterion!r} is not supported; use 'loo' or 'waic'.")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = (az.loo if criterion == "loo" else az.waic)(idata, var_name="obs", pointwise=True)
    elpd = float(res[f"elpd_{criterion}"])
    se = float(res["se"])
    out = {
        "elpd": elpd,
        "se": se,
        "deviance": -2.0 * elpd,
        "deviance_se": 2.0 * se,
        "p": float(res[f"p_{criterion}"]),
        "warning": bool(res["warning"]),
        "messages": [str(w.message) for w in caught if not issubclass(w.category, (DeprecationWarning, FutureWarning))],
    }
    if criterion == "loo":
        k = np.asarray(res["pareto_k"], np.float64)
        good_k = float(res["good_k"]) if "good_k" in res else 0.7
        out.update(pareto_k=k, good_k=good_k, n_bad_k=int(np.sum(k > good_k)))
    return out


def plot_trace(idata, var_names: Sequence[str] = ("weights",), kind: str = "trace", **kwargs):
    """Trace or rank plot of the (relabelled) posterior through ArviZ; returns the axes array.

    ``kind="trace"``: :func:`arviz.plot_trace` (densities and traces per chain);
    ``kind="rank_bars"`` / ``"rank_vlines"``: :func:`arviz.plot_trace` with rank plots instead of
    traces; ``kind="rank"``: :func:`arviz.plot_rank`. Extra keyword arguments go to ArviZ.
    """
    var_names = list(var_names)
    if kind not in ("trace", "rank", "rank_bars", "rank_vlines"):
        raise ValueError(f"kind={kind!r} is not supported; use 'trace', 'rank', 'rank_bars' or 'rank_vlines'.")
    with warnings.catch_warnings():
        # ArviZ 0.23 calls a matplotlib helper deprecated in matplotlib 3.11 (not our concern)
        warnings.filterwarnings("ignore", message=r".*alias_mapping", category=DeprecationWarning)
        if kind == "rank":
            return az.plot_rank(idata, var_names=var_names, **kwargs)
        return az.plot_trace(idata, var_names=var_names, kind=kind, **kwargs)



# ---------------------------------------------------------------------------------------------
# netCDF files (bayesgmm.io)
# ---------------------------------------------------------------------------------------------
def write_netcdf(idata, path, extra_groups: Mapping[str, tuple] | None = None):
    """Write ``idata`` plus extra groups to a netCDF-4 file at ``path`` (engine h5netcdf).

    ``extra_groups`` maps a group name to ``(variables, attrs)``: a dict of numpy arrays (each
    on its own dims ``<name>_dim<i>``, no coordinates) and a dict of string attributes.
    ``arviz.from_netcdf(path)`` reads the result as one InferenceData with those groups.
    """
    import xarray as xr

    groups = {name: getattr(idata, name) for name in idata.groups()}
    for name, (variables, attrs) in dict(extra_groups or {}).items():
        data_vars = {
            var: ([f"{var}_dim{i}" for i in range(np.ndim(v))], np.asarray(v)) for var, v in variables.items()
        }
        groups[name] = xr.Dataset(data_vars, attrs=dict(attrs))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*not .*(valid|supported) .*group", category=UserWarning)
        az.InferenceData(**groups).to_netcdf(str(path), engine="h5netcdf")


def read_netcdf(path):
    """Read a netCDF file written by :func:`write_netcdf` fully into memory (file closed after).

    Returns ``{group: xarray.Dataset}``. Errors of the netCDF/HDF5 layer propagate (OSError for
    a file that is not HDF5, or truncated).
    """
    with az.rc_context({"data.load": "eager"}), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        idata = az.from_netcdf(str(path), engine="h5netcdf")
    return {name: getattr(idata, name) for name in idata.groups()}
