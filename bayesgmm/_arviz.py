"""The one module that talks to ArviZ: draws -> ArviZ data with named dims, diagnostics, plots, files.

Everything ArviZ-specific lives here, so that a new ArviZ release is one change in this file. Two
ArviZ generations are supported, chosen by what is installed (:data:`ARVIZ_1`):

* **ArviZ 0.2x** (0.23 on Python 3.11): :attr:`Posterior.idata` is an ``arviz.InferenceData``;
  summaries, diagnostics, LOO/WAIC and plots come from ``arviz`` itself.
* **ArviZ >= 1.3** (the split packages arviz-base / arviz-stats / arviz-plots): ``idata`` is an
  ``xarray.DataTree`` with the same groups as children; statistics come from ``arviz_stats``
  (``hdi(prob=)``, ``summary(ci_prob=, ci_kind=)``, ``loo``), plots from ``arviz_plots``
  (``PlotCollection``), files from xarray's DataTree netCDF. ArviZ 1.x has no WAIC: it is
  computed here with ArviZ 0.23's formulas.

The groups are built as plain ``xarray.Dataset`` objects with the same code on both, so the
variables, dims and coordinates are identical, and so are the netCDF files: a file written
under one generation opens under the other (``arviz.from_netcdf`` of 0.23, ``xarray.open_datatree``
/ ``arviz.from_netcdf`` of 1.x, :func:`bayesgmm.load_posterior` under both).

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
``az.loo``. Coordinates: ``chain = 0..C-1``, ``draw = 0..S-1``, ``component = 0..K-1``,
``feature`` = the feature names (e.g. a DataFrame's columns) or ``0..D-1``, ``feature_bis`` =
the same, ``obs_id = 0..N-1``.
"""

from __future__ import annotations

import importlib.metadata
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from .core.params import GMMParams, check_covariance_type


def _arviz_generation() -> int:
    """0 for ArviZ 0.2x (``arviz.InferenceData``), 1 for ArviZ >= 1 (arviz-base/-stats/-plots)."""
    try:
        major = int(importlib.metadata.version("arviz").split(".")[0])
    except importlib.metadata.PackageNotFoundError:  # arviz-stats etc. without the meta package
        major = 1
    return 1 if major >= 1 else 0


#: True when ArviZ >= 1 (DataTree based) is installed, False for ArviZ 0.2x.
ARVIZ_1 = _arviz_generation() == 1


def _az():
    """ArviZ 0.2x's ``arviz`` module, imported at first use."""
    with warnings.catch_warnings():
        # ArviZ 0.2x announces its 1.0 refactor with a FutureWarning on import once a day
        warnings.filterwarnings("ignore", message=r"\s*ArviZ is undergoing", category=FutureWarning)
        import arviz

    return arviz


def _azs():
    """ArviZ 1.x's statistics (``arviz_stats``), imported at first use."""
    import arviz_stats

    return arviz_stats


def loggers() -> list:
    """The loggers through which ArviZ reports (to silence them around a computation).

    ArviZ 1.x logs through ``logging.getLogger("arviz_stats")`` and its siblings; ArviZ 0.2x
    through its own Logger instance ``arviz._log`` (outside logging's registry), available
    only once ArviZ has been imported.
    """
    import logging
    import sys

    out = [logging.getLogger(name) for name in ("arviz", "arviz_base", "arviz_stats", "arviz_plots")]
    legacy = getattr(sys.modules.get("arviz"), "_log", None)
    if legacy is not None and all(legacy is not lg for lg in out):
        out.append(legacy)
    return out


__all__ = [
    "ARVIZ_1",
    "DEFAULT_VAR_NAMES",
    "SAMPLE_STATS",
    "ess",
    "figure_of",
    "from_groups",
    "group_names",
    "groups",
    "hdi",
    "information_criterion",
    "is_idata",
    "loggers",
    "loo",
    "param_variables",
    "plot_trace",
    "rank_figure",
    "read_netcdf",
    "rhat",
    "rhat_ess",
    "summary",
    "to_inference_data",
    "trace_axes",
    "trace_figure",
    "waic",
    "write_netcdf",
]

#: Variables summarised and diagnosed by default.
DEFAULT_VAR_NAMES = ("weights", "means", "covariances")

#: Sampler statistics in ArviZ's naming.
SAMPLE_STATS = ("diverging", "energy", "tree_depth", "n_steps", "step_size", "acceptance_rate", "lp")

OBS_DIM = "obs_id"


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
        # in numpy: the draws' float64 must not pass through JAX's default float32
        "covariances": params.to_numpy(None).full_covariances(),
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
):
    """Build the ArviZ data of (relabelled) mixture draws, with named dims and coordinates.

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
    arviz.InferenceData or xarray.DataTree
        ``arviz.InferenceData`` under ArviZ 0.2x, ``xarray.DataTree`` (one child per group)
        under ArviZ >= 1; groups and dims as in the module docstring.
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

    sample_coords = {"chain": np.arange(chain), "draw": np.arange(ndraw)}

    def dataset(variables, dims, default_dims=("chain", "draw")):
        # plain xarray, the same on every ArviZ version (ArviZ's dict_to_dataset differs by version)
        data_vars = {}
        for name, value in variables.items():
            value = np.asarray(value)
            names = list(default_dims) + list(dims.get(name, []))
            names += [f"{name}_dim_{i}" for i in range(value.ndim - len(names))]
            data_vars[name] = (names, value)
        used = {dim for names, _ in data_vars.values() for dim in names}
        all_coords = {**sample_coords, **coords}
        return xr.Dataset(data_vars, coords={c: v for c, v in all_coords.items() if c in used}, attrs=dict(base_attrs))

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
    return from_groups(groups)


# ---------------------------------------------------------------------------------------------
# the container: InferenceData (0.2x) or DataTree (1.x)
# ---------------------------------------------------------------------------------------------
def from_groups(groups: Mapping[str, xr.Dataset]):
    """The ArviZ container of ``{group: Dataset}``: InferenceData (0.2x) or DataTree (>= 1)."""
    if ARVIZ_1:
        return xr.DataTree.from_dict(dict(groups))
    with warnings.catch_warnings():
        # 0.2x warns about group names outside its schema (unrelabelled_posterior, bayesgmm)
        warnings.filterwarnings("ignore", message=r".*not .*(valid|supported) .*group", category=UserWarning)
        return _az().InferenceData(**groups)


def is_idata(obj) -> bool:
    """Whether ``obj`` is the ArviZ container of the installed ArviZ (InferenceData / DataTree)."""
    return isinstance(obj, xr.DataTree) if ARVIZ_1 else isinstance(obj, _az().InferenceData)


def group_names(idata) -> list:
    """The names of the groups of ``idata``, in order (``posterior``, ``sample_stats``, ...)."""
    if isinstance(idata, xr.DataTree):
        return list(idata.children)
    return list(idata.groups())


def groups(idata) -> dict:
    """``{group: xarray.Dataset}`` of an InferenceData or a DataTree."""
    if isinstance(idata, xr.DataTree):
        return {name: node.to_dataset() for name, node in idata.children.items()}
    return {name: getattr(idata, name) for name in idata.groups()}



# ---------------------------------------------------------------------------------------------
# summaries and diagnostics
# ---------------------------------------------------------------------------------------------
def summary(idata, var_names: Sequence[str] | None = DEFAULT_VAR_NAMES, *, hdi_prob: float | None = None, **kwargs):
    """The ArviZ summary table of ``idata`` (default: weights, means and covariances).

    Parameters
    ----------
    idata : arviz.InferenceData or xarray.DataTree
    var_names : sequence of str, optional
        None for every variable of the group.
    hdi_prob : float in (0, 1), optional
        Probability of the highest-density interval (default ArviZ's: 0.94 on 0.2x; on 1.x the
        interval is an HDI of ``rcParams["stats.ci_prob"]`` unless ``ci_kind`` says otherwise).
    **kwargs
        Passed to ``arviz.summary`` (0.2x: ``kind``, ``fmt``, ``round_to``, ``coords``, ...) or
        ``arviz_stats.summary`` (1.x: ``kind``, ``fmt``, ``round_to``, ``coords``, ``ci_prob``,
        ``ci_kind``, ...).

    Returns
    -------
    pandas.DataFrame
        One row per entry (``"means[0, waiting]"``) with ``mean``, ``sd``, the interval
        (0.2x: ``hdi_3%`` / ``hdi_97%``; 1.x: ``hdi94_lb`` / ``hdi94_ub``), ``mcse_*``,
        ``ess_bulk``, ``ess_tail`` and ``r_hat``.
    """
    var_names = None if var_names is None else list(var_names)
    with warnings.catch_warnings():
        # constant variables (e.g. the diagonal of corr_chol) give 0/0 in R-hat
        warnings.simplefilter("ignore", RuntimeWarning)
        if not ARVIZ_1:
            if hdi_prob is not None:
                kwargs["hdi_prob"] = hdi_prob
            return _az().summary(idata, var_names=var_names, **kwargs)
        kwargs.setdefault("ci_kind", "hdi")  # the HDI, as ArviZ 0.2x and bayesgmm.compare
        if hdi_prob is not None:
            kwargs["ci_prob"] = hdi_prob
        return _azs().summary(idata, var_names=var_names, **kwargs)


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
    data_vars = {}
    for name, v in variables.items():
        if v.ndim < 2:
            raise ValueError(f"{name} must have leading (chain, draw) axes, got shape {v.shape}.")
        data_vars[name] = (["chain", "draw"] + [f"{name}_dim_{i}" for i in range(v.ndim - 2)], v)
    return xr.Dataset(data_vars)


def _reduce(ds, how):
    out = {}
    for name, da in ds.data_vars.items():
        v = np.asarray(da.values, np.float64)
        finite = v[np.isfinite(v)]
        out[name] = float(how(finite)) if finite.size else float("nan")
    return out


class _quiet_loggers:
    """Silence ArviZ's logged warnings (e.g. 0.2x's shape check on one VI chain) inside a block."""

    def __enter__(self):
        import logging

        self._levels = [(lg, lg.level) for lg in loggers()]
        for lg, _ in self._levels:
            lg.setLevel(logging.ERROR)

    def __exit__(self, *exc):
        for lg, level in self._levels:
            lg.setLevel(level)


def _diagnostic(ds, which: str, method: str):
    """R-hat or ESS of every variable of a (chain, draw, ...) Dataset, as a Dataset.

    One chain (VI) is diagnosed as ArviZ does (split halves), without ArviZ's logged warning.
    """
    if not ARVIZ_1:
        _az()  # imported before its logger is silenced
    with warnings.catch_warnings(), _quiet_loggers():
        warnings.simplefilter("ignore", RuntimeWarning)
        if ARVIZ_1:
            fn = _azs().rhat if which == "rhat" else _azs().ess
            return fn(ds, sample_dims=["chain", "draw"], method=method)
        return (_az().rhat if which == "rhat" else _az().ess)(ds, method=method)


def rhat(draws, var_names: Sequence[str] | None = DEFAULT_VAR_NAMES, method: str = "rank"):
    """Elementwise R-hat as a dict of arrays (variable -> array of the event shape).

    ``draws`` is a GMMParams or a dict of arrays, each with leading (chain, draw) axes.
    """
    res = _diagnostic(_as_dataset(draws, var_names), "rhat", method)
    return {name: np.asarray(da.values) for name, da in res.data_vars.items()}


def ess(draws, var_names: Sequence[str] | None = DEFAULT_VAR_NAMES, method: str = "bulk"):
    """Elementwise ESS (``method`` "bulk", "tail", ...) as a dict of arrays."""
    res = _diagnostic(_as_dataset(draws, var_names), "ess", method)
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
    r = _diagnostic(ds, "rhat", "rank")
    eb = _diagnostic(ds, "ess", "bulk")
    et = _diagnostic(ds, "ess", "tail")
    return {"rhat": _reduce(r, np.max), "ess_bulk": _reduce(eb, np.min), "ess_tail": _reduce(et, np.min)}


def hdi(samples, hdi_prob: float = 0.94) -> np.ndarray:
    """Highest-density interval of draws with leading (chain, draw) axes, chains pooled.

    ``arviz.hdi(..., hdi_prob=)`` on 0.2x, ``arviz_stats.hdi(..., prob=)`` on 1.x: both the
    narrowest interval between two draws that holds ``ceil``/``floor(hdi_prob * n)`` draws.

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
    if ARVIZ_1:
        one = lambda v: _azs().hdi(v, prob=float(hdi_prob))  # noqa: E731
    else:
        one = lambda v: _az().hdi(v, hdi_prob=float(hdi_prob))  # noqa: E731
    out = np.stack([np.asarray(one(flat[:, e]), np.float64).reshape(2) for e in range(flat.shape[1])])
    return out.reshape(samples.shape[2:] + (2,))


# ---------------------------------------------------------------------------------------------
# LOO and WAIC
# ---------------------------------------------------------------------------------------------
def loo(idata, **kwargs):
    """PSIS-LOO of ``idata`` (``arviz.loo``; needs the ``log_likelihood`` group, variable ``obs``).

    Returns ArviZ's result: a pandas-Series ``ELPDData`` (``elpd_loo``, ``se``, ``p_loo``, ...)
    on 0.2x, an ``arviz_stats.ELPDDataLOO`` (``elpd``, ``se``, ``p``, ...) on 1.x.
    """
    if ARVIZ_1:
        return _azs().loo(idata, var_name="obs", **kwargs)
    return _az().loo(idata, var_name="obs", **kwargs)


def _log_likelihood(idata) -> np.ndarray:
    """The pointwise log-likelihood ``obs`` as an array of shape (chain, draw, n_obs)."""
    da = groups(idata)["log_likelihood"]["obs"]
    return np.asarray(da.transpose("chain", "draw", ...).values, np.float64).reshape(da.sizes["chain"], da.sizes["draw"], -1)


def _waic_1x(idata, pointwise: bool | None = None, scale: str = "log"):
    """WAIC with ArviZ 0.23's formulas (ArviZ 1.x has none), as an ``arviz_stats.ELPDData``."""
    if scale not in ("log", "negative_log", "deviance"):
        raise ValueError(f"scale={scale!r}; use 'log', 'negative_log' or 'deviance'.")
    ll = _log_likelihood(idata)
    s = ll.shape[0] * ll.shape[1]
    flat = ll.reshape(s, -1)
    top = flat.max(axis=0)
    lppd_i = top + np.log(np.exp(flat - top).sum(axis=0)) - np.log(s)
    var_i = flat.var(axis=0)  # ddof 0, as ArviZ 0.23
    warn = bool(np.any(var_i > 0.4))
    if warn:
        warnings.warn(
            "For one or more samples the posterior variance of the log predictive densities exceeds 0.4. "
            "This could be indication of WAIC starting to fail. See http://arxiv.org/abs/1507.04544 for details",
            UserWarning,
            stacklevel=3,
        )
    factor = {"log": 1.0, "negative_log": -1.0, "deviance": -2.0}[scale]
    elpd_i = factor * (lppd_i - var_i)
    n = elpd_i.size
    return _azs().ELPDData(
        elpd=float(elpd_i.sum()), se=float(np.sqrt(n * np.var(elpd_i))), p=float(var_i.sum()),
        n_samples=s, n_data_points=n, scale=scale, warning=warn, good_k=float("nan"),
        elpd_i=xr.DataArray(elpd_i, dims=[OBS_DIM]) if pointwise else None,
    )


def waic(idata, **kwargs):
    """WAIC of ``idata`` (needs the ``log_likelihood`` group, variable ``obs``).

    ArviZ 0.2x: ``arviz.waic`` (a pandas-Series ``ELPDData``: ``elpd_waic``, ``se``,
    ``p_waic``, ...). ArviZ 1.x dropped WAIC in favour of PSIS-LOO; there the same numbers are
    computed here and returned as an ``arviz_stats.ELPDData`` (``elpd``, ``se``, ``p``,
    ``warning``, ``elpd_i`` when ``pointwise=True``; keyword ``scale`` as in 0.2x).
    """
    if ARVIZ_1:
        return _waic_1x(idata, **kwargs)
    return _az().waic(idata, var_name="obs", **kwargs)


def information_criterion(idata, criterion: str = "loo") -> dict:
    """PSIS-LOO or WAIC on the deviance scale, with ArviZ's warnings collected, not printed.

    Parameters
    ----------
    idata : arviz.InferenceData or xarray.DataTree with a ``log_likelihood`` group (``obs``)
    criterion : {"loo", "waic"}

    Returns
    -------
    dict
        ``elpd`` and ``se`` (log scale, higher is better), ``deviance = -2 elpd`` and
        ``deviance_se = 2 se`` (lower is better), ``p`` (effective number of parameters), and
        for LOO ``pareto_k`` (ndarray (n_obs,); NaN where ArviZ could not estimate it),
        ``good_k`` (ArviZ's threshold ``min(1 - 1/log10(S), 0.7)``) and ``n_bad_k`` (points
        above it or NaN); ``warning`` (ArviZ's flag, and for LOO also set when ``n_bad_k > 0``)
        and ``messages`` (the text of the warnings ArviZ raised, and a note on NaN k).
    """
    if criterion not in ("loo", "waic"):
        raise ValueError(f"criterion={criterion!r} is not supported; use 'loo' or 'waic'.")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = (loo if criterion == "loo" else waic)(idata, pointwise=True)
    if ARVIZ_1:
        elpd, se, p, warn = float(res.elpd), float(res.se), float(res.p), bool(res.warning)
        pareto_k = None if criterion != "loo" else res.pareto_k
        good_k = None if criterion != "loo" else float(res.good_k)
    else:
        elpd, se = float(res[f"elpd_{criterion}"]), float(res["se"])
        p, warn = float(res[f"p_{criterion}"]), bool(res["warning"])
        pareto_k = None if criterion != "loo" else res["pareto_k"]
        good_k = None if criterion != "loo" else (float(res["good_k"]) if "good_k" in res else 0.7)
    out = {
        "elpd": elpd,
        "se": se,
        "deviance": -2.0 * elpd,
        "deviance_se": 2.0 * se,
        "p": p,
        "warning": warn,
        "messages": [str(w.message) for w in caught if not issubclass(w.category, (DeprecationWarning, FutureWarning))],
    }
    if criterion == "loo":
        k = np.asarray(pareto_k, np.float64)
        # a k that could not be estimated (NaN: ArviZ 1.x on extremely heavy-tailed ratios, where
        # 0.2x reports a huge k) means PSIS failed for that point: it counts as bad
        n_nan = int(np.sum(np.isnan(k)))
        n_bad = int(np.sum(~(k <= good_k)))
        if n_nan:
            out["messages"].append(
                f"The Pareto k of {n_nan} point(s) could not be estimated (PSIS failed there); they count "
                "as points with k above the threshold."
            )
        out.update(pareto_k=k, good_k=good_k, n_bad_k=n_bad, warning=warn or n_bad > 0)
    return out


# ---------------------------------------------------------------------------------------------
# plots
# ---------------------------------------------------------------------------------------------
TRACE_KINDS = ("trace", "rank", "rank_bars", "rank_vlines")


def plot_trace(idata, var_names: Sequence[str] = ("weights",), kind: str = "trace", **kwargs):
    """Trace or rank plot of the (relabelled) posterior through ArviZ (matplotlib).

    ArviZ 0.2x: ``kind="trace"`` is :func:`arviz.plot_trace` (densities and traces per chain),
    ``"rank_bars"`` / ``"rank_vlines"`` the same with rank plots instead of traces, ``"rank"``
    :func:`arviz.plot_rank`; returns the ndarray of Axes. ArviZ 1.x: ``"trace"`` is
    ``arviz_plots.plot_trace_dist``, ``"rank_bars"`` / ``"rank_vlines"`` ``plot_rank_dist``,
    ``"rank"`` ``plot_rank``; returns the ``PlotCollection`` (its figure: :func:`figure_of`).
    Extra keyword arguments go to ArviZ (e.g. ``coords``; on 0.2x also ``axes`` / ``ax``).
    """
    var_names = list(var_names)
    if kind not in TRACE_KINDS:
        raise ValueError(f"kind={kind!r} is not supported; use 'trace', 'rank', 'rank_bars' or 'rank_vlines'.")
    if ARVIZ_1:
        import arviz_plots as azp

        kwargs.setdefault("backend", "matplotlib")
        fn = {"trace": azp.plot_trace_dist, "rank": azp.plot_rank}.get(kind, azp.plot_rank_dist)
        return fn(idata, var_names=var_names, **kwargs)
    with warnings.catch_warnings():
        # ArviZ 0.23 calls a matplotlib helper deprecated in matplotlib 3.11 (not our concern)
        warnings.filterwarnings("ignore", message=r".*alias_mapping", category=DeprecationWarning)
        if kind == "rank":
            return _az().plot_rank(idata, var_names=var_names, **kwargs)
        return _az().plot_trace(idata, var_names=var_names, kind=kind, **kwargs)


def figure_of(plot):
    """The matplotlib Figure of what :func:`plot_trace` returned (Axes array or PlotCollection)."""
    viz = getattr(plot, "viz", None)
    if viz is not None:  # arviz_plots.PlotCollection
        return viz["figure"].item()
    return np.ravel(plot)[0].figure


def trace_axes(plot) -> np.ndarray:
    """The matplotlib Axes of what :func:`plot_trace` returned, as a 2-d array (rows of panels).

    0.2x: the Axes array itself. 1.x: the PlotCollection's axes, one row per variable entry
    shown as in the figure (trace plot: ``[density, trace]`` per row).
    """
    viz = getattr(plot, "viz", None)
    if viz is None:
        return np.atleast_2d(np.asarray(plot, dtype=object))
    fig = viz["figure"].item()
    axes = np.asarray(fig.axes, dtype=object)
    grid = {}
    for ax in axes:
        spec = ax.get_subplotspec()
        grid[(spec.rowspan.start, spec.colspan.start)] = ax
    rows = 1 + max(r for r, _ in grid)
    cols = 1 + max(c for _, c in grid)
    out = np.empty((rows, cols), dtype=object)
    for (r, c), ax in grid.items():
        out[r, c] = ax
    return out


# ---------------------------------------------------------------------------------------------
# netCDF files (bayesgmm.io)
# ---------------------------------------------------------------------------------------------
def write_netcdf(idata, path, extra_groups: Mapping[str, tuple] | None = None):
    """Write ``idata`` plus extra groups to a netCDF-4 file at ``path`` (engine h5netcdf).

    ``extra_groups`` maps a group name to ``(variables, attrs)``: a dict of numpy arrays (each
    on its own dims ``<name>_dim<i>``, no coordinates) and a dict of string attributes. Each
    group is a netCDF group of the file's root, under both ArviZ generations: ArviZ 0.2x's
    ``arviz.from_netcdf(path)`` reads the file as one InferenceData, ArviZ 1.x's (that is,
    ``xarray.open_datatree(path)``) as one DataTree, whichever wrote it.
    """
    all_groups = groups(idata)
    for name, (variables, attrs) in dict(extra_groups or {}).items():
        data_vars = {
            var: ([f"{var}_dim{i}" for i in range(np.ndim(v))], np.asarray(v)) for var, v in variables.items()
        }
        all_groups[name] = xr.Dataset(data_vars, attrs=dict(attrs))
    container = from_groups(all_groups)
    if ARVIZ_1:
        container.to_netcdf(str(path), engine="h5netcdf")
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*not .*(valid|supported) .*group", category=UserWarning)
        container.to_netcdf(str(path), engine="h5netcdf")


def read_netcdf(path) -> dict:
    """Read a netCDF file written by :func:`write_netcdf` fully into memory (file closed after).

    Returns ``{group: xarray.Dataset}``. Errors of the netCDF/HDF5 layer propagate (OSError for
    a file that is not HDF5, or truncated).
    """
    if ARVIZ_1:
        with xr.open_datatree(str(path), engine="h5netcdf") as tree:
            return {name: node.to_dataset().load() for name, node in tree.children.items()}
    with _az().rc_context({"data.load": "eager"}), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        idata = _az().from_netcdf(str(path), engine="h5netcdf")
    return groups(idata)


def _detached(fig):
    """A figure made through pyplot (arviz_plots), closed in pyplot so that it is not kept there."""
    import matplotlib.pyplot as plt

    plt.close(fig)
    return fig


def trace_figure(idata, components: Sequence[int], features: Sequence):
    """The report's trace figure: weights and means of the shown components and features.

    ArviZ 0.2x: one row for the weights and one per shown feature (the features' scales
    differ), each ``[density, trace]``. ArviZ 1.x: ``arviz_plots.plot_trace_dist`` of the same
    entries, one row per entry (``compact=False``). Returns a matplotlib Figure.
    """
    features = list(features)
    coords = {"component": list(components), "feature": features}
    if ARVIZ_1:
        pc = plot_trace(idata, var_names=("weights", "means"), kind="trace", coords=coords, compact=False)
        fig = _detached(figure_of(pc))
        fig.set_layout_engine("constrained")
        fig.set_size_inches(8.0, 1.5 * trace_axes(pc).shape[0] + 0.3)
        return fig
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(8.0, 1.9 * (1 + len(features)) + 0.3), layout="constrained")
    axes = fig.subplots(1 + len(features), 2, squeeze=False)
    plot_trace(idata, var_names=("weights",), kind="trace", axes=axes[:1],
               coords={"component": list(components)})
    for r, f in enumerate(features, start=1):
        plot_trace(idata, var_names=("means",), kind="trace", axes=axes[r : r + 1],
                   coords={"component": list(components), "feature": [f]})
        axes[r, 0].set_title(f"means, {f}")
        axes[r, 1].set_title(f"means, {f}")
    return fig


def rank_figure(idata, components: Sequence[int], features: Sequence):
    """The report's rank figure: rank histograms per chain of the shown weights and means.

    One panel per entry (at most 4 columns). Returns a matplotlib Figure.
    """
    coords = {"component": list(components), "feature": list(features)}
    if ARVIZ_1:
        pc = plot_trace(idata, var_names=("weights", "means"), kind="rank", coords=coords)
        fig = _detached(figure_of(pc))
        rows, cols = trace_axes(pc).shape
        fig.set_layout_engine("constrained")
        fig.set_size_inches(2.6 * cols, 2.4 * rows + 0.3)
        return fig
    from matplotlib.figure import Figure as MplFigure

    n_panels = len(components) * (1 + len(features))
    cols = min(4, n_panels)
    rows = -(-n_panels // cols)
    fig = MplFigure(figsize=(2.6 * cols, 2.2 * rows + 0.3), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    plot_trace(idata, var_names=("weights", "means"), kind="rank", ax=axes.ravel()[:n_panels], coords=coords)
    for extra in axes.ravel()[n_panels:]:
        extra.set_visible(False)
    return fig
